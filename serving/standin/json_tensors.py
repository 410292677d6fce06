"""JSON values ↔ tensors as TF Serving's ``json_tensor.cc`` converts them (RapidJSON's reading and writing).

* :func:`parse_document` — a request body: RapidJSON's errors (``JSON Parse error: Invalid value. at
  offset: 7``), NaN and Infinity accepted, anything after the document ignored, the top level an object.
* :func:`tensor_from_json` — one tensor from a (nested) list, strictly by the signature's dtype: floats
  take any JSON number, integers only JSON integers in range (``2.0`` is not an ``int64``), strings JSON
  strings or ``{"b64": ...}``; the shape comes from the first elements and every list must match it
  (``Encountered list at unexpected size: 2 at level: 1 expected size: 3``).
* :func:`tensor_to_json` — a tensor as TF Serving writes it: floats in six significant digits unless that
  loses the value (then nine, or seventeen for doubles), whole numbers with ``.0``, ``NaN`` /
  ``Infinity``; string tensors whose name ends in ``_bytes`` as ``{"b64": ...}``.
* :func:`debug_string` — a value as error messages quote it (RapidJSON's pretty writer).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, List

import grpc
import numpy as np

from serving import protocol as P

B64 = "b64"
BYTES_SUFFIX = "_bytes"
_INT32 = (-2 ** 31, 2 ** 31 - 1)
_INT64 = (-2 ** 63, 2 ** 63 - 1)
_UINT32 = (0, 2 ** 32 - 1)
_UINT64 = (0, 2 ** 64 - 1)
_FLOAT_MAX = 3.4028234e38


def invalid(message: str) -> P.ServingError:
    return P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


# ------------------------------------------------------------------------------------------- reading
_RAPIDJSON_ERRORS = (
    ("Expecting value", "Invalid value."),
    ("Expecting property name enclosed in double quotes", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid control character", "Invalid encoding in string."),
    ("Invalid \\uXXXX escape", "Incorrect hex digit after \\u escape in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
)


def _innermost_open(text: str, pos: int) -> str:
    """'{' or '[': the innermost bracket still open at ``pos`` (strings skipped)."""
    stack, in_string, escaped = [], False, False
    for ch in text[:pos]:
        if in_string:
            escaped, in_string = (not escaped and ch == "\\"), in_string and (escaped or ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else "{"


def _parse_error(text: str, e: json.JSONDecodeError) -> P.ServingError:
    msg = next((ours for theirs, ours in _RAPIDJSON_ERRORS if e.msg.startswith(theirs)), None)
    if msg is None and e.msg.startswith("Expecting ',' delimiter"):
        msg = ("Missing a comma or '}' after an object member." if _innermost_open(text, e.pos) == "{"
               else "Missing a comma or ']' after an array element.")
    return invalid(f"JSON Parse error: {msg or 'Invalid value.'} at offset: {e.pos}")


def parse_document(body: bytes) -> dict:
    """A request body as a JSON object (``ParseJson``)."""
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise invalid(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    start = len(text) - len(text.lstrip())
    if start == len(text):
        raise invalid(f"JSON Parse error: The document is empty at offset: {start}")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text, start)  # stops when done, as kParseStopWhenDoneFlag
    except json.JSONDecodeError as e:
        raise _parse_error(text, e) from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {debug_string(doc)} Is not object")
    return doc


def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64), str)


def decode_b64(value: Any) -> bytes:
    if not is_b64(value):
        raise invalid(f"JSON Value: {debug_string(value)} not formatted correctly for base64 data")
    try:
        return base64.b64decode(value[B64], validate=True)
    except ValueError:
        raise invalid("Unable to base64 decode") from None


def type_string(value: Any) -> str:
    """RapidJSON's type name, as ``JsonTypeString``."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def dtype_string(dtype: np.dtype, is_string: bool = False) -> str:
    """``DataTypeString``: ``float``, ``double``, ``int64``, ``string``..."""
    if is_string:
        return "string"
    return {"float32": "float", "float64": "double", "float16": "half"}.get(dtype.name, dtype.name)


def _accepts(kind: str):
    """(python types accepted as they are, integer range or None) of a tensor value kind."""
    return {
        "float": ((int, float), None), "int32": ((int,), _INT32), "int64": ((int,), _INT64),
        "uint32": ((int,), _UINT32), "uint64": ((int,), _UINT64), "bool": ((bool,), None),
    }[kind]


def _value_kind(dtype: np.dtype) -> str:
    if dtype.kind == "f":
        return "float"
    if dtype == np.bool_:
        return "bool"
    if dtype in (np.dtype(np.int32), np.dtype(np.int16), np.dtype(np.int8), np.dtype(np.uint8)):
        return "int32"
    if dtype in (np.dtype(np.int64), np.dtype(np.uint32), np.dtype(np.uint64)):
        return {"int64": "int64", "uint32": "uint32", "uint64": "uint64"}[dtype.name]
    raise KeyError(dtype.name)


