"""GenCO's training and evaluation input: a log in memory as NumPy arrays, or the Transform output as batches.

* :func:`read_log` -- raw GenCO TFRecords (``features.GENCO_FEATURES``) -> the model's dense inputs
  (:func:`transform.genco.dense_inputs`), the ids and clicks, and optionally the truth arrays that
  :mod:`simulator.combinations.truth` evaluates; what the experiments and tests train and evaluate on;
* :func:`batches` -- those arrays as a ``tf.data.Dataset`` of ``(features, label)``;
* :func:`transformed_dataset` -- the Transform component's output (the pipeline's Trainer).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

import features as F
from transform import genco as G

TRUTH = ("base", "element_logits", "styles", "pair_logits")


def _files(pattern: Union[str, Sequence[str]]):
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no files match {patterns}")
    return files


@tf.autograph.experimental.do_not_convert
def _parse(serialized, truth: bool):
    raw = tf.io.parse_example(serialized, F.genco_raw_feature_spec())
    out = G.dense_inputs(raw)
    if truth:
        out["base"] = raw[F.GENCO_TRUTH_BASE_LOGIT]
        out["element_logits"] = tf.stack([G.pool_matrix(raw[F.GENCO_TRUTH_LOGITS[c]], dtype=tf.float32)
                                          for c in F.GENCO_COMPONENTS], axis=1)
        out["styles"] = tf.stack([G.pool_matrix(raw[F.GENCO_CAND_STYLES[c]]) for c in F.GENCO_COMPONENTS], axis=1)
        out["pair_logits"] = raw[F.GENCO_TRUTH_PAIR_LOGITS]
        out[F.GENCO_TRUTH_CTR] = raw[F.GENCO_TRUTH_CTR]
        out[F.GENCO_TRUTH_ORACLE_CTR] = raw[F.GENCO_TRUTH_ORACLE_CTR]
    return out


def read_log(pattern: Union[str, Sequence[str]], truth: bool = False, batch_size: int = 8192) -> Dict[str, np.ndarray]:
    """A whole GenCO split in memory: the dense model inputs, ``LOGGED``, ``LOGGED_PROPENSITY``, the click and
    (``truth=True``) the truth arrays :data:`TRUTH` plus the logged and oracle true CTRs. Pools are stored as
    int32 (the model casts), a quarter of int64's memory."""
    ds = tf.data.TFRecordDataset(_files(pattern)).batch(batch_size).map(lambda s: _parse(s, truth))
    parts: Dict[str, list] = {}
    for batch in ds:
        for k, v in batch.items():
            parts.setdefault(k, []).append(v.numpy())
    out = {k: np.concatenate(v) for k, v in parts.items()}
    for k in (G.POOL_IDS, G.POOL_STYLES, "styles"):
        if k in out and np.abs(out[k]).max(initial=0) < 2 ** 31:
            out[k] = out[k].astype(np.int32)
    return out


def model_inputs(log: Mapping[str, np.ndarray], rows=slice(None)) -> Dict[str, np.ndarray]:
    """The model's inputs (and the logged combination with its propensities, when present) of ``log``'s rows."""
    names = G.MODEL_INPUTS + (G.LOGGED, G.LOGGED_PROPENSITY)
    return {k: log[k][rows] for k in names if k in log}


def pool_sizes(log: Mapping[str, np.ndarray]) -> np.ndarray:
    """[n, m] candidates per component (0: the ad lacks it)."""
    return (np.asarray(log[G.POOL_IDS]).reshape(-1, G.M, G.N) >= 0).sum(axis=2)


def batches(log: Mapping[str, np.ndarray], batch_size: int, shuffle: bool = True, seed: int = 0,
            epochs: Optional[int] = 1) -> tf.data.Dataset:
    """``(features, click)`` batches of an in-memory log (reshuffled every epoch)."""
    ds = tf.data.Dataset.from_tensor_slices((model_inputs(log), log[G.LABEL_KEY]))
    if shuffle:
        ds = ds.shuffle(min(len(log[G.LABEL_KEY]), 200_000), seed=seed, reshuffle_each_iteration=True)
    return ds.repeat(epochs).batch(batch_size).prefetch(2)


def transformed_dataset(file_pattern, tft_output, batch_size: int, data_accessor=None, num_epochs=None,
                        shuffle: bool = True, seed: Optional[int] = None) -> tf.data.Dataset:
    """``(features, click)`` batches of the Transform output (the pipeline's Trainer input)."""
    from trainer.data import make_dataset  # its label is transform.names.LABEL_KEY, GenCO's too

    names = G.MODEL_INPUTS + (G.LOGGED, G.LOGGED_PROPENSITY)
    return make_dataset(file_pattern, tft_output, names, batch_size, data_accessor, num_epochs=num_epochs,
                        shuffle=shuffle, seed=seed)
