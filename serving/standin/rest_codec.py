"""TF Serving's REST bodies (``json_tensor.cc``): Predict, Classify and Regress requests and responses.

Predict (:func:`predict_inputs`, :func:`predict_response`): row ``"instances"`` / ``"predictions"`` or
columnar ``"inputs"`` / ``"outputs"``; a lone input or output may go unnamed. In row format each
instance is one object of named inputs (or one value of the lone input) and all must agree in shape; in
columnar format an object names the inputs (keys that are not inputs of the signature are ignored, as
TF Serving ignores them). Classify / Regress (:func:`examples_input`): ``"examples"`` (objects of
feature name → value or list) and an optional ``"context"`` become ``tf.Example`` protos: JSON integers
and booleans ``int64_list``, other numbers ``float_list``, strings and ``{"b64": ...}`` ``bytes_list``.
Errors are ``INVALID_ARGUMENT`` with TF Serving's messages.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from serving.standin.json_tensors import (debug_string, decode_b64, invalid, is_b64, rows_to_json,
                                          tensor_from_json, tensor_to_json, type_string)

SIGNATURE_KEY = "signature_name"
INSTANCES, INPUTS = "instances", "inputs"
PREDICTIONS, OUTPUTS = "predictions", "outputs"
CONTEXT, EXAMPLES, RESULTS = "context", "examples", "results"


def signature_name(doc: dict) -> str:
    """The body's optional ``signature_name`` (``FillSignature``)."""
    name = doc.get(SIGNATURE_KEY, "")
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {debug_string(doc)} not formatted correctly. 'signature_name' key must be a "
                      "string value.")
    return name


def _tensor_of(value: Any, info) -> np.ndarray:
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(info.dtype)
    if dtype == tf.string:
        return tensor_from_json(value, np.dtype(object), is_string=True)
    return tensor_from_json(value, np.dtype(dtype.as_numpy_dtype))


def _shape_string(arr: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in arr.shape) + "]"


def predict_inputs(doc: dict, input_infos: Mapping[str, Any]) -> Tuple[Dict[str, np.ndarray], bool]:
    """(alias → tensor, row format?) of a ``:predict`` body, given the signature's input TensorInfos."""
    if not input_infos:
        raise invalid(f"Failed to get input map for signature: {signature_name(doc) or 'DEFAULT'}")
    has_instances, has_inputs = INSTANCES in doc, INPUTS in doc
    if has_instances and has_inputs:
        raise invalid(f"JSON Value: {debug_string(doc)} Not formatted correctly expecting only one of "
                      "'inputs' or 'instances' keys to exist ")
    if has_instances:
        rows = doc[INSTANCES]
        if not isinstance(rows, list):
            raise invalid(f"JSON Value: {debug_string(doc)} Expecting 'instances' to be an list/array")
        if not rows:
            raise invalid(f"JSON Value: {debug_string(doc)} No values in 'instances' array")
        return _from_instances(rows, input_infos), True
    if has_inputs:
        return _from_inputs(doc[INPUTS], input_infos), False
    raise invalid("Missing 'inputs' or 'instances' key")


def _is_element_object(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64(value)


def _from_instances(rows: List[Any], infos: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """``FillTensorMapFromInstancesList``."""
    names = sorted(infos)
    if not isinstance(rows[0], dict) and len(names) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple input tensors "
                      "required as per tensorinfo_map")
    objects = _is_element_object(rows[0])
    items: Dict[str, List[np.ndarray]] = {}

    def add(value, name):
        if name not in infos:
            raise invalid(f"JSON object: does not have named input: {name}")
        arr = _tensor_of(value, infos[name])
        if items.get(name):
            first = items[name][0]
            if first.size != arr.size:
                raise invalid(f"Expecting tensor size: {first.size} but got: {arr.size}")
            if first.shape != arr.shape:
                raise invalid(f"Expecting shape {_shape_string(first)} but got: {_shape_string(arr)}")
        items.setdefault(name, []).append(arr)

    for i, row in enumerate(rows):
        if objects:
            if not _is_element_object(row):
                raise invalid(f"Expecting object but got list at item {i} of input list")
            for name, value in row.items():
                try:
                    add(value, name)
                except Exception as e:
                    raise invalid(f"Failed to process element: {i} key: {name} of 'instances' list. Error: "
                                  f"{_status_string(e)}") from None
            if set(row) != set(names):
                raise invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                              f"{debug_string(row)} keys must be equal to: {','.join(names)}")
        else:
            if _is_element_object(row):
                raise invalid(f"Expecting value/list but got object at item {i} of input list")
            try:
                add(row, names[0])
            except Exception as e:
                raise invalid(f"Failed to process element: {i} of 'instances' list. Error: "
                              f"{_status_string(e)}") from None
    return {name: np.stack(arrs) for name, arrs in items.items()}


