"""TensorFlow Serving for the AR and CR models: config files and the model server command line.

The serving root is the pipeline's push destination, in TF Serving's model base layout
(``<root>/ar/<version>/``, ``<root>/cr/<version>/``). :func:`models_config` renders the
``model_config_list`` for it (the ``ModelServerConfig`` proto from ``tensorflow_serving.config``);
:func:`model_server_command` builds the command line that serves it with the batching and Prometheus
configs in ``serving/config/``. The flags are ``tensorflow_model_server``'s, which the local stand-in
takes too: ``binary=STANDIN`` gives the same command for ``python -m serving.standin``.

::

    python -m serving.tf_serving --serving-root /srv/push            # exec tensorflow_model_server
    python -m serving.tf_serving --serving-root /srv/push --standin  # the stand-in, same flags
    python -m serving.tf_serving --serving-root /models --print-command --write-config models.config
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import List, Mapping, Optional, Sequence, Union

import features as F

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config")
MODELS_CONFIG_TEMPLATE = os.path.join(CONFIG_DIR, "models.config")
BATCHING_CONFIG = os.path.join(CONFIG_DIR, "batching.config")
MONITORING_CONFIG = os.path.join(CONFIG_DIR, "monitoring.config")
BINARY = "tensorflow_model_server"
STANDIN = (sys.executable, "-m", "serving.standin")  # the stand-in's "binary": TF Serving's flags
DOCKER_IMAGE = "tensorflow/serving:2.16.1"


def find_model_server() -> Optional[str]:
    """Path of ``tensorflow_model_server`` on PATH (``$TF_MODEL_SERVER`` overrides), or None."""
    override = os.environ.get("TF_MODEL_SERVER")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which(BINARY)


def models_config(serving_root: str, models: Sequence[str] = (F.AR_MODEL_NAME, F.CR_MODEL_NAME),
                  num_versions: int = 1) -> str:
    """The ``model_config_list`` text proto serving ``<serving_root>/<model>`` for every model.

    ``serving_root`` is used as given when it is absolute (e.g. a container path such as ``/models``);
    a relative one is made absolute, since TF Serving resolves base paths from its own working directory.
    """
    root = serving_root if "://" in serving_root else os.path.abspath(serving_root)
    return models_config_for_paths({m: f"{root.rstrip('/')}/{m}" for m in models}, num_versions)


def models_config_for_paths(base_paths: Mapping[str, str], num_versions: int = 1,
                            versions: Optional[Mapping[str, int]] = None,
                            labels: Optional[Mapping[str, Mapping[str, int]]] = None) -> str:
    """The ``model_config_list`` text proto for model name → base path.

    Latest version policy, except for the models of ``versions`` (model → the one version to serve: the
    ``specific`` policy); ``labels``: model → {version label: version} (``version_labels``, each version
    among those served).
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    if num_versions < 1:
        raise ValueError(f"num_versions must be >= 1, got {num_versions}")
    versions, labels = dict(versions or {}), dict(labels or {})
    for name in list(versions) + list(labels):
        if name not in base_paths:
            raise ValueError(f"versions/labels name model {name!r}, which has no base path ({sorted(base_paths)})")
    config = model_server_config_pb2.ModelServerConfig()
    for name, path in base_paths.items():
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = path
        entry.model_platform = "tensorflow"
        if name in versions:
            entry.model_version_policy.specific.versions.append(int(versions[name]))
        else:
            entry.model_version_policy.latest.num_versions = num_versions
        for label, version in labels.get(name, {}).items():
            if name in versions and version != versions[name]:
                raise ValueError(f"{name}: label {label!r} names version {version}, which is not served "
                                 f"(version {versions[name]})")
            entry.version_labels[label] = int(version)
    return text_format.MessageToString(config)