def _check_scalar(value: Any, dtype: np.dtype, kind: str):
    if isinstance(value, dict):
        raise invalid(f"JSON Value: {debug_string(value)} Type: Object is not of expected type: "
                      f"{dtype_string(dtype)}")
    types, bounds = _accepts(kind)
    ok = type(value) in types and not (kind != "bool" and isinstance(value, bool))
    if ok and bounds is not None:
        ok = bounds[0] <= value <= bounds[1]
    if not ok:
        raise invalid(f"JSON Value: {debug_string(value)} Type: {type_string(value)} is not of expected type: "
                      f"{dtype_string(dtype)}")


def tensor_from_json(value: Any, dtype: np.dtype, is_string: bool = False) -> np.ndarray:
    """One tensor of ``dtype`` (``is_string``: ``DT_STRING``) from a JSON value (``FillTensorProto``)."""
    shape: List[int] = []
    v = value
    while isinstance(v, list):
        shape.append(len(v))
        if not v:
            break
        v = v[0]
    rank = len(shape)
    out: list = []
    kind = None if is_string else _kind_or_unimplemented(value, dtype)
    _fill(value, 0, shape, out, dtype, kind)
    if is_string:
        arr = np.empty(len(out), dtype=object)
        arr[:] = out
        return arr.reshape(shape) if rank else arr.reshape(())
    return np.array(out, dtype=dtype).reshape(shape)


def _kind_or_unimplemented(value, dtype):
    try:
        return _value_kind(dtype)
    except KeyError:
        raise P.ServingError(grpc.StatusCode.UNIMPLEMENTED, f"Conversion of JSON Value: {debug_string(value)} to "
                                                             f"type: {dtype_string(dtype)}") from None


def _string_value(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        return decode_b64(value)
    raise invalid(f"JSON Value: {debug_string(value)} Type: {type_string(value)} is not of expected type: string")


def _fill(value: Any, level: int, shape: List[int], out: list, dtype, kind) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in the JSON "
                          f"DOM. Expected at level: {rank}")
        if kind is None:
            out.append(_string_value(value))
        else:
            _check_scalar(value, dtype, kind)
            out.append(value)
        return
    if level >= rank:
        raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid(f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: "
                      f"{shape[level]}")
    if level == rank - 1 and kind is not None:  # the innermost lists: one type check for all values
        types, bounds = _accepts(kind)
        found = set(map(type, value))
        if found <= set(types) and (kind == "bool" or bool not in found) and (
                bounds is None or not value or bounds[0] <= min(value) and max(value) <= bounds[1]):
            out.extend(value)
            return
    for v in value:
        _fill(v, level + 1, shape, out, dtype, kind)


# ------------------------------------------------------------------------------------------- writing
def decimal(x: float, double: bool = False) -> str:
    """``WriteDecimal``: a float as TF Serving writes it."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "-Infinity" if x < 0 else "Infinity"
    s = f"{x:.6g}"
    if (float(s) if double else np.float32(s)) != x:
        s = f"{x:.17g}" if double else f"{x:.9g}"
    if "." not in s and "e" not in s:
        s += ".0"
    return s


def _scalars(arr: np.ndarray, as_b64: bool) -> List[str]:
    flat = arr.ravel()
    if arr.dtype.kind in "OSU":
        def text(v):
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            if as_b64:
                return '{"b64": "' + base64.b64encode(b).decode("ascii") + '"}'
            return json.dumps(b.decode("utf-8", errors="replace"), ensure_ascii=False)
        return [text(v) for v in flat]
    if arr.dtype.kind == "f":
        double = arr.dtype == np.float64
        return [decimal(v, double) for v in flat.astype(np.float64 if double else np.float32).tolist()]
    if arr.dtype == np.bool_:
        return ["true" if v else "false" for v in flat.tolist()]
    return [str(v) for v in flat.tolist()]


def _nest(items: List[str], shape) -> str:
    if not shape:
        return items[0]
    if len(shape) == 1:
        return "[" + ",".join(items) + "]"
    step = int(np.prod(shape[1:], dtype=np.int64))
    return "[" + ",".join(_nest(items[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])) + "]"


def tensor_to_json(arr: np.ndarray, name: str = "") -> str:
    """The JSON text of a whole tensor (``AddTensorValues``)."""
    arr = np.asarray(arr)
    return _nest(_scalars(arr, arr.dtype.kind in "OSU" and name.endswith(BYTES_SUFFIX)), arr.shape)


def rows_to_json(arr: np.ndarray, name: str = "") -> List[str]:
    """The JSON text of each row (0th-dimension slice) of a tensor."""
    arr = np.asarray(arr)
    items = _scalars(arr, arr.dtype.kind in "OSU" and name.endswith(BYTES_SUFFIX))
    step = int(np.prod(arr.shape[1:], dtype=np.int64))
    return [_nest(items[i * step:(i + 1) * step], arr.shape[1:]) for i in range(arr.shape[0])]


def debug_string(value: Any, indent: int = 0) -> str:
    """A JSON value as RapidJSON's PrettyWriter prints it in TF Serving's error messages."""
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{\n" + ",\n".join(f"{inner}{json.dumps(k, ensure_ascii=False)}: {debug_string(v, indent + 4)}"
                                  for k, v in value.items()) + f"\n{pad}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + debug_string(v, indent + 4) for v in value) + f"\n{pad}]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return decimal(value, double=abs(value) > _FLOAT_MAX)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
