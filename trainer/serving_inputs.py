"""The raw serving contract of the AR and CR SavedModels, and a pure-Python validator for requests.

Each online model's ``features.RAW_SIGNATURE`` takes named tensors, exactly
``features.AR_SERVING_INPUTS`` (AR) or ``features.CR_SERVING_INPUTS`` (CR):

* scalars: 1-D ``[B]``, int64 or float32 by the feature's dtype;
* ``features.CREATIVE_EMBEDDING``: ``[B, features.CREATIVE_EMBEDDING_DIM]`` float32;
* sequences (``features.SEQUENCE_FEATURES``): ``[B, L]`` int64, right-padded with ``features.SEQUENCE_PAD``;
* inputs in ``features.BROADCASTABLE_INPUTS`` may have batch 1 (sent once per request, broadcast to every
  row); all others share one batch size B.

:func:`validate_raw_inputs` checks a request against this contract before it is sent, with errors that
name the feature; it needs only NumPy (no TensorFlow), so request routers can use it.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np

import features as F

# Input sets of the online models' raw signatures, by model name; a creative-aware AR (served as
# features.AR_MODEL_NAME too) has its own set, and the two-tower CR's tower signatures theirs.
CREATIVE_AWARE_AR = "acr"
CACS_AR = "cacs_ar"  # the CACS ranker: the creative id too (its selector's creative tower reads it)
USER_TOWER = "user_tower"
CREATIVE_TOWER = "creative_tower"
SERVING_INPUTS = {
    F.AR_MODEL_NAME: F.AR_SERVING_INPUTS,
    F.CR_MODEL_NAME: F.CR_SERVING_INPUTS,
    CREATIVE_AWARE_AR: F.ACR_SERVING_INPUTS,
    CACS_AR: F.CACS_AR_SERVING_INPUTS,
    USER_TOWER: F.CR_USER_FEATURES,
    CREATIVE_TOWER: F.CR_AD_FEATURES + F.CREATIVE_FEATURES,
}


class ServingInputError(ValueError):
    """A raw serving request does not follow the contract; the message names the feature."""


def input_rank(name: str) -> int:
    """Rank of the raw serving tensor of ``name``: 1 for scalars, 2 for the embedding and sequences."""
    return 1 if F.BY_NAME[name].kind == F.SCALAR else 2


def input_dtype(name: str) -> str:
    return F.BY_NAME[name].dtype


def reference_input(model_name: str) -> str:
    """The first non-broadcastable input of ``model_name`` (else its first): its length is the batch size."""
    names = SERVING_INPUTS[model_name]
    return next((n for n in names if n not in F.BROADCASTABLE_INPUTS), names[0])


def pad_sequences(sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Right-pads variable-length id lists with ``features.SEQUENCE_PAD`` into an int64 ``[B, L]`` array."""
    width = max((len(s) for s in sequences), default=0)
    out = np.full((len(sequences), width), F.SEQUENCE_PAD, np.int64)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out


def _as_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise ServingInputError(f"serving input {name!r}: not a rectangular array ({e}); pad sequences with "
                                f"features.SEQUENCE_PAD={F.SEQUENCE_PAD}") from None
    if arr.dtype == object:
        raise ServingInputError(f"serving input {name!r}: ragged or non-numeric values; pad sequences with "
                                f"features.SEQUENCE_PAD={F.SEQUENCE_PAD}")
    return arr


