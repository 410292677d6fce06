"""The trainer's model variants: which ad ranker and creative ranker each one trains, exports and pushes.

JAC (Yang et al., AAAI 2024) is compared with other creative rankers (Table 3), ad rankers (Table 4) and
serving orders (Table 1). Each comparison system is a variant of the one trainer, through the same pipeline,
metrics and serving contracts:

=========  ==================================  ==============================  ===========================
variant    ad ranker (``ar/``)                 creative ranker (``cr/``)       pushed as
=========  ==================================  ==============================  ===========================
jac        AR                                  MLP CR, reads AR's pctr (eq. 5)  the pair ``ar/`` + ``cr/``
ar         AR                                  --                              ``ar-only/``
cr         --                                  MLP CR, reads the hist. CTR     ``cr-only/``
dssm       AR (independent)                    two-tower CR (DSSM)             the pair
acr        creative-aware AR (ACR)             MLP CR, reads ACR's pctr        the pair
hbm        AR (independent)                    VAM-HBM hybrid bandit           the pair
beta_ts    AR (independent)                    Beta-Bernoulli Thompson         the pair
cacs       CACS ranker (reads the selector's   CACS dual-tower selector        the pair
           creative vector)
=========  ==================================  ==============================  ===========================

Why every comparison system carries an AR: the Pusher publishes only complete pairs into the ``ar/`` +
``cr/`` layout the router serves (``tfx_pipeline.pair_pusher``), and pairing a new CR with the AR of another
run would serve two runs' models as one version. Training JAC's AR beside the comparison CR, in the same run
and on the same data, gives each a pair that is blessed, versioned and served together, and gives the
comparison CRs the same AR (so the table compares creative rankers, not ad rankers); the heads do not
interact (those CRs read no pctr_ad), so the AR is JAC's AR ablation trained alongside. ``acr`` and ``cacs``
are the ones whose AR differs: it reads the creative (``cacs``: also the selector's vector of it,
``trainer.cacs_ranker``), and the router then allows only the ``pre`` and ``no-cr`` orders
(``serving.router.model_contract``).

:func:`build_model` builds a variant's :class:`~trainer.jac_model.JACModel`, :func:`fit_posteriors` fits
its closed-form heads (the bandits) from the training log before ``fit``, :func:`export_models` writes its
eval model and online models.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, Mapping, Optional

import features as F
from trainer import bandit_fit
from trainer.acr_model import CreativeAwareARModel
from trainer.ar_model import ARModel
from trainer.bandit_export import BanditCRServingModule, select_by_thompson
from trainer.beta_ts import BetaThompsonCRModel
from trainer.cacs_model import CACSSelectorModel, fit_id_counts
from trainer.cacs_ranker import CACSRankerModel, CACSRankerServingModule
from trainer.cacs_teacher import TEACHER_DIR, SavedModelTeacher, resolve_teacher_dir, save_teacher
from trainer.config import VARIANTS as VARIANT_NAMES
from trainer.config import JACConfig
from trainer.cr_model import CRModel
from trainer.creative_log import read_creative_log
from trainer.dssm_export import TwoTowerCRServingModule
from trainer.dssm_model import TwoTowerCRModel
from trainer.export import (ARServingModule, CRServingModule, Select, creative_aware_ar_module, export_eval,
                            select_by_logit)
from trainer.hbm import HybridBanditCRModel
from trainer.jac_model import JACModel, build_ar, build_cr
from trainer.serving_inputs import CACS_AR, CREATIVE_AWARE_AR
from trainer.serving_module import export_online


def build_acr(config: JACConfig, cardinalities: Mapping[str, int]) -> CreativeAwareARModel:
    return CreativeAwareARModel(
        cardinalities, embedding_dim=config.ar_embedding_dim, transformer_layers=config.transformer_layers,
        transformer_heads=config.transformer_heads, transformer_ff_dim=config.transformer_ff_dim,
        num_cross_layers=config.num_cross_layers, cross_projection_dim=config.cross_projection_dim,
        hidden_units=config.ar_hidden_units, initial_ctr=config.initial_ctr, name="ar")


def build_cacs_ranker(config: JACConfig, cardinalities: Mapping[str, int]) -> CACSRankerModel:
    """ACR's sizes; :func:`build_model` gives it the selector's creative tower."""
    return CACSRankerModel(
        cardinalities, embedding_dim=config.ar_embedding_dim, transformer_layers=config.transformer_layers,
        transformer_heads=config.transformer_heads, transformer_ff_dim=config.transformer_ff_dim,
        num_cross_layers=config.num_cross_layers, cross_projection_dim=config.cross_projection_dim,
        hidden_units=config.ar_hidden_units, initial_ctr=config.initial_ctr, name="ar")


def build_dssm(config: JACConfig, cardinalities: Mapping[str, int]) -> TwoTowerCRModel:
    return TwoTowerCRModel(cardinalities, embedding_dim=config.dssm_embedding_dim,
                           hidden_units=config.dssm_hidden_units, output_dim=config.dssm_output_dim,
                           initial_scale=config.dssm_initial_scale, initial_ctr=config.initial_ctr, name="cr")


def build_cacs(config: JACConfig, cardinalities: Mapping[str, int], teacher=None,
               tft_output=None) -> CACSSelectorModel:
    """The CACS selector on the DSSM towers, distilled from ``teacher`` (a ``trainer.cacs_teacher.Teacher``).

    Without ``teacher``, ``config.cacs_teacher_model`` is loaded (and checked against ``cardinalities``, and
    with ``tft_output`` against this run's vocabularies) as one when set.
    """
    if teacher is None and config.cacs_teacher_model:
        teacher = SavedModelTeacher(resolve_teacher_dir(config.cacs_teacher_model))
        teacher.check(cardinalities, tft_output)
    return CACSSelectorModel(
        cardinalities, embedding_dim=config.dssm_embedding_dim, hidden_units=config.dssm_hidden_units,
        output_dim=config.dssm_output_dim, initial_scale=config.dssm_initial_scale, initial_ctr=config.initial_ctr,
        id_dropout_rate=config.cacs_id_dropout_rate, id_dropout_half_count=config.cacs_id_dropout_half_count,
        id_dropout_schedule=config.cacs_id_dropout_schedule,
        distillation_temperature=config.cacs_distillation_temperature,
        distillation_weight=config.cacs_distillation_weight, click_weight=config.cacs_click_weight,
        teacher=teacher, seed=config.seed, name="cr")


def build_hbm(config: JACConfig, cardinalities: Mapping[str, int]) -> HybridBanditCRModel:
    prior = {"mean": config.hbm_prior_mean, "precision": config.hbm_prior_precision, "a": config.hbm_prior_a,
             "b": config.hbm_prior_b}
    return HybridBanditCRModel(cardinalities, vam_dim=config.vam_dim, vam_embedding_dim=config.vam_embedding_dim,
                               vam_hidden_units=config.vam_hidden_units, prior=prior,
                               blend_center=config.hbm_blend_center, blend_width=config.hbm_blend_width, name="cr")


def build_beta_ts(config: JACConfig, cardinalities: Mapping[str, int]) -> BetaThompsonCRModel:
    return BetaThompsonCRModel(cardinalities, name="cr")


@dataclasses.dataclass(frozen=True)
class Head:
    """One kind of ad or creative ranker.

    Attributes:
      build: ``(config, cardinalities) -> keras.Model``, the head.
      serving_module: ``(model, tft_output) -> OnlineModule``, its online SavedModel.
      request_rows: rows of its warm-up request (one user).
      inputs: its raw input set (``trainer.serving_inputs.SERVING_INPUTS``).
      select: how the eval model scores candidate creatives for its pick (CR heads).
      fit: ``(head, creative_log, tft_output, config) -> summary``, closed-form fitting before ``fit``.
    """

    build: Callable
    serving_module: Callable
    request_rows: int
    inputs: str
    select: Select = select_by_logit
    fit: Optional[Callable] = None


AR_HEAD = Head(build_ar, ARServingModule, 8, F.AR_MODEL_NAME)
ACR_HEAD = Head(build_acr, creative_aware_ar_module, 8, CREATIVE_AWARE_AR)
MLP_CR_HEAD = Head(build_cr, CRServingModule, 64, F.CR_MODEL_NAME)
DSSM_HEAD = Head(build_dssm, TwoTowerCRServingModule, 64, F.CR_MODEL_NAME)
HBM_HEAD = Head(build_hbm, BanditCRServingModule, 64, F.CR_MODEL_NAME, select_by_thompson, bandit_fit.fit_hbm)
CACS_AR_HEAD = Head(build_cacs_ranker, CACSRankerServingModule, 8, CACS_AR)
CACS_HEAD = Head(build_cacs, TwoTowerCRServingModule, 64, F.CR_MODEL_NAME, fit=fit_id_counts)
BETA_TS_HEAD = Head(build_beta_ts, BanditCRServingModule, 64, F.CR_MODEL_NAME, select_by_thompson,
                    bandit_fit.fit_beta_ts)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A variant's heads: ``ar`` and ``cr`` (``None`` for a head it lacks)."""

    ar: Optional[Head]
    cr: Optional[Head]


VARIANTS: Dict[str, Variant] = {
    "jac": Variant(AR_HEAD, MLP_CR_HEAD),
    "ar": Variant(AR_HEAD, None),
    "cr": Variant(None, MLP_CR_HEAD),
    "dssm": Variant(AR_HEAD, DSSM_HEAD),
    "acr": Variant(ACR_HEAD, MLP_CR_HEAD),
    "hbm": Variant(AR_HEAD, HBM_HEAD),
    "beta_ts": Variant(AR_HEAD, BETA_TS_HEAD),
    "cacs": Variant(CACS_AR_HEAD, CACS_HEAD),
}
assert tuple(VARIANTS) == VARIANT_NAMES, "trainer.config.VARIANTS and trainer.variants.VARIANTS must agree"


# Every head class a variant builds, by name (``JACModel.get_config`` records a head's class by its name).
HEAD_CLASSES = {cls.__name__: cls for cls in (ARModel, CreativeAwareARModel, CACSRankerModel, CRModel,
                                               TwoTowerCRModel, HybridBanditCRModel, BetaThompsonCRModel,
                                               CACSSelectorModel)}


def head_from_config(head: Optional[Mapping]):
    """A head from ``{"class": name, "config": its get_config()}`` (``None`` for none).

    A CACS selector comes back without its teacher: the teacher only adds a training loss term, and the copy
    is for export.
    """
    if head is None:
        return None
    if head.get("class") not in HEAD_CLASSES:
        raise ValueError(f"unknown head class {head.get('class')!r}; known: {sorted(HEAD_CLASSES)}")
    return HEAD_CLASSES[head["class"]].from_config(dict(head["config"]))


def variant_of(config: JACConfig) -> Variant:
    return VARIANTS[config.variant]


def build_model(config: JACConfig, cardinalities: Mapping[str, int]) -> JACModel:
    """The variant's joint model with its heads (``quantizer_r`` resolved first when its CR uses it); an AR
    that reads the CR's creative tower (``cacs``) is given it."""
    v = variant_of(config)
    ar, cr = (h.build(config, cardinalities) if h else None for h in (v.ar, v.cr))
    return JACModel(config, cardinalities, heads=share_heads(ar, cr))


def share_heads(ar, cr):
    """``(ar, cr)``, an AR that reads the CR's creative tower (``cacs``) given it."""
    if hasattr(ar, "share_creative_tower"):
        ar.share_creative_tower(cr)
    return ar, cr


def fit_posteriors(model: JACModel, train_files, tft_output, data_accessor=None) -> Dict[str, object]:
    """Fits the variant's closed-form CR parts from one pass over ``train_files``; ``{}`` for CRs without any.

    The bandits' posteriors; CACS's ID dropout counts.
    """
    head = variant_of(model.config).cr
    if head is None or head.fit is None:
        return {}
    log = read_creative_log(train_files, tft_output, data_accessor)
    summary = head.fit(model.cr, log, tft_output, model.config)
    summary["creative_groups"] = len(log)
    return summary


def export_models(model: JACModel, tft_output, serving_model_dir: str, warmup: bool = True) -> Dict[str, str]:
    """Writes the eval model to ``serving_model_dir`` and the variant's online models beneath it.

    Returns ``{"eval": dir, "ar": dir, "cr": dir, "teacher": dir}`` (only the exported online models; the
    teacher SavedModel of CACS's distillation, ``trainer.cacs_teacher``, when the CR is the MLP CR).
    """
    v = variant_of(model.config)
    out = {"eval": export_eval(model, tft_output, serving_model_dir, ar_inputs=v.ar.inputs if v.ar else F.AR_MODEL_NAME,
                               select=v.cr.select if v.cr else None)}
    for name, head in ((F.AR_MODEL_NAME, v.ar), (F.CR_MODEL_NAME, v.cr)):
        if head is not None:
            out[name] = export_online(head.serving_module(model, tft_output), os.path.join(serving_model_dir, name),
                                      warmup, head.request_rows)
    if isinstance(model.cr, CRModel):  # the MLP CR: a teacher for CACS's selector (trainer.cacs_teacher)
        out[TEACHER_DIR] = save_teacher(model.cr, os.path.join(serving_model_dir, TEACHER_DIR), tft_output)
    return out
