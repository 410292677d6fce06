"""Impressions and clicks per exposed creative in the training logs: what the bandit CRs are fitted on.

The Bayesian creative rankers (``trainer.hbm``, ``trainer.beta_ts``) are not trained by gradient steps on
impressions: their posteriors are closed-form in each creative's counts, and the visual prior is trained on
each ad's list of creatives with their smoothed CTRs. :func:`read_creative_log` reads the transformed
training examples once and aggregates them into *creative groups* -- rows of one ad with one creative index
and one content embedding, so every group has fixed features (an out-of-vocabulary creative index pools
several creatives; their embeddings keep them apart). :func:`fit_beta_prior` fits the Beta prior of a
creative's CTR to the counts (Beta-Bernoulli sampling, and the smoothing of the visual prior's labels).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import numpy as np

import features as F
from transform import names as N
from trainer.data import make_dataset

ATTRIBUTES = tuple(N.xf(n) for n in F.CREATIVE_ATTRIBUTES)
AD_INDEX = N.xf(F.AD_ID)
CREATIVE_INDEX = N.xf(F.CREATIVE_ID)
LOG_INPUTS = (AD_INDEX, CREATIVE_INDEX) + ATTRIBUTES + N.CR_DENSE


@dataclasses.dataclass(frozen=True)
class CreativeLog:
    """Creative groups of a training log, ``G`` of them, each with fixed features.

    Attributes:
      ad, creative: int64 ``[G]`` transformed ad and creative indices.
      attributes: int64 ``[G, 4]`` transformed creative attribute codes (order of ``ATTRIBUTES``).
      embedding: float32 ``[G, 8]`` content embedding.
      impressions, clicks: int64 ``[G]``.
      creative_vocab_size, ad_vocab_size: indices below these are single ids; the rest are OOV buckets.
    """

    ad: np.ndarray
    creative: np.ndarray
    attributes: np.ndarray
    embedding: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    creative_vocab_size: int
    ad_vocab_size: int

    def __len__(self) -> int:
        return len(self.ad)

    @property
    def known_creative(self) -> np.ndarray:
        """``[G]`` bool: the group's creative index is a single in-vocabulary creative."""
        return self.creative < self.creative_vocab_size

    def features(self) -> Dict[str, np.ndarray]:
        """The groups' creative inputs as transformed features (for the visual prior and the HBM's z)."""
        out = {name: self.attributes[:, i] for i, name in enumerate(ATTRIBUTES)}
        if N.HAS_CREATIVE_EMBEDDING:
            out[N.CREATIVE_EMBEDDING] = self.embedding
        out[AD_INDEX] = self.ad
        out[CREATIVE_INDEX] = self.creative
        return out


def aggregate(columns: Dict[str, np.ndarray], labels: np.ndarray, creative_vocab_size: int,
              ad_vocab_size: int) -> CreativeLog:
    """Impression rows (``LOG_INPUTS`` columns and clicks) -> :class:`CreativeLog`."""
    # [n, 0] without a content embedding: the groups are then (ad, creative index) alone.
    embedding = (np.asarray(columns[N.CREATIVE_EMBEDDING], np.float32).reshape(len(labels), -1)
                 if N.HAS_CREATIVE_EMBEDDING else np.zeros((len(labels), 0), np.float32))
    key = np.concatenate([np.stack([columns[AD_INDEX], columns[CREATIVE_INDEX]], axis=1).astype(np.int64),
                          embedding.view(np.int32).astype(np.int64)], axis=1)
    _, first, group, impressions = np.unique(key, axis=0, return_index=True, return_inverse=True,
                                             return_counts=True)
    group = group.reshape(-1)
    clicks = np.bincount(group, weights=np.asarray(labels, np.float64), minlength=len(first))
    return CreativeLog(
        ad=np.asarray(columns[AD_INDEX], np.int64)[first],
        creative=np.asarray(columns[CREATIVE_INDEX], np.int64)[first],
        attributes=np.stack([np.asarray(columns[n], np.int64)[first] for n in ATTRIBUTES], axis=1),
        embedding=embedding[first], impressions=impressions.astype(np.int64),
        clicks=np.rint(clicks).astype(np.int64), creative_vocab_size=int(creative_vocab_size),
        ad_vocab_size=int(ad_vocab_size))


