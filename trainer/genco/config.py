"""Hyperparameters of GenCO (Gu et al., 2025) and of its training, in one typed dataclass.

Defaults follow the paper's Implementation Details: hash embeddings of dimension 4; a context encoder MLP
[32, 16, 8] with batch normalisation; cross-component attention with hidden dimension 4; a shared scorer
MLP [64, 32, 8] -> 1; K = 16 sampled combinations; REINFORCE rewards +1 (click) and -0.1 (no click) with
lambda = 0.15; SGD at a fixed learning rate of 5e-3, batch 1024. The ablations of the paper's Table 3 are
switches (:data:`ABLATIONS`).

This module imports no TensorFlow, so pipeline definitions can read it::

    GenCOConfig.from_dict({"rl_weight": 0.0, "batch_size": 256})
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

from trainer.config import DictConfig

OPTIMIZERS = ("sgd", "adam")

# Table 3 of Gu et al., 2025: the full model and its ablations, as overrides of GenCOConfig.
ABLATIONS: Dict[str, Dict[str, Any]] = {
    "genco": {},
    "no_mil": {"use_mil": False},
    "no_rl": {"rl_weight": 0.0},
    "no_context": {"use_context": False},
    "no_all": {"use_mil": False, "rl_weight": 0.0, "use_context": False},
}


@dataclasses.dataclass(frozen=True)
class GenCOConfig(DictConfig):
    """Every hyperparameter of the GenCO network and of its training.

    Attributes:
      embedding_dim: size of every hash embedding (ids, elements, styles, components).
      context_units: the context encoder's layers (Dense -> BatchNorm -> ReLU each); the last is the size of h.
      attention_dim: hidden size of the cross-component attention (eq. 13).
      scorer_units: hidden layers of the shared scorer phi (eqs. 15, 18, 19), followed by a 1-unit output.
      pooling_units: hidden size of the multi-instance attention weights w (eq. 17).
      num_samples: K, the combinations sampled per ad at serving (eq. 24).
      rl_weight: lambda of eq. 23 (0 turns the policy gradient off: the "w/o RL" ablation).
      click_reward, no_click_reward: REINFORCE rewards of the logged combination.
      max_importance_ratio: clip of the per-component importance ratio pi / mu that makes the policy gradient
        on logged (off-policy) combinations stable (see :mod:`trainer.genco.losses`).
      use_mil: multi-instance reward learning (eqs. 16-20): the shared scorer scores the attention-pooled bag
        of element features. ``False`` ("w/o MIL"): a scorer of its own scores the mean of the element
        features, and the element and combination heads share nothing but the embeddings.
      use_context: cross-component attention (``False``: "w/o context", the element features carry no z).
      initial_ctr: base click rate the scorer's output bias starts at (log-odds), so element and combination
        logits start at the log's CTR instead of 0.5; ``None``: 0 (the trainer sets it from its data).
      optimizer: ``"sgd"`` (the paper's) or ``"adam"``.
      learning_rate: the optimizer's fixed learning rate.
      batch_size, epochs: training batches (used when the Trainer gives no steps).
      eval_batch_size: rows per batch when scoring an evaluation split.
      seed: initializer and serving-sampler seed.
    """

    embedding_dim: int = 4
    context_units: Tuple[int, ...] = (32, 16, 8)
    attention_dim: int = 4
    scorer_units: Tuple[int, ...] = (64, 32, 8)
    pooling_units: int = 8
    num_samples: int = 16
    rl_weight: float = 0.15
    click_reward: float = 1.0
    no_click_reward: float = -0.1
    max_importance_ratio: float = 10.0
    use_mil: bool = True
    use_context: bool = True
    initial_ctr: Optional[float] = None
    optimizer: str = "sgd"
    learning_rate: float = 5e-3
    batch_size: int = 1024
    epochs: int = 1
    eval_batch_size: int = 4096
    seed: int = 0

    def __post_init__(self):
        def fail(field, problem):
            raise ValueError(f"GenCOConfig.{field}: {problem}")

        def positive_int(value):
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        for name in ("embedding_dim", "attention_dim", "pooling_units", "num_samples", "batch_size", "epochs",
                     "eval_batch_size"):
            if not positive_int(getattr(self, name)):
                fail(name, f"must be a positive integer, got {getattr(self, name)!r}")
        for name in ("context_units", "scorer_units"):
            units = getattr(self, name)
            if not units or not all(positive_int(u) for u in units):
                fail(name, f"must be a non-empty sequence of positive integers, got {units!r}")
        if not self.rl_weight >= 0:
            fail("rl_weight", f"must be >= 0, got {self.rl_weight!r}")
        if not self.max_importance_ratio > 0:
            fail("max_importance_ratio", f"must be positive, got {self.max_importance_ratio!r}")
        if self.initial_ctr is not None and not 0.0 < self.initial_ctr < 1.0:
            fail("initial_ctr", f"must lie in (0, 1) or be None, got {self.initial_ctr!r}")
        if not self.learning_rate > 0:
            fail("learning_rate", f"must be positive, got {self.learning_rate!r}")
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("use_mil", "use_context"):
            if not isinstance(getattr(self, name), bool):
                fail(name, f"must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            fail("seed", f"must be an integer >= 0, got {self.seed!r}")

    @classmethod
    def ablation(cls, name: str, overrides: Optional[Mapping[str, Any]] = None) -> "GenCOConfig":
        """The config of the ablation ``name`` of :data:`ABLATIONS` on top of ``overrides``."""
        if name not in ABLATIONS:
            raise ValueError(f"unknown GenCO ablation {name!r}; expected one of {sorted(ABLATIONS)}")
        return cls.from_dict({**dict(overrides or {}), **ABLATIONS[name]})
