"""Fitting the bandit CRs from the training log: the visual prior, the posteriors, the daily warm start.

Called by ``run_fn`` (through :func:`trainer.variants.fit_posteriors`) before ``fit``; each returns a summary
for the run's log. With ``config.warm_start_model`` the previous run's posterior is the prior and its visual
prior is kept as it was (the posterior is over its z: retraining would change the features under it), so a
run on the new day's logs is the daily update.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf

import features as F
from trainer.bandit_export import load_posterior
from trainer.beta_ts import BetaThompsonCRModel, carried_state as beta_carried_state, fit_beta_thompson
from trainer.config import JACConfig
from trainer.creative_log import AD_INDEX, CREATIVE_INDEX, CreativeLog, fit_beta_prior, vocabulary_keys
from trainer.hbm import HybridBanditCRModel, carried_state as hbm_carried_state, fit_hybrid_bandit
from trainer.vam_model import creative_lists, fit_visual_prior


def fit_hbm(head: HybridBanditCRModel, log: CreativeLog, tft_output, config: JACConfig) -> Dict[str, object]:
    """Trains the visual prior on the log's creative lists (or restores it), then updates both posteriors."""
    head.vam({k: tf.constant(v[:1]) for k, v in log.features().items()})  # build its weights
    start, summary = None, {}
    if config.warm_start_model:
        saved = load_posterior(config.warm_start_model, "hbm")
        head.vam.set_weights(saved.vam_weights)
        start = hbm_carried_state(saved, head, vocabulary_keys(tft_output, F.CREATIVE_ID, head.cardinalities[CREATIVE_INDEX]),
                                  vocabulary_keys(tft_output, F.AD_ID, head.cardinalities[AD_INDEX]))
        summary["warm_start_model"] = config.warm_start_model
    else:
        known = log.known_creative
        alpha, beta = fit_beta_prior(log.clicks[known], log.impressions[known])
        lists = creative_lists(log, alpha, beta, config.vam_min_impressions)
        losses = fit_visual_prior(head.vam, lists, config.vam_steps, config.vam_batch_ads, config.vam_learning_rate,
                                  config.seed)
        summary.update(vam_lists=len(lists), vam_creatives=int(lists.mask.sum()), sctr_prior=[alpha, beta],
                       vam_losses=losses)
    head.vam.trainable = False  # fixed from here on: the posteriors are over its z
    state = fit_hybrid_bandit(head, log, start)
    summary.update(creatives_updated=int((state.creative.a > head.prior["a"]).sum()),
                   ads_updated=int((state.item_impressions > 0).sum()))
    return summary


def fit_beta_ts(head: BetaThompsonCRModel, log: CreativeLog, tft_output, config: JACConfig) -> Dict[str, object]:
    """Beta posteriors from the log's counts (prior fitted to the log, or the previous run's posterior)."""
    start, summary = None, {}
    if config.warm_start_model:
        saved = load_posterior(config.warm_start_model, "beta_ts")
        start = beta_carried_state(saved, head, vocabulary_keys(tft_output, F.CREATIVE_ID, head.rows))
        summary["warm_start_model"] = config.warm_start_model
    alpha, beta = fit_beta_thompson(head, log, start)
    summary.update(prior=list(head.prior), creatives_updated=int((alpha + beta > sum(head.prior) + 0.5).sum()))
    return summary

