"""Classify and Regress on a loaded version, as TF Serving's ``classifier.cc`` and ``regressor.cc`` run them.

Both APIs take ``tf.Example`` inputs (an ``ExampleList``, or an ``ExampleListWithContext`` whose context
is merged into every example) and feed them, serialized, to the signature's one input:

* the signature is looked up by name (``INVALID_ARGUMENT: No signature was found with the name: x``);
  its method name is checked only with ``--enable_signature_method_name_check`` (TF2 SavedModels export
  every signature as ``tensorflow/serving/predict``), otherwise its shape is: one input named ``inputs``;
  Classify: outputs ``classes`` (``DT_STRING`` [batch, classes]) and/or ``scores`` (``DT_FLOAT``
  [batch, classes]); Regress: one output ``outputs`` (``DT_FLOAT`` [batch] or [batch, 1]);
* results are ``ClassificationResult`` / ``RegressionResult`` protos, one entry per example.
"""

from __future__ import annotations

from typing import Optional, Tuple

import grpc
import numpy as np

from serving import protocol as P
from serving.standin.predict import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD, Runtime

INPUTS, CLASSES, SCORES, OUTPUTS = "inputs", "classes", "scores", "outputs"


def _invalid(message: str) -> P.ServingError:
    return P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def examples_tensor(input_proto) -> np.ndarray:
    """``InputToSerializedExampleTensor``: [N] serialized examples (context bytes first, as TF Serving)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        context = input_proto.example_list_with_context.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in input_proto.example_list_with_context.examples]
    else:
        examples = []
    if not examples:
        raise _invalid("Input is empty.")
    out = np.empty(len(examples), dtype=object)
    out[:] = examples
    return out


def _signature(signature_defs, name: str, method: str, method_name_check: bool):
    key = name or DEFAULT_SIGNATURE
    if key not in signature_defs:
        raise _invalid(f"No signature was found with the name: {key}")
    signature = signature_defs[key]
    if method_name_check and signature.method_name != method:
        what = "classification" if method == CLASSIFY_METHOD else "regression"
        raise _invalid(f"Expected {what} signature method_name to be {method}. Was: {signature.method_name}")
    return key, signature


def classification_signature(signature_defs, name: str, method_name_check: bool = False):
    """(key, signature, input tensor name, output tensor names) of a Classify."""
    key, sig = _signature(signature_defs, name, CLASSIFY_METHOD, method_name_check)
    if len(sig.inputs) != 1:
        raise _invalid("Expected one input Tensor.")
    if len(sig.outputs) not in (1, 2):
        raise _invalid(f"Expected one or two output Tensors, found {len(sig.outputs)}")
    if INPUTS not in sig.inputs:
        raise _invalid(f"No classification inputs found in SignatureDef: {sig}")
    if CLASSES not in sig.outputs and SCORES not in sig.outputs:
        raise _invalid('Expected classification signature outputs to contain at least one of "classes" or '
                       f'"scores". Signature was: {sig}')
    outputs = [sig.outputs[k].name for k in (CLASSES, SCORES) if k in sig.outputs]
    return key, sig, sig.inputs[INPUTS].name, outputs


def regression_signature(signature_defs, name: str, method_name_check: bool = False):
    """(key, signature, input tensor name, output tensor name) of a Regress."""
    key, sig = _signature(signature_defs, name, REGRESS_METHOD, method_name_check)
    if len(sig.inputs) != 1:
        raise _invalid("Expected one input Tensor.")
    if len(sig.outputs) != 1:
        raise _invalid("Expected one output Tensor.")
    if INPUTS not in sig.inputs:
        raise _invalid(f"No regression inputs found in SignatureDef: {sig}")
    if OUTPUTS not in sig.outputs:
        raise _invalid(f"No regression outputs found in SignatureDef: {sig}")
    return key, sig, sig.inputs[INPUTS].name, sig.outputs[OUTPUTS].name


def _dtype_name(arr: np.ndarray) -> str:
    return "DT_STRING" if arr.dtype.kind in "OSU" else {
        "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int32": "DT_INT32", "int64": "DT_INT64",
        "bool": "DT_BOOL"}.get(arr.dtype.name, arr.dtype.name)


def _shape(arr: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in arr.shape) + "]"


def _check_matrix(arr: np.ndarray, what: str, dtype: str, n: int) -> None:
    if arr.ndim != 2:
        raise _invalid(f"Expected Tensor shape: [batch_size num_classes] but got {_shape(arr)}")
    if _dtype_name(arr) != dtype:
        raise _invalid(f"Expected {what} Tensor of {dtype}. Got: {_dtype_name(arr)}")
    if arr.shape[0] != n:
        raise _invalid(f"Expected {what} output batch size of {n}. Got: {arr.shape[0]}")


def run_classify(runtime: Runtime, bundle, request, timeout_ms: Optional[int] = None) -> Tuple[str, object]:
    """(signature key, ``ClassificationResult``) of a ``ClassificationRequest`` on ``bundle``."""
    from tensorflow_serving.apis import classification_pb2

    key, sig, input_name, output_names = classification_signature(
        bundle.signature_defs, request.model_spec.signature_name, runtime.method_name_check)
    examples = examples_tensor(request.input)
    n = len(examples)
    outputs = dict(zip(output_names, runtime.session_run(bundle, "Classify", [(input_name, examples)],
                                                         output_names, timeout_ms)))
    classes = outputs.get(sig.outputs[CLASSES].name) if CLASSES in sig.outputs else None
    scores = outputs.get(sig.outputs[SCORES].name) if SCORES in sig.outputs else None
    if classes is not None:
        _check_matrix(classes, "classes", "DT_STRING", n)
    if scores is not None:
        _check_matrix(scores, "scores", "DT_FLOAT", n)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise _invalid(f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. "
                       f"{scores.shape[1]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for i in range(n):
        entry = result.classifications.add()
        for c in range(num_classes):
            cls = entry.classes.add()
            if classes is not None:
                cls.label = classes[i, c] if isinstance(classes[i, c], bytes) else str(classes[i, c])
            if scores is not None:
                cls.score = float(scores[i, c])
    return key, result


def run_regress(runtime: Runtime, bundle, request, timeout_ms: Optional[int] = None) -> Tuple[str, object]:
    """(signature key, ``RegressionResult``) of a ``RegressionRequest`` on ``bundle``."""
    from tensorflow_serving.apis import regression_pb2

    key, sig, input_name, output_name = regression_signature(
        bundle.signature_defs, request.model_spec.signature_name, runtime.method_name_check)
    examples = examples_tensor(request.input)
    n = len(examples)
    (values,) = runtime.session_run(bundle, "Regress", [(input_name, examples)], [output_name], timeout_ms)
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise _invalid(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                       f"{_shape(values)}")
    if values.shape[0] != n:
        raise _invalid(f"Input batch size did not match output batch size: {n} vs. {values.shape[0]}")
    if _dtype_name(values) != "DT_FLOAT":
        raise _invalid(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(values)}")
    result = regression_pb2.RegressionResult()
    for v in values.reshape(-1):
        result.regressions.add().value = float(v)
    return key, result
