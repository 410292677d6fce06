"""Choosing r of eq. (5) by information gain.

JAC (Yang et al., AAAI 2024) sets the curvature r of the pctr quantizer "by information gain". We pick,
from a grid, the r whose codes carry the most information about the click:

.. math::

    r^* = \\arg\\max_{r} \\; \\hat I(C_r; Y), \\qquad C_r = c_r(\\hat p),

where :math:`\\hat p` is the ad's **historical CTR** (``ad_hist_ctr``) of each training impression, the
value CR reads online in place of pctr_ad and available before any model is trained, and :math:`Y` is the
click. :math:`\\hat I = \\hat H(Y) - \\hat H(Y \\mid C)` uses the Miller-Madow bias correction
:math:`\\hat H = H_{\\text{plug-in}} + (m - 1) / (2N)` (nats; :math:`m` = occupied cells): with K = 8192 codes
the plug-in estimate rewards spreading the data over many sparsely-filled codes, which the correction
charges for.
"""

from __future__ import annotations

import logging
from typing import Dict, Sequence, Tuple

import numpy as np

from trainer.quantizer import quantize

_LOG = logging.getLogger(__name__)


def _entropy_nats(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(codes, labels, bias_correction: bool = True) -> float:
    """:math:`\\hat I(C; Y)` in bits between integer ``codes`` and binary ``labels``.

    Args:
      codes: int array ``[N]``.
      labels: ``{0, 1}`` array ``[N]``.
      bias_correction: apply the Miller-Madow correction to both entropies.
    """
    codes = np.asarray(codes).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if codes.shape != labels.shape:
        raise ValueError(f"codes and labels differ in length: {codes.shape[0]} vs {labels.shape[0]}")
    n = codes.shape[0]
    if n == 0:
        raise ValueError("mutual_information needs at least one example")
    if np.any((labels != 0) & (labels != 1)):
        raise ValueError("labels must be 0 or 1")
    _, inverse = np.unique(codes, return_inverse=True)
    joint = np.zeros((inverse.max() + 1, 2), np.int64)
    np.add.at(joint, (inverse, labels), 1)
    per_code = joint.sum(axis=1)

    h_y = _entropy_nats(joint.sum(axis=0))
    h_y_given_c = sum(per_code[i] / n * _entropy_nats(joint[i]) for i in range(joint.shape[0]))
    if bias_correction:
        h_y += (np.count_nonzero(joint.sum(axis=0)) - 1) / (2.0 * n)
        h_y_given_c += (np.count_nonzero(joint, axis=1) - 1).sum() / (2.0 * n)
    return (h_y - h_y_given_c) / np.log(2.0)


def choose_r(pctr, labels, buckets: int, grid: Sequence[float]) -> Tuple[float, Dict[float, float]]:
    """The r of ``grid`` maximising :func:`mutual_information` of the eq.-(5) codes of ``pctr``.

    Ties go to the earlier grid value. Returns ``(r, {r: information in bits})`` and logs the choice.
    """
    if not len(grid):
        raise ValueError("choose_r needs a non-empty grid")
    scores = {float(r): mutual_information(quantize(pctr, r, buckets), labels) for r in grid}
    best = max(scores, key=lambda r: (scores[r], -list(scores).index(r)))
    _LOG.info("quantizer r chosen by information gain: r=%g (bits: %s)", best,
              ", ".join(f"{r:g}: {v:.5f}" for r, v in scores.items()))
    return best, scores