def _status_string(e: Exception) -> str:
    """``Status::ToString()``: ``"INVALID_ARGUMENT: <message>"``."""
    code = getattr(e, "code", None)
    return f"{code.name}: {e.message}" if code is not None else str(e)


def _from_inputs(value: Any, infos: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """``FillTensorMapFromInputsMap``."""
    names = sorted(infos)
    if not isinstance(value, dict) or is_b64(value):
        if len(names) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple input tensors "
                          "required as per tensorinfo_map")
        return {names[0]: _tensor_of(value, infos[names[0]])}
    out = {}
    for name in names:
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        out[name] = _tensor_of(value[name], infos[name])
    return out


def predict_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> str:
    """The ``:predict`` response text (``MakeJsonFromTensors``)."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if not row_format:
        if len(names) == 1:
            return f'{{"{OUTPUTS}": {tensor_to_json(outputs[names[0]], names[0])}}}'
        body = ",".join(f'"{n}": {tensor_to_json(outputs[n], n)}' for n in names)
        return f'{{"{OUTPUTS}": {{{body}}}}}'
    batch = None
    for n in names:
        arr = np.asarray(outputs[n])
        if arr.ndim == 0:
            raise invalid(f"Tensor name: {n} has no shape information ")
        if batch is not None and arr.shape[0] != batch:
            raise invalid(f"Tensor name: {n} has inconsistent batch size: {arr.shape[0]} expecting: {batch}")
        batch = arr.shape[0]
    rows = {n: rows_to_json(outputs[n], n) for n in names}
    if len(names) == 1:
        items = rows[names[0]]
    else:
        items = ["{" + ",".join(f'"{n}": {rows[n][i]}' for n in names) + "}" for i in range(batch)]
    return f'{{"{PREDICTIONS}": [' + ",".join(items) + "]}"


# ----------------------------------------------------------------------------------- classify/regress
def _feature_error(name: str, feature, kind: str):
    return invalid(f"Unexpected element type in feature: {name} expecting type: {kind}")


def _add_to_feature(value: Any, name: str, feature) -> None:
    """``AddValueToFeature``: one JSON value appended to a ``tf.train.Feature``."""
    kind = feature.WhichOneof("kind")

    def need(k: str):
        if kind not in (None, k):
            raise _feature_error(name, feature, {"bytes_list": "bytes", "float_list": "float",
                                                 "int64_list": "int64"}[kind])

    if value is None or isinstance(value, list) or (isinstance(value, dict) and not is_b64(value)):
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {type_string(value)}")
    if isinstance(value, bool):
        need("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict):
        need("bytes_list")
        feature.bytes_list.value.append(decode_b64(value))
    elif isinstance(value, str):
        need("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, float):
        need("float_list")
        feature.float_list.value.append(value)
    else:
        need("int64_list")
        if value > 2 ** 63 - 1:
            raise invalid(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        feature.int64_list.value.append(value)


def _example(value: Any, example) -> None:
    """``MakeExampleFromJsonObject``."""
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {type_string(value)}")
    for name, content in value.items():
        feature = example.features.feature[name]
        for v in (content if isinstance(content, list) else [content]):
            _add_to_feature(v, name, feature)


def examples_input(doc: dict, input_proto) -> None:
    """Fills a ``tensorflow.serving.Input`` from a ``:classify`` / ``:regress`` body."""
    has_context = CONTEXT in doc
    if has_context:
        _example(doc[CONTEXT], input_proto.example_list_with_context.context)
    if EXAMPLES not in doc:
        raise invalid(f"JSON Value: {debug_string(doc)} When method is classify, key 'examples' is expected and "
                      "was not found")
    examples = doc[EXAMPLES]
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {debug_string(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid(f"JSON Value: {debug_string(doc)} 'examples' value is an empty array")
    target = input_proto.example_list_with_context if has_context else input_proto.example_list
    for value in examples:
        _example(value, target.examples.add())


def classification_response(result) -> str:
    """``MakeJsonFromClassificationResult``: ``{"results": [[[label, score], ...], ...]}``."""
    import json

    from serving.standin.json_tensors import decimal

    if not result.classifications:
        raise invalid("Cannot convert empty ClassificationResults to JSON")
    per_example = ("[" + ",".join(f"[{json.dumps(c.label, ensure_ascii=False)}, {decimal(c.score)}]"
                                  for c in entry.classes) + "]" for entry in result.classifications)
    return f'{{"{RESULTS}": [' + ",".join(per_example) + "]}"


def regression_response(result) -> str:
    """``MakeJsonFromRegressionResult``: ``{"results": [value, ...]}``."""
    from serving.standin.json_tensors import decimal

    if not result.regressions:
        raise invalid("Cannot convert empty RegressionResults to JSON")
    return f'{{"{RESULTS}": [' + ",".join(decimal(r.value) for r in result.regressions) + "]}"
