r"""Reading a written split back, and ground-truth values of creative selection policies.

The truth columns (:data:`features.TRUTH_CTR`, :data:`features.TRUTH_CAND_CTRS`) give the true click
probability of every candidate of every impression, so the value of any creative selection rule is
known exactly, with no off-policy estimation:

.. math::
    V(\text{select}) = \frac{1}{n} \sum_i p_i\big(\text{select}(i)\big),

e.g. the oracle :math:`\max_k p_{ik}`, the uniform-random policy :math:`\frac{1}{N_i}\sum_k p_{ik}`, the
logging policy :math:`p_i(\text{exposed}_i)`, or a model's :math:`p_i(\arg\max_k \hat s_{ik})`.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, Optional, Sequence, Union

import numpy as np

import features as F
from simulator.arrays import offsets, segment_argmax

# A read column: a 1-D array for scalars, [n, length] for fixed lists, (flat values, lengths) for varlen.
ReadColumn = Union[np.ndarray, tuple]


def split_files(out_dir: str, split: str) -> Sequence[str]:
    files = sorted(glob.glob(os.path.join(out_dir, split, "*.tfrecord")))
    if not files:
        raise FileNotFoundError(f"no TFRecord files in {os.path.join(out_dir, split)}")
    return files


def read_split(out_dir: str, split: str, names: Optional[Sequence[str]] = None,
               batch_size: int = 65_536) -> Dict[str, ReadColumn]:
    """Parses a split with :func:`features.raw_feature_spec` into NumPy columns (TensorFlow needed)."""
    import tensorflow as tf

    names = list(names or F.BY_NAME)
    spec = F.raw_feature_spec(names)
    parts: Dict[str, list] = {name: [] for name in names}
    dataset = tf.data.TFRecordDataset(list(split_files(out_dir, split))).batch(batch_size)
    for serialized in dataset:
        parsed = tf.io.parse_example(serialized, spec)
        rows = int(serialized.shape[0])
        for name in names:
            value = parsed[name]
            if isinstance(value, tf.SparseTensor):
                lengths = np.bincount(value.indices[:, 0].numpy(), minlength=rows)
                parts[name].append((value.values.numpy(), lengths))
            else:
                parts[name].append(value.numpy())
    out: Dict[str, ReadColumn] = {}
    for name in names:
        if F.BY_NAME[name].kind == F.VARLEN:
            out[name] = (np.concatenate([p[0] for p in parts[name]]),
                         np.concatenate([p[1] for p in parts[name]]))
        else:
            out[name] = np.concatenate(parts[name])
    return out


def selected_ctr(cand_ctrs: np.ndarray, num_candidates: np.ndarray, selected_index: np.ndarray) -> float:
    """Mean true CTR when impression ``i`` shows its candidate ``selected_index[i]``."""
    ptr = offsets(num_candidates)
    selected_index = np.asarray(selected_index, np.int64)
    if (selected_index < 0).any() or (selected_index >= num_candidates).any():
        raise ValueError("selected_index: every index must be in [0, num_candidates)")
    return float(cand_ctrs[ptr[:-1] + selected_index].mean())


def argmax_per_impression(scores: np.ndarray, num_candidates: np.ndarray) -> np.ndarray:
    """Index of the first highest score among each impression's candidates (flat ``scores``)."""
    return segment_argmax(scores, offsets(num_candidates))


def policy_values(columns: Dict[str, ReadColumn]) -> Dict[str, float]:
    """True mean CTR of the logging, oracle and uniform-random creative choices on a read split."""
    cand_ctrs, lengths = columns[F.TRUTH_CAND_CTRS]
    ptr = offsets(lengths)
    return {
        "logged": float(np.mean(columns[F.TRUTH_CTR])),
        "oracle": float(np.maximum.reduceat(cand_ctrs, ptr[:-1]).mean()),
        "random": float((np.add.reduceat(cand_ctrs, ptr[:-1]) / lengths).mean()),
        "observed": float(np.mean(columns[F.CLICK])),
    }