def validate_raw_inputs(model_name: str, inputs: Mapping[str, Any]) -> Tuple[int, Dict[str, np.ndarray]]:
    """Checks a raw request for ``model_name`` (a key of :data:`SERVING_INPUTS`, e.g. ``features.AR_MODEL_NAME``).

    Returns ``(batch_size, arrays)``: the request's row count B and every input as a NumPy array of the
    contract's dtype (int64 / float32).

    Raises:
      ServingInputError (a ValueError) naming the feature: missing or unknown inputs, a wrong dtype (floats
      for an int feature, non-numbers), a wrong rank or embedding width, a batch size other than B (or 1
      for broadcastable inputs), unequal shapes of the paired sequences.
    """
    if model_name not in SERVING_INPUTS:
        raise ServingInputError(f"unknown model {model_name!r}; expected one of {sorted(SERVING_INPUTS)}")
    expected = SERVING_INPUTS[model_name]
    missing = [n for n in expected if n not in inputs]
    if missing:
        raise ServingInputError(f"{model_name}: missing serving input(s) {missing}")
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise ServingInputError(f"{model_name}: unknown serving input(s) {unknown}; expected {list(expected)}")

    arrays: Dict[str, np.ndarray] = {}
    for name in expected:
        arr = _as_array(name, inputs[name])
        if input_dtype(name) == F.INT:
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise ServingInputError(f"serving input {name!r}: expected int64 values, got {arr.dtype}")
            arr = arr.astype(np.int64)
        else:
            if arr.size and not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise ServingInputError(f"serving input {name!r}: expected float32 values, got {arr.dtype}")
            arr = arr.astype(np.float32)
        rank = input_rank(name)
        if arr.ndim != rank:
            raise ServingInputError(f"serving input {name!r}: expected rank {rank} ({'[B]' if rank == 1 else '[B, n]'}),"
                                    f" got shape {list(arr.shape)}")
        if name == F.CREATIVE_EMBEDDING and arr.shape[1] != F.CREATIVE_EMBEDDING_DIM:
            raise ServingInputError(f"serving input {name!r}: expected width {F.CREATIVE_EMBEDDING_DIM}, "
                                    f"got shape {list(arr.shape)}")
        arrays[name] = arr

    ref = reference_input(model_name)
    batch = arrays[ref].shape[0]
    for name in expected:
        n = arrays[name].shape[0]
        if name in F.BROADCASTABLE_INPUTS:
            if n not in (1, batch):
                raise ServingInputError(f"serving input {name!r}: batch size {n}, expected 1 or {batch} "
                                        f"(the batch size of {ref!r})")
        elif n != batch:
            raise ServingInputError(f"serving input {name!r}: batch size {n} differs from {batch}, the batch size "
                                    f"of {ref!r}")
    seqs = [n for n in F.SEQUENCE_FEATURES if n in arrays]
    for name in seqs[1:]:
        if arrays[name].shape != arrays[seqs[0]].shape:
            raise ServingInputError(f"serving input {name!r}: shape {list(arrays[name].shape)} differs from "
                                    f"{seqs[0]!r} {list(arrays[seqs[0]].shape)}; the sequences are parallel")
    return batch, arrays


def example_request(model_name: str, batch_size: int, user_batch_size: int = 1, seed: int = 0,
                    sequence_length: int = 5) -> Dict[str, np.ndarray]:
    """A valid random raw request (for warm-up records, smoke tests and benchmarks).

    Broadcastable inputs get ``user_batch_size`` rows (1: one user for the whole request), the others
    ``batch_size``. Ids are small non-negative integers, codes lie in their domains, sequences hold
    ``sequence_length`` real ids, right-padded to one more column with ``features.SEQUENCE_PAD``.
    """
    rng = np.random.default_rng(seed)
    out: Dict[str, np.ndarray] = {}
    for name in SERVING_INPUTS[model_name]:
        f = F.BY_NAME[name]
        n = user_batch_size if name in F.BROADCASTABLE_INPUTS else batch_size
        if name == F.CREATIVE_EMBEDDING:
            out[name] = rng.normal(size=(n, F.CREATIVE_EMBEDDING_DIM)).astype(np.float32)
        elif name in F.SEQUENCE_FEATURES:
            high = f.domain or 100
            seq = rng.integers(0, high, (n, sequence_length + 1)).astype(np.int64)
            seq[:, sequence_length:] = F.SEQUENCE_PAD
            out[name] = seq
        elif f.dtype == F.FLOAT:
            out[name] = rng.uniform(0.0, 0.1, n).astype(np.float32)
        else:
            out[name] = rng.integers(0, f.domain or 100, n).astype(np.int64)
    return out