def read_creative_log(file_pattern, tft_output, data_accessor=None, batch_size: int = 8192) -> CreativeLog:
    """One pass over transformed examples (``fn_args.train_files``) aggregated into creative groups."""
    ds = make_dataset(file_pattern, tft_output, LOG_INPUTS, batch_size, data_accessor, num_epochs=1,
                      shuffle=False)
    parts: Dict[str, list] = {n: [] for n in LOG_INPUTS}
    labels = []
    for batch, label in ds:
        for name in LOG_INPUTS:
            parts[name].append(batch[name].numpy())
        labels.append(label.numpy().reshape(-1))
    if not labels:
        raise ValueError(f"no training examples under {file_pattern}")
    columns = {n: np.concatenate([p.reshape(len(p), -1) if p.ndim > 1 else p for p in v]) for n, v in parts.items()}
    vocab = {name: tft_output.vocabulary_size_by_name(N.ID_VOCABULARIES[name].filename)
             for name in (F.CREATIVE_ID, F.AD_ID)}
    return aggregate(columns, np.concatenate(labels), vocab[F.CREATIVE_ID], vocab[F.AD_ID])


def vocabulary_keys(tft_output, raw_name: str, rows: int) -> np.ndarray:
    """int64 ``[rows]``: the raw id of each transformed index of ``raw_name`` (-1 for the OOV buckets).

    Posteriors are stored per transformed index; these keys carry them over to the next run's vocabulary.
    """
    vocab = tft_output.vocabulary_by_name(N.ID_VOCABULARIES[raw_name].filename)
    keys = np.full(rows, -1, np.int64)
    keys[:len(vocab)] = [int(v) for v in vocab]
    return keys


# ---------------------------------------------------------------------------------------- Beta prior
def fit_beta_prior(clicks, impressions) -> Tuple[float, float]:
    """Maximum-likelihood Beta(alpha, beta) prior of the creatives' CTRs under a beta-binomial model.

    .. math::

        (\hat\alpha, \hat\beta) = \arg\max \sum_k \log B(c_k + \alpha, n_k - c_k + \beta) - \log B(\alpha, \beta)

    over creatives with :math:`n_k > 0` impressions and :math:`c_k` clicks. Searched in (logit of the mean
    :math:`\alpha / (\alpha + \beta)`, log of the strength :math:`\alpha + \beta`), from the best strength of a
    grid at the pooled CTR: with a few impressions per creative the moments can show less spread than binomial
    noise (an infinite strength) while the likelihood peaks at a few hundred, and far from the peak it is flat.
    Raises ``ValueError`` without impressions, or without any click (the CTR would be 0).
    """
    from scipy import optimize, special

    c = np.asarray(clicks, np.float64)
    n = np.asarray(impressions, np.float64)
    if c.shape != n.shape or (c < 0).any() or (c > n).any():
        raise ValueError("fit_beta_prior: clicks and impressions must have one shape, with 0 <= clicks <= impressions")
    keep = n > 0
    c, n = c[keep], n[keep]
    if not len(n) or c.sum() == 0:
        raise ValueError("fit_beta_prior: needs impressions with at least one click")

    def nll(params):  # per creative, so the optimizer's tolerances mean the same at any data size
        mean, strength = 1 / (1 + np.exp(-params[0])), np.exp(params[1])
        a, b = mean * strength, (1 - mean) * strength
        return -(special.betaln(c + a, n - c + b) - special.betaln(a, b)).mean()

    pooled = np.log(c.sum() / (n.sum() - c.sum()))
    start = min((np.array([pooled, np.log(s)]) for s in np.logspace(0, 7, 29)), key=nll)
    result = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-12})
    best = result.x if result.fun <= nll(start) else start
    mean, strength = 1 / (1 + np.exp(-best[0])), np.exp(best[1])
    return float(mean * strength), float((1 - mean) * strength)
