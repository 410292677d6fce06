"""TF Serving's checks of a Predict against the signature it names, with TF Serving's messages.

A request that fails them gets ``FAILED_PRECONDITION`` (unknown signature) or ``INVALID_ARGUMENT``
(inputs), never an error from inside the model:

* the signature exists (:func:`signature_of`);
* the inputs are exactly the signature's, each of its dtype and of a shape compatible with its static
  shape (:func:`check_inputs`); with ``enable_batching``, every input has the same 0th dimension, as
  TF Serving's batching session requires;
* every ``output_filter`` name is an output of the signature (:func:`check_output_filter`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import grpc
import numpy as np

from serving import protocol as P


def signature_of(signatures: Mapping[str, P.SignatureInfo], name: str) -> P.SignatureInfo:
    sig = signatures.get(name)
    if sig is None:
        raise P.ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                             f'Serving signature key "{name}" not found.')
    return sig


def check_inputs(sig: P.SignatureInfo, inputs: Mapping[str, np.ndarray],
                 enable_batching: bool = False) -> None:
    sent, expected = set(inputs), set(sig.inputs)
    if sent != expected:
        extra, missing = sorted(sent - expected), sorted(expected - sent)
        raise P.ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
    for i, name in enumerate(sorted(sig.inputs)):
        info, arr = sig.inputs[name], inputs[name]
        got = "string" if arr.dtype.kind in "OSU" else arr.dtype.name
        if got != info.dtype:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"Expects arg[{i}] to be {info.dtype} but {got} is provided "
                                 f"(input '{name}')")
        if not P.shape_compatible(info.shape, arr.shape):
            raise P.ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}': shape {P.format_shape(arr.shape)} is not compatible with "
                f"the signature's {P.format_shape(info.shape)}")
    if enable_batching:
        if any(a.ndim == 0 for a in inputs.values()):
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 "Batching session Run() input tensors must have at least one "
                                 "dimension")
        if len({a.shape[0] for a in inputs.values()}) > 1:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 "Batching session Run() input tensors must have equal "
                                 "0th-dimension size")


def check_output_filter(sig: P.SignatureInfo, output_filter: Sequence[str]) -> None:
    for name in output_filter:
        if name not in sig.outputs:
            raise P.ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {name} Outputs expected to be in "
                f"the set {{{','.join(sorted(sig.outputs))}}}.")