def write_models_config(serving_root: str, path: str, **kwargs) -> str:
    """Writes :func:`models_config` to ``path``; returns ``path``."""
    text = models_config(serving_root, **kwargs)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def model_server_command(model_config_file: str, *, binary: Union[str, Sequence[str]] = BINARY,
                         port: int = 8500, rest_port: int = 8501, enable_batching: bool = False,
                         batching_parameters_file: str = BATCHING_CONFIG,
                         monitoring_config_file: str = MONITORING_CONFIG, poll_seconds: float = 5,
                         config_poll_seconds: Optional[int] = None,
                         intra_op_threads: Optional[int] = None, inter_op_threads: Optional[int] = None,
                         extra_args: Sequence[str] = ()) -> List[str]:
    """The ``tensorflow_model_server`` command line serving ``model_config_file``.

    ``binary`` is a path, or a command prefix such as :data:`STANDIN`. ``config_poll_seconds``: re-read
    the config file this often (``--model_config_file_poll_wait_seconds``; labels and version policies
    then change without a restart). Batching is off by default: the router sends user features once
    (batch 1) for the model to broadcast, which TF Serving's batching session rejects (it needs equal 0th
    dimensions); see ``config/batching.config``.
    """
    cmd = [
        *([binary] if isinstance(binary, str) else binary),
        f"--port={int(port)}",
        f"--rest_api_port={int(rest_port)}",
        f"--model_config_file={model_config_file}",
        f"--enable_batching={'true' if enable_batching else 'false'}",
        f"--monitoring_config_file={monitoring_config_file}",
        f"--file_system_poll_wait_seconds={int(max(1, round(poll_seconds)))}",
    ]
    if enable_batching:
        cmd.append(f"--batching_parameters_file={batching_parameters_file}")
    if config_poll_seconds:
        cmd.append(f"--model_config_file_poll_wait_seconds={int(config_poll_seconds)}")
    if intra_op_threads:
        cmd.append(f"--tensorflow_intra_op_parallelism={int(intra_op_threads)}")
    if inter_op_threads:
        cmd.append(f"--tensorflow_inter_op_parallelism={int(inter_op_threads)}")
    return cmd + list(extra_args)


def docker_command(serving_root: str, models_config_dir: str, port: int = 8500, rest_port: int = 8501,
                   enable_batching: bool = False) -> List[str]:
    """The same server from the official image.

    The serving root is mounted at ``/models``; ``models_config_dir`` must hold a ``models.config``
    rendered for that root (``write_models_config("/models", ...)``).
    """
    cmd = ["docker", "run", "--rm", "-p", f"{port}:8500", "-p", f"{rest_port}:8501",
           "-v", f"{os.path.abspath(serving_root)}:/models:ro",
           "-v", f"{os.path.abspath(models_config_dir)}:/models-config:ro",
           "-v", f"{CONFIG_DIR}:/config:ro", DOCKER_IMAGE]
    return cmd + model_server_command(
        "/models-config/models.config", enable_batching=enable_batching,
        batching_parameters_file="/config/batching.config",
        monitoring_config_file="/config/monitoring.config")[1:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.tf_serving",
        description="Serve the pushed AR and CR models with tensorflow_model_server.")
    parser.add_argument("--serving-root", required=True,
                        help="push destination holding ar/<version>/ and cr/<version>/")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port")
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--enable-batching", action="store_true")
    parser.add_argument("--poll-seconds", type=float, default=5)
    parser.add_argument("--intra-op-threads", type=int, default=None)
    parser.add_argument("--inter-op-threads", type=int, default=None)
    parser.add_argument("--write-config", metavar="PATH",
                        help="write models.config here (default: a temporary file)")
    parser.add_argument("--print-command", action="store_true",
                        help="print the command instead of running it")
    parser.add_argument("--standin", action="store_true",
                        help="run the local stand-in (not TF Serving) with the same flags")
    args = parser.parse_args(argv)
    config_path = args.write_config or os.path.join(tempfile.mkdtemp(prefix="tfserving-"), "models.config")
    write_models_config(args.serving_root, config_path)
    binary = STANDIN if args.standin else find_model_server()
    flags = dict(port=args.port, rest_port=args.rest_port, enable_batching=args.enable_batching,
                 poll_seconds=args.poll_seconds, intra_op_threads=args.intra_op_threads,
                 inter_op_threads=args.inter_op_threads)
    cmd = model_server_command(config_path, binary=binary or BINARY, **flags)
    if args.print_command:
        print(" ".join(cmd))
        return 0
    if binary is None:
        docker_dir = tempfile.mkdtemp(prefix="tfserving-docker-")
        write_models_config("/models", os.path.join(docker_dir, "models.config"))
        print(f"{BINARY} is not on PATH. Install TF Serving (see BUILD.md) or run the official image:\n  "
              + " ".join(docker_command(args.serving_root, docker_dir, args.port, args.rest_port,
                                        args.enable_batching))
              + "\nFor a local try-out without it, the stand-in (not TF Serving) takes the same flags:\n  "
              + " ".join(model_server_command(config_path, binary=("python", "-m", "serving.standin"), **flags)),
              file=sys.stderr)
        return 127
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
