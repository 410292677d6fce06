"""TF Serving's model server configuration: which models, where, which versions, which labels.

The configuration is a ``tensorflow.serving.ModelServerConfig`` (the ``tensorflow_serving.config`` protos):
``--model_config_file`` holds one in text format, or ``--model_name`` / ``--model_base_path`` make a
one-model list (:func:`single_model_config`, TF Serving's ``BuildSingleModelConfig``). For example::

    model_config_list {
      config {
        name: "ar"
        base_path: "/srv/push/ar"
        model_platform: "tensorflow"
        model_version_policy { specific { versions: 41 versions: 42 } }
        version_labels { key: "stable" value: 41 }
        version_labels { key: "canary" value: 42 }
      }
    }

:func:`read_text_proto` reads such a file as TF Serving's ``ParseProtoTextFile`` does: a file that does
not parse is ``INVALID_ARGUMENT: Invalid protobuf file: '<path>'``, and :class:`ConfigParseError` also
carries the line, column and problem that TF Serving's protobuf library logs. :func:`check_config` applies
``ServerCore::ReloadConfig``'s checks with its messages (unique names, absolute base paths, the
``tensorflow`` platform, ModelConfigList only).
"""

from __future__ import annotations

import os
from typing import List, Optional

import grpc

from serving import protocol as P

PLATFORM = "tensorflow"  # the only platform the stand-in (and a stock tensorflow_model_server) serves
_MODEL_TYPE_TENSORFLOW = 1  # ModelType.TENSORFLOW, the deprecated spelling of the platform


class ConfigParseError(P.ServingError):
    """A text proto that does not parse: TF Serving's status, plus the line and problem it logs.

    Attributes:
      parse_error: ``"Error parsing text-format <message>: <line>:<column>: <problem>"``.
    """

    def __init__(self, path: str, parse_error: str):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid protobuf file: '{path}'")
        self.parse_error = parse_error


def read_text_proto(path: str, message_class):
    """The text-format ``message_class`` in ``path``; raises :class:`P.ServingError` as TF Serving fails."""
    from google.protobuf import text_format

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise P.ServingError(grpc.StatusCode.NOT_FOUND, f"{path}; {reason}") from None
    message = message_class()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        problem = str(e)
        prefix = f"{e.GetLine()}:{e.GetColumn()} : "
        if problem.startswith(prefix):
            problem = problem[len(prefix):]
        raise ConfigParseError(path, f"Error parsing text-format {message.DESCRIPTOR.full_name}: "
                                     f"{e.GetLine()}:{e.GetColumn()}: {problem}") from None
    return message


def read_model_server_config(path: str):
    """``--model_config_file``: the ``ModelServerConfig`` in ``path``, not yet checked (:func:`check_config`)."""
    from tensorflow_serving.config import model_server_config_pb2

    return read_text_proto(path, model_server_config_pb2.ModelServerConfig)


def parse_model_server_config(text: str):
    """A ``ModelServerConfig`` from text (raises ``google.protobuf.text_format.ParseError``)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def single_model_config(name: str, base_path: str):
    """``--model_name`` / ``--model_base_path``: one TensorFlow model, latest version policy."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = name, base_path, PLATFORM
    return config


def config_for_base_paths(base_paths) -> "object":
    """model name → base path (made absolute) as a ``ModelServerConfig`` (latest version policy each)."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name, path in base_paths.items():
        model = config.model_config_list.config.add()
        model.name, model.base_path, model.model_platform = name, os.path.abspath(path), PLATFORM
    return config


def _invalid(message: str) -> P.ServingError:
    return P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def platform_of(model) -> str:
    """``GetPlatform``: ``model_platform``, or the deprecated ``model_type``, never both."""
    if model.model_type:
        if model.model_platform:
            raise _invalid("Illegal setting both ModelServerConfig::model_type (deprecated) and "
                           f"ModelServerConfig::model_platform, model name is {model.name}")
        if model.model_type != _MODEL_TYPE_TENSORFLOW:
            raise _invalid(f"ModelServerConfig::model_type choice {model.model_type} not supported.")
        return PLATFORM
    if not model.model_platform:
        raise _invalid("Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
                       f"ModelServerConfig::model_platform, model name is {model.name}")
    return model.model_platform


def _is_relative(path: str) -> bool:
    return "://" not in path and not os.path.isabs(path)


def check_config(config, running=None) -> List[object]:
    """The models (``ModelConfig`` protos) of ``config``, checked as ``ServerCore::ReloadConfig`` does.

    ``running``: the config being served, if any (after a ModelConfigList only another ModelConfigList,
    or the same config, is accepted). A first config with no ``model_config_list`` serves nothing.
    """
    kind = config.WhichOneof("config")
    running_kind = None if running is None else running.WhichOneof("config")
    if running_kind is not None and running != config and not (
            running_kind == kind == "model_config_list"):
        raise P.ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                             "Cannot transition to requested config. It is only legal to transition from "
                             "one ModelConfigList to another.")
    if kind is None:
        return []
    if kind == "custom_model_config":
        raise P.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                             "ModelServer does not yet support custom model config.")
    models = list(config.model_config_list.config)
    seen = set()
    for model in models:
        if model.name in seen:
            raise _invalid(f"Illegal to list model {model.name} multiple times in config list")
        seen.add(model.name)
    for model in models:
        if _is_relative(model.base_path):
            raise _invalid(f"Expected model {model.name} to have an absolute path or URI; got "
                           f"base_path()={model.base_path}")
    for model in models:
        platform = platform_of(model)
        if platform != PLATFORM:
            raise _invalid(f"Model {model.name} requests unsupported platform {platform}")
    return models


def version_policy_name(model) -> str:
    """``"latest"`` (also when unset, TF Serving's default), ``"all"`` or ``"specific"``."""
    return model.model_version_policy.WhichOneof("policy_choice") or "latest"


def describe(model, labels: Optional[dict] = None) -> str:
    """One log line: name, base path, version policy and labels."""
    policy = version_policy_name(model)
    if policy == "latest":
        policy += f" {max(1, model.model_version_policy.latest.num_versions)}"
    elif policy == "specific":
        policy += " " + ",".join(str(v) for v in model.model_version_policy.specific.versions)
    labels = dict(model.version_labels) if labels is None else labels
    return (f"{model.name} at {model.base_path} ({policy}"
            + (f"; labels {', '.join(f'{k}={v}' for k, v in sorted(labels.items()))}" if labels else "")
            + ")")
