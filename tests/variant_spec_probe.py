"""Run in a fresh Python with ``ADCR_FEATURE_SPEC`` set (tests/test_feature_spec_variants.py): builds one
``--variant``'s model from the selected spec, fits its closed-form part (the bandits' posteriors, CACS's ID
dropout counts) on a random creative log, runs a forward pass and one train step on a random batch, scores the
batch with the two-tower CRs' served creative tower, and prints what it read and returned as JSON on the last
line."""

import json
import sys

import numpy as np

from trainer.config import JACConfig
from trainer.creative_log import AD_INDEX, CREATIVE_INDEX, LOG_INPUTS, aggregate
from trainer.dssm_export import CreativeTowerScorer
from trainer.jac_model import make_optimizer
import features as F
from trainer.random_batch import SMALL_VOCAB_SIZES, random_transformed_batch, small_cardinalities
from trainer.variants import build_model, variant_of
from transform import names as N

TINY = dict(ar_embedding_dim=4, transformer_ff_dim=8, num_cross_layers=1, cross_projection_dim=3,
            ar_hidden_units=[8], cr_embedding_dim=2, cr_hidden_units=[4], quantizer_buckets=16, quantizer_dim=2,
            quantizer_r=10.0, dssm_hidden_units=[8], dssm_output_dim=4, vam_hidden_units=[8], vam_min_impressions=1, vam_steps=2)


def main(variant: str) -> None:
    cards = small_cardinalities()
    config = JACConfig.from_dict(dict(TINY, variant=variant))
    model = build_model(config, cards)
    batch = random_transformed_batch(cards, 16, click_rate=0.3)
    features = {k: batch[k] for k in model.feature_names}
    fitted = {}
    head = variant_of(config).cr
    if head is not None and head.fit is not None:
        # A log of 3 ads x 10 creatives, 400 impressions: every ad has several creatives with clicks.
        log_batch = random_transformed_batch(cards, 400, seed=1, click_rate=0.3)
        columns = {n: log_batch[n].numpy() for n in LOG_INPUTS}
        columns[AD_INDEX] = np.arange(400) % 3
        columns[CREATIVE_INDEX] = np.arange(400) % 10
        log = aggregate(columns, log_batch[N.LABEL_KEY].numpy(), SMALL_VOCAB_SIZES[F.CREATIVE_ID],
                        SMALL_VOCAB_SIZES[F.AD_ID])
        fitted = head.fit(model.cr, log, None, config)
        fitted["groups"] = len(log)
    outputs = model(features, training=False)
    model.compile(optimizer=make_optimizer(config))
    logs = model.train_on_batch(features, batch[N.LABEL_KEY], return_dict=True)
    tower = None
    if config.variant in ("dssm", "cacs"):  # the served creative tower agrees with the trained one
        served = CreativeTowerScorer(model.cr)(batch).numpy()
        trained = model.cr.creative_vectors(batch).numpy()
        tower = {"shape": list(served.shape), "max_abs_diff": float(np.max(np.abs(served - trained)))}
    print(json.dumps({"feature_names": sorted(model.feature_names), "heads": sorted(model.heads),
                      "fitted": sorted(fitted), "tower": tower,
                      "outputs": {k: list(np.shape(v)) for k, v in outputs.items()},
                      "logs": {k: float(v) for k, v in logs.items()}}))


if __name__ == "__main__":
    main(sys.argv[1])
