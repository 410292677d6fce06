"""GenCO (Gu et al., 2025): generating creative combinations with multi-instance reward learning.

* :mod:`~trainer.genco.config` -- ``GenCOConfig`` and the ablations;
* layers, one a module: :mod:`~trainer.genco.hash_embedding`, :mod:`~trainer.genco.element_embedding`,
  :mod:`~trainer.genco.context_features`, :mod:`~trainer.genco.context_encoder`,
  :mod:`~trainer.genco.cross_attention` (eq. 13), :mod:`~trainer.genco.scorer` (phi),
  :mod:`~trainer.genco.mil_pooling` (eq. 17);
* :mod:`~trainer.genco.sampling` (eqs. 14-15, 24) and :mod:`~trainer.genco.losses` (eqs. 11-12, 20-23);
* :mod:`~trainer.genco.model` -- ``GenCOModel``; baselines :mod:`~trainer.genco.mlp_baseline` and
  :mod:`~trainer.genco.dco`;
* :mod:`~trainer.genco.data` (input), :mod:`~trainer.genco.run` (TFX ``run_fn``),
  :mod:`~trainer.genco.export` and :mod:`~trainer.genco.serving_inputs` (SavedModels, serving contract),
  :mod:`~trainer.genco.testing` (fixtures).
"""
