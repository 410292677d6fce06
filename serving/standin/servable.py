"""One loaded version of one model, as TF Serving's ``SavedModelBundle``: a Session over the MetaGraph.

:class:`SavedModelBundle` loads the SavedModel's serving MetaGraph (``--saved_model_tags``, default
``serve``) into its own graph and a ``tf.compat.v1`` Session (``tf.compat.v1.saved_model.loader.load``:
variables restored, the init op run with its asset paths), as TF Serving's ``LoadSavedModel`` does.
:meth:`SavedModelBundle.run` is ``Session::Run``: feeds and fetches by the SignatureDef's tensor names,
through the C API (``TF_SessionRun``), so the runtime is TF Serving's: no shape check against the
TensorInfo (a ``[3]`` tensor may feed an ``x`` of static shape ``[-1, 1]``), dtype mismatches fail with
the runtime's own ``Expects arg[i] to be float but double is provided``, and every failure keeps its
TensorFlow status code.

Load failures get TF Serving's status: a directory without ``saved_model.pb`` / ``.pbtxt`` is
``NOT_FOUND: Could not find SavedModel .pb or .pbtxt at supplied export directory path: ...``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np

from serving import protocol as P

log = logging.getLogger("serving.standin")

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
SERVE_TAG = "serve"


def as_serving_error(e: BaseException) -> P.ServingError:
    """Any failure as a status: a TensorFlow error keeps its code and message; others are ``UNKNOWN``."""
    import tensorflow as tf

    if isinstance(e, P.ServingError):
        return e
    if isinstance(e, tf.errors.OpError):
        return P.ServingError(_GRPC_CODE.get(e.error_code, grpc.StatusCode.UNKNOWN), e.message)
    return P.ServingError(grpc.StatusCode.UNKNOWN, f"{type(e).__name__}: {e}")


# TensorFlow's error codes are gRPC's (tensorflow/core/protobuf/error_codes.proto).
_GRPC_CODE = {code.value[0]: code for code in grpc.StatusCode}


def session_config(intra_op: int = 0, inter_op: int = 0, session_parallelism: int = 0):
    """The Session's ``ConfigProto`` from TF Serving's ``--tensorflow_*_parallelism`` flags (0: TF's choice)."""
    from tensorflow.core.protobuf import config_pb2

    if intra_op > 0 and inter_op > 0 and session_parallelism > 0:
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             "Either configure server_options.tensorflow_session_parallelism or "
                             "(server_options.tensorflow_intra_op_parallelism, "
                             "server_options.tensorflow_inter_op_parallelism) separately. You cannot "
                             "configure all.")
    if intra_op > 0 or inter_op > 0:
        return config_pb2.ConfigProto(intra_op_parallelism_threads=max(intra_op, 0),
                                      inter_op_parallelism_threads=max(inter_op, 0))
    return config_pb2.ConfigProto(intra_op_parallelism_threads=session_parallelism,
                                  inter_op_parallelism_threads=session_parallelism)


def check_saved_model_exists(path: str) -> None:
    if not any(os.path.exists(os.path.join(path, f)) for f in SAVED_MODEL_FILES):
        raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                             "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
                             f"{path}. Check that the directory exists and that you have the right "
                             "permissions for accessing it.")


class SavedModelBundle:
    """One version of one model in a Session (``inflight``: requests running on it, kept by its versions).

    Attributes:
      name / version / path: the servable's id and its version directory.
      meta_graph_def: the loaded ``MetaGraphDef``; ``signature_defs`` is its signature map (every
        SignatureDef, ``__saved_model_init_op`` included, as ``GetModelMetadata`` returns them).
    """

    def __init__(self, name: str, version: int, path: str, config=None, tags: Sequence[str] = (SERVE_TAG,)):
        import tensorflow as tf

        self.name, self.version, self.path = name, version, path
        self.inflight = 0
        check_saved_model_exists(path)
        graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            with graph.as_default():
                self.meta_graph_def = tf.compat.v1.saved_model.loader.load(self._session, list(tags), path)
        except RuntimeError as e:
            self._session.close()
            if "could not be found in SavedModel" in str(e):
                raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                     f"Could not find meta graph def matching supplied tags: "
                                     f"{{ {' '.join(tags)} }}. To inspect available tag-sets in the "
                                     "SavedModel, please use the SavedModel CLI: `saved_model_cli`") from None
            raise
        except OSError as e:
            self._session.close()
            if str(e).startswith("Cannot parse file"):
                raise P.ServingError(grpc.StatusCode.DATA_LOSS,
                                     f"Can't parse {os.path.join(path, SAVED_MODEL_FILES[0])} as binary "
                                     "proto") from None
            raise
        except BaseException:
            self._session.close()
            raise
        graph.finalize()
        self._graph = graph
        self.signature_defs = self.meta_graph_def.signature_def
        self._outputs: Dict[str, object] = {}
        self._lock = threading.Lock()

    def signature_def_map(self):
        """``GetModelMetadata``'s ``signature_def``: a ``SignatureDefMap`` of every SignatureDef."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        out = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self.signature_defs.items():
            out.signature_def[key].CopyFrom(sig)
        return out

    def _tf_output(self, tensor_name: str):
        out = self._outputs.get(tensor_name)
        if out is None:
            try:
                out = self._graph.get_tensor_by_name(tensor_name)._as_tf_output()
            except (KeyError, ValueError) as e:
                raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                     f"Tensor {tensor_name}, specified in either feed_devices or "
                                     f"fetch_devices was not in the Graph ({e})") from None
            with self._lock:
                self._outputs[tensor_name] = out
        return out

    def run(self, feeds: Sequence[Tuple[str, np.ndarray]], fetches: Sequence[str],
            timeout_ms: Optional[int] = None) -> List[np.ndarray]:
        """``Session::Run`` of the tensors named ``fetches`` given ``feeds`` (tensor name, value)."""
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.client import pywrap_tf_session as tf_session

        feed_dict = {self._tf_output(name): value for name, value in feeds}
        fetch_list = [self._tf_output(name) for name in fetches]
        options = None
        if timeout_ms:
            options = tf_session.TF_NewBufferFromString(
                config_pb2.RunOptions(timeout_in_ms=int(timeout_ms)).SerializeToString())
        try:
            return tf_session.TF_SessionRun_wrapper(self._session._session, options, feed_dict, fetch_list,
                                                    [], None)
        except Exception as e:
            raise as_serving_error(e) from None
        finally:
            if options is not None:
                tf_session.TF_DeleteBuffer(options)

    def close(self) -> None:
        self._session.close()
