"""Joint ad & creative ranking models (AR, CR, JAC), their training and their export.

* :mod:`trainer.config` -- ``JACConfig``, every hyperparameter;
* :mod:`trainer.embeddings`, :mod:`trainer.sequence`, :mod:`trainer.quantizer` -- layers;
* :mod:`trainer.ar_model`, :mod:`trainer.cr_model`, :mod:`trainer.jac_model` -- models;
* :mod:`trainer.info_gain` -- choosing the quantizer's r by information gain;
* :mod:`trainer.data` -- input pipeline; :mod:`trainer.run` -- ``run_fn`` for the TFX Trainer;
* :mod:`trainer.distribute` -- the ``TF_CONFIG`` cluster and its strategy; :mod:`trainer.local_cluster` -- a
  cluster of local processes running ``run_fn``; :mod:`trainer.throughput` -- training examples/s;
* :mod:`trainer.export`, :mod:`trainer.cr_scorer`, :mod:`trainer.candidates`, :mod:`trainer.signatures`,
  :mod:`trainer.warmup` -- SavedModels for evaluation and serving;
* :mod:`trainer.serving_inputs` -- the raw serving contract and a NumPy-only request validator;
* :mod:`trainer.random_batch`, :mod:`trainer.testing` -- fixtures for tests and benchmarks.
"""
