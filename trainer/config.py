"""Hyperparameters of the joint ad & creative ranker (JAC), in one typed dataclass.

Defaults follow the implementation details of JAC (Yang et al., AAAI 2024): AR embeddings of dimension
16, a 2-layer 2-head transformer over the behaviour sequence, DCN beside a 512x512x256x128 deep tower; CR
embeddings of dimension 4 and a 128x64x32 MLP; the pctr_ad quantizer with K = 8192 codes of dimension
D = 128; Adagrad at 0.05, batch 512, one epoch, no dropout.

The TFX Trainer overrides fields through ``custom_config={MODEL_CONFIG_KEY: {...}}`` (``"model_config"``;
this module imports no TensorFlow, so the pipeline definition can use the key)::

    JACConfig.from_dict({"variant": "cr", "quantizer_buckets": 1024})

Steps: the Trainer's ``TrainArgs.num_steps`` sets the training steps. Evaluation steps come from
``eval_steps`` here when it is set (an explicit model_config override wins), otherwise from the Trainer's
``EvalArgs.num_steps``, otherwise one full pass over the eval split (see :func:`eval_steps_of`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Mapping, Optional, Tuple, Union

# The trainer's model variants: JAC and its two ablations, and the systems JAC is compared with (Yang et al.,
# AAAI 2024, Tables 1, 3 and 4). What each one trains, exports and pushes: ``trainer.variants``.
VARIANTS = ("jac", "ar", "cr", "dssm", "acr", "hbm", "beta_ts", "cacs")
# Variants whose CR reads the quantized pctr_ad of eq. (5) (and so needs quantizer_r).
QUANTIZED_CR_VARIANTS = ("jac", "cr", "acr")

# The schedules of CACS's ID dropout (trainer.id_dropout).
ID_DROPOUT_SCHEDULES = ("adaptive", "fixed")

# The Trainer custom_config key holding the JACConfig overrides.
MODEL_CONFIG_KEY = "model_config"


class DictConfig:
    """(De)serialisation of a dataclass config: ``from_dict`` / ``to_dict`` / ``to_json`` / ``replace``
    (shared by :class:`JACConfig` and ``trainer.genco.config.GenCOConfig``)."""

    @classmethod
    def from_dict(cls, overrides: Optional[Mapping[str, Any]] = None):
        """Defaults updated with ``overrides`` (unknown keys are an error; lists become tuples)."""
        overrides = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly dict; ``type(c).from_dict(c.to_dict()) == c``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class JACConfig(DictConfig):
    """Every hyperparameter of the AR, CR and JAC models and of their training.

    Attributes:
      variant: ``"jac"`` (AR and CR trained jointly, CR reads AR's quantized pctr_ad), ``"ar"`` (AR
        alone), ``"cr"`` (CR alone, reading the quantized historical ad CTR), or a comparison system, each
        with an AR beside it so that it is served as a pair: ``"dssm"`` (two-tower CR), ``"acr"``
        (creative-aware AR trained jointly with CR), ``"hbm"`` (VAM-HBM hybrid bandit CR), ``"beta_ts"``
        (Beta-Bernoulli Thompson sampling CR), ``"cacs"`` (CACS's dual-tower selector, Lin et al., SIGIR 2022,
        with ID dropout and distillation from ``cacs_teacher_model``); see ``trainer.variants``.
      ar_embedding_dim: embedding size of every AR categorical feature.
      transformer_layers, transformer_heads: the self-attention stack over the behaviour sequence.
      transformer_ff_dim: hidden size of each transformer block's feed-forward network.
      num_cross_layers: DCN cross layers beside the deep tower.
      cross_projection_dim: rank of the low-rank cross kernel ``U V``; ``None`` for a full-rank kernel.
      ar_hidden_units: AR's deep tower.
      cr_embedding_dim: embedding size of every CR categorical feature.
      cr_hidden_units: CR's MLP.
      quantizer_buckets: K, the number of pctr_ad codes (eq. 5).
      quantizer_dim: D, the dimension of each code's embedding.
      quantizer_r: r of eq. 5, or ``"auto"`` to choose it from ``r_grid`` by the information gain of the
        codes of the historical ad CTR about the click on the training data.
      r_grid: candidate values of r for ``"auto"``.
      r_sample_size: training rows read to choose r.
      quantizer_slope_window: half-width h (in codes) of the table secant that maps CR's gradient onto
        pctr_ad in the straight-through estimator (see ``trainer.quantizer``).
      learning_rate, batch_size, epochs: Adagrad learning rate, batch size and epochs (used when the
        Trainer gives no ``train_steps``).
      adagrad_initial_accumulator: Adagrad's initial accumulator. Small (1e-3) rather than Keras' 0.1: with
        clicks at a few percent the gradients are small, and an accumulator of 0.1 caps the early step at
        ``lr * |g| / 0.32``, which left AR near AUC 0.5 for hundreds of steps on the simulator.
      initial_ctr: base click rate the output biases start at (log-odds); ``None`` lets ``run_fn`` use the
        mean click of its training sample.
      dssm_embedding_dim, dssm_hidden_units, dssm_output_dim: the two towers of ``"dssm"`` (embedding size,
        hidden layers, size of the L2-normalised output) (``trainer.dssm_model``).
      dssm_initial_scale: the learned cosine scale s of ``"dssm"`` starts here.
      cacs_distillation_temperature: T of CACS's soft-label list-wise distillation (Lin et al., SIGIR 2022;
        ``trainer.listwise_distillation``): the teacher's and the selector's logits are divided by T before the
        softmax over an impression's candidate creatives (3, as in Alibaba EasyRec's list-wise losses).
      cacs_distillation_weight, cacs_click_weight: weights of the distillation term and of the click loss on the
        exposed creative in the selector's loss.
      cacs_teacher_model: ``"cacs"``: the teacher SavedModel (``trainer.cacs_teacher.save_teacher``) whose logits
        over each impression's candidate creatives the selector is distilled from; ``None``: click loss only.
        The selector's towers take the ``dssm_*`` sizes.
      cacs_id_dropout_rate, cacs_id_dropout_half_count, cacs_id_dropout_schedule: the selector's ID dropout
        (``trainer.id_dropout``): an id seen n times in training is dropped with probability
        ``rate * half_count / (half_count + n)`` (``"adaptive"``) or ``rate`` (``"fixed"``); rate 0 turns it off.
      vam_dim: size of the visual prior's vector z (10 in Wang et al., WWW 2021).
      vam_embedding_dim, vam_hidden_units: the visual prior network's attribute embeddings and hidden layers.
      vam_min_impressions: creatives with fewer training impressions are left out of the visual prior's lists
        (the authors' 60 would keep 73 ads with two such creatives on the default simulation; 10 keeps ~600
        lists while leaving out the creatives whose smoothed CTR is mostly the prior, see ``trainer.vam_model``).
      vam_steps, vam_batch_ads, vam_learning_rate: training of the visual prior (batches of ad lists).
      hbm_prior_mean, hbm_prior_precision, hbm_prior_a, hbm_prior_b: the Normal-Inverse-Gamma prior of the
        HBM regressions, :math:`\\mu_0 = m 1`, :math:`\\Lambda_0 = \\lambda I`, :math:`a_0`, :math:`b_0`
        (the authors' 0.1, 0.25, 60000, 6; ``trainer.hbm``).
      hbm_blend_center, hbm_blend_width: creative weight :math:`w = \\sigma((pv_{ad} - c) / s)` (150, 50).
      warm_start_model: ``"hbm"`` / ``"beta_ts"``: a previous run's model directory (the Trainer's output, or
        its ``cr/`` SavedModel) whose posterior is this run's prior; the run then reads only the new day's
        logs -- the daily update. ``None``: start from the prior.
      eval_batch_size, eval_steps: evaluation during training. ``eval_steps`` set (e.g. through
        ``model_config``) wins over the Trainer's ``EvalArgs.num_steps``; ``None`` uses the Trainer's.
      seed: initializer seed.
      ar_embedding_rows, cr_embedding_rows: rows of AR's / CR's embedding table, which holds every categorical
        feature of the model, each a block of its vocabulary's size (``trainer.embeddings``); ``None``: the
        sum of the vocabularies, one row per id. Fewer rows fold the ids onto each other (the hashing
        trick); more rows leave spare ones.
      embedding_min_shard_bytes: parameter-server training splits each embedding table across up to all ps
        tasks in shards of at least this size (``trainer.distribute.TablePartitioner``).
      shuffle_block_rows: the training shuffle moves blocks of this many consecutive log rows (1: single rows),
        so a request's rows (one per shown ad, the same user's sequence) mostly share a batch and the AR's
        sequence transformer runs once per request (``trainer.data.make_dataset``, ``trainer.unique_sequences``).
      steps_per_execution: training steps per call of the compiled step function (Keras' own option): fewer
        Python round trips in one process, fewer coordinator round trips under parameter-server training.
        It changes no number, only when batch-level callbacks run.
    """

    variant: str = "jac"
    # AR
    ar_embedding_dim: int = 16
    transformer_layers: int = 2
    transformer_heads: int = 2
    transformer_ff_dim: int = 64
    num_cross_layers: int = 3
    cross_projection_dim: Optional[int] = 64
    ar_hidden_units: Tuple[int, ...] = (512, 512, 256, 128)
    # CR
    cr_embedding_dim: int = 4
    cr_hidden_units: Tuple[int, ...] = (128, 64, 32)
    # pctr_ad quantizer (eq. 5)
    quantizer_buckets: int = 8192
    quantizer_dim: int = 128
    quantizer_r: Union[float, str] = "auto"
    r_grid: Tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
    r_sample_size: int = 200_000
    quantizer_slope_window: int = 16
    # DSSM two-tower CR
    dssm_embedding_dim: int = 8
    dssm_hidden_units: Tuple[int, ...] = (32,)
    dssm_output_dim: int = 16
    dssm_initial_scale: float = 5.0
    # CACS selector: list-wise distillation from a ranking teacher beside the click loss
    cacs_distillation_temperature: float = 3.0
    cacs_distillation_weight: float = 1.0
    cacs_click_weight: float = 1.0
    cacs_teacher_model: Optional[str] = None
    cacs_id_dropout_rate: float = 0.5
    cacs_id_dropout_half_count: float = 20.0
    cacs_id_dropout_schedule: str = "adaptive"
    # VAM-HBM hybrid bandit CR (and the Beta-Bernoulli baseline's warm start)
    vam_dim: int = 10
    vam_embedding_dim: int = 4
    vam_hidden_units: Tuple[int, ...] = (32,)
    vam_min_impressions: int = 10
    vam_steps: int = 300
    vam_batch_ads: int = 64
    vam_learning_rate: float = 0.01
    hbm_prior_mean: float = 0.1
    hbm_prior_precision: float = 0.25
    hbm_prior_a: float = 60000.0
    hbm_prior_b: float = 6.0
    hbm_blend_center: float = 150.0
    hbm_blend_width: float = 50.0
    warm_start_model: Optional[str] = None
    # optimisation
    learning_rate: float = 0.05
    adagrad_initial_accumulator: float = 0.001
    initial_ctr: Optional[float] = None
    batch_size: int = 512
    epochs: int = 1
    eval_batch_size: int = 2048
    eval_steps: Optional[int] = None
    seed: int = 0
    # scale: table sizes, sharding, step batching
    ar_embedding_rows: Optional[int] = None
    cr_embedding_rows: Optional[int] = None
    embedding_min_shard_bytes: int = 1 << 20
    steps_per_execution: int = 25
    shuffle_block_rows: int = 32

    def __post_init__(self):
        def fail(field, problem):
            raise ValueError(f"JACConfig.{field}: {problem}")

        if self.variant not in VARIANTS:
            fail("variant", f"must be one of {VARIANTS}, got {self.variant!r}")
        for name in ("ar_embedding_dim", "transformer_layers", "transformer_heads", "transformer_ff_dim",
                     "cr_embedding_dim", "quantizer_buckets", "quantizer_dim", "batch_size", "epochs",
                     "eval_batch_size", "r_sample_size", "quantizer_slope_window", "dssm_embedding_dim",
                     "dssm_output_dim", "vam_dim", "vam_embedding_dim", "vam_min_impressions", "vam_steps",
                     "vam_batch_ads", "embedding_min_shard_bytes", "steps_per_execution", "shuffle_block_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(name, f"must be a positive integer, got {value!r}")
        if not isinstance(self.num_cross_layers, int) or self.num_cross_layers < 0:
            fail("num_cross_layers", f"must be a non-negative integer, got {self.num_cross_layers!r}")
        if self.cross_projection_dim is not None and (
                not isinstance(self.cross_projection_dim, int) or self.cross_projection_dim < 1):
            fail("cross_projection_dim", f"must be a positive integer or None, got {self.cross_projection_dim!r}")
        for name in ("ar_hidden_units", "cr_hidden_units", "dssm_hidden_units", "vam_hidden_units"):
            units = getattr(self, name)
            if not units or any(not isinstance(u, int) or u < 1 for u in units):
                fail(name, f"must be a non-empty sequence of positive integers, got {units!r}")
        if self.quantizer_buckets < 2:
            fail("quantizer_buckets", f"needs at least 2 codes, got {self.quantizer_buckets}")
        if isinstance(self.quantizer_r, str):
            if self.quantizer_r != "auto":
                fail("quantizer_r", f"must be a positive number or 'auto', got {self.quantizer_r!r}")
        elif not self.quantizer_r > 0:
            fail("quantizer_r", f"must be positive, got {self.quantizer_r!r}")
        if not self.r_grid or any(not r > 0 for r in self.r_grid):
            fail("r_grid", f"must be a non-empty sequence of positive numbers, got {self.r_grid!r}")
        if self.initial_ctr is not None and not 0.0 < self.initial_ctr < 1.0:
            fail("initial_ctr", f"must lie in (0, 1) or be None, got {self.initial_ctr!r}")
        for name in ("learning_rate", "vam_learning_rate", "dssm_initial_scale", "hbm_prior_precision",
                     "hbm_prior_a", "hbm_prior_b", "hbm_blend_width", "cacs_distillation_temperature",
                     "cacs_id_dropout_half_count"):
            if not getattr(self, name) > 0:
                fail(name, f"must be positive, got {getattr(self, name)!r}")
        for name in ("cacs_distillation_weight", "cacs_click_weight"):
            if not getattr(self, name) >= 0:
                fail(name, f"must be non-negative, got {getattr(self, name)!r}")
        if not 0.0 <= self.cacs_id_dropout_rate <= 1.0:
            fail("cacs_id_dropout_rate", f"must lie in [0, 1], got {self.cacs_id_dropout_rate!r}")
        if self.cacs_id_dropout_schedule not in ID_DROPOUT_SCHEDULES:
            fail("cacs_id_dropout_schedule", f"must be one of {ID_DROPOUT_SCHEDULES}, got {self.cacs_id_dropout_schedule!r}")
        if self.warm_start_model is not None and self.variant not in ("hbm", "beta_ts"):
            fail("warm_start_model", f"only the bandit variants hbm and beta_ts carry a posterior over; "
                                     f"variant {self.variant!r} has none")
        for name in ("ar_embedding_rows", "cr_embedding_rows"):
            rows = getattr(self, name)
            if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 1):
                fail(name, f"must be a positive integer or None, got {rows!r}")
        if self.cacs_teacher_model is not None and self.variant != "cacs":
            fail("cacs_teacher_model", f"only variant 'cacs' distils from a teacher; variant {self.variant!r} does not")
        if self.eval_steps is not None and self.eval_steps < 1:
            fail("eval_steps", f"must be positive or None, got {self.eval_steps!r}")
        if self.ar_embedding_dim * 2 % self.transformer_heads:
            fail("transformer_heads", "must divide the sequence item size 2 * ar_embedding_dim")

    @property
    def has_ar(self) -> bool:
        return self.variant != "cr"

    @property
    def has_cr(self) -> bool:
        return self.variant != "ar"

    @property
    def uses_quantizer(self) -> bool:
        """CR reads the quantized pctr_ad (eq. 5), so ``quantizer_r`` must be resolved before building."""
        return self.variant in QUANTIZED_CR_VARIANTS


def eval_steps_of(config: JACConfig, trainer_eval_steps: Optional[int]) -> Optional[int]:
    """Evaluation steps per validation: ``config.eval_steps`` if set, else the Trainer's (``None``/0: a full pass).

    The more specific setting wins: the pipeline always passes an ``EvalArgs`` default, so a user's
    ``model_config={"eval_steps": n}`` would otherwise never take effect.
    """
    return config.eval_steps or trainer_eval_steps or None
