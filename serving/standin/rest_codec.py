"""TF Serving's REST Predict body ↔ named arrays: columnar ``"inputs"`` / ``"outputs"``, row
``"instances"`` / ``"predictions"``.

* :func:`decode_predict_body` — the JSON body and its ``signature_name``;
* :func:`json_inputs` — the body's inputs as arrays of the signature's dtypes (one unnamed input when
  the signature has one; rows must all name the same inputs);
* :func:`json_outputs` — outputs in the request's format (a single output unnamed; row format needs
  every output to share its 0th dimension).

Errors are ``INVALID_ARGUMENT`` with TF Serving's messages where it has one.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Tuple

import grpc
import numpy as np

import features as F
from serving import protocol as P


def _invalid(message: str) -> P.ServingError:
    return P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def decode_predict_body(raw: bytes) -> Tuple[Dict[str, Any], str]:
    """(body, signature name) of a ``:predict`` request."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        pos = getattr(e, "pos", 0)
        msg = getattr(e, "msg", str(e))
        raise _invalid(f"JSON Parse error: {msg} at offset: {pos}") from None
    if not isinstance(body, dict):
        raise _invalid("JSON Value: the request body must be a JSON object")
    signature = body.get("signature_name", F.SERVING_SIGNATURE)
    if not isinstance(signature, str):
        raise _invalid("'signature_name' key must be a string")
    return body, signature


def json_inputs(body: dict, sig: P.SignatureInfo) -> Tuple[Dict[str, np.ndarray], bool]:
    """Request JSON → named arrays; returns (inputs, row_format)."""
    has_inputs, has_instances = "inputs" in body, "instances" in body
    if has_inputs == has_instances:
        raise _invalid("Missing 'inputs' or 'instances' key" if not has_inputs else
                       "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists")
    names = sorted(sig.inputs)
    try:
        columns = _columns(body["inputs"], names) if has_inputs else _rows_to_columns(body["instances"], names)
        missing = [n for n in names if n not in columns]
        if missing:
            raise _invalid(f"Missing named input: {missing[0]} in "
                           f"'{'inputs' if has_inputs else 'instances'}' object.")
        extra = [n for n in columns if n not in sig.inputs]
        if extra:
            raise _invalid(f"input tensor alias not found in signature: {extra[0]}. Inputs "
                           f"expected to be in the set {{{','.join(names)}}}.")
        inputs = {n: P.from_json_value(columns[n], sig.inputs[n].dtype, n) for n in names}
    except ValueError as e:
        raise _invalid(str(e)) from None
    return inputs, has_instances


def _columns(value: Any, names) -> Dict[str, Any]:
    """Columnar ``"inputs"``: an object of named inputs, or the lone input's value."""
    if isinstance(value, dict) and not (len(names) == 1 and set(value) == {"b64"}):
        return value
    if len(names) == 1:
        return {names[0]: value}
    raise _invalid("'inputs' must be an object of named inputs when the signature has more than one "
                   f"input ({','.join(names)})")


def _rows_to_columns(rows: Any, names) -> Dict[str, Any]:
    """Row ``"instances"``: a list of objects of named inputs, or of the lone input's values."""
    if not isinstance(rows, list) or not rows:
        raise _invalid("'instances' must be a non-empty list")
    if all(isinstance(r, dict) and not (set(r) == {"b64"}) for r in rows):
        keys = set(rows[0])
        for i, r in enumerate(rows):
            if set(r) != keys:
                raise _invalid(f"Failed to process element: {i} of 'instances' list. Error: keys "
                               f"{sorted(r)} differ from the first element's {sorted(keys)}")
        return {k: [r[k] for r in rows] for k in keys}
    if len(names) == 1:
        return {names[0]: rows}
    raise _invalid("'instances' elements must be objects of named inputs when the signature has more "
                   f"than one input ({','.join(names)})")


def json_outputs(outputs: Dict[str, np.ndarray], row_format: bool) -> Dict[str, Any]:
    if not row_format:
        if len(outputs) == 1:  # TF Serving omits the name of a single output
            (name, arr), = outputs.items()
            return {"outputs": P.to_json_value(arr, name)}
        return {"outputs": {k: P.to_json_value(v, k) for k, v in outputs.items()}}
    sizes = {v.shape[0] if v.ndim else 0 for v in outputs.values()}
    if len(sizes) != 1:
        raise _invalid("Tensors with different 0th dimensions cannot be returned in row format; "
                       "send 'inputs' (columnar) instead of 'instances'")
    n = sizes.pop()
    columns = {k: P.to_json_value(v, k) for k, v in outputs.items()}
    if len(columns) == 1:
        (values,) = columns.values()
        return {"predictions": values}
    return {"predictions": [{k: columns[k][i] for k in columns} for i in range(n)]}
