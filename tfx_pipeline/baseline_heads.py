"""Does the Evaluator's baseline have this run's heads?

The Evaluator compares each run's model with the latest blessed model of its pipeline (the Resolver's
``LatestBlessedModelStrategy``), output by output, and TFMA fails with a bare ``"pctr_ad" key not found``
when the baseline lacks an output the candidate has: say, the AR-only ablation (``--variant ar``) after a
CR-only one in the same ``--output-dir``. The local runner checks this before anything runs and names the
models and the fix; variants with both heads (``jac``, ``dssm``, ``acr``, ``hbm``, ``beta_ts``, ``cacs``) share
one output directory freely.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

import features as F
from trainer.config import JACConfig

# The Evaluator's custom properties on a ModelBlessing (tfx.components.evaluator.constants).
_BLESSED, _CURRENT_MODEL_ID = "blessed", "current_model_id"


def _int_property(artifact, name: str) -> Optional[int]:
    value = artifact.custom_properties.get(name)
    return None if value is None else value.int_value


def latest_blessed_model_uri(metadata_path: str) -> Optional[str]:
    """The URI of the model the Resolver would pick: the newest Model artifact with a blessing (``None``
    without ML Metadata or a blessed model)."""
    if not os.path.exists(metadata_path):
        return None
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = metadata_path
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(cfg)
    try:
        blessed = {_int_property(b, _CURRENT_MODEL_ID) for b in store.get_artifacts_by_type("ModelBlessing")
                   if _int_property(b, _BLESSED) == 1}
        models = store.get_artifacts_by_type("Model")
    except Exception:  # a store without those types yet: no run reached the Trainer
        return None
    for model in sorted(models, key=lambda a: a.id, reverse=True):
        if model.id in blessed:
            return model.uri
    return None


def model_heads(model_uri: str) -> Tuple[bool, bool]:
    """(has AR, has CR) of a Trainer output, from the online SavedModels it exported."""
    serving = os.path.join(model_uri, "Format-Serving")
    return tuple(os.path.isdir(os.path.join(serving, name)) for name in (F.AR_MODEL_NAME, F.CR_MODEL_NAME))


def _describe(heads: Tuple[bool, bool]) -> str:
    return {(True, True): "AR and CR", (True, False): "AR only", (False, True): "CR only"}.get(heads, "no head")


def check_baseline_heads(metadata_path: str, model_config, output_dir: str) -> None:
    """Raises ``ValueError`` when the latest blessed model in ``metadata_path`` has other heads than the
    variant of ``model_config`` (a dict or :class:`~trainer.config.JACConfig`)."""
    config = model_config if isinstance(model_config, JACConfig) else JACConfig.from_dict(dict(model_config))
    uri = latest_blessed_model_uri(metadata_path)
    if uri is None:
        return
    baseline, wanted = model_heads(uri), (config.has_ar, config.has_cr)
    if baseline != wanted:
        raise ValueError(
            f"--output-dir {output_dir} already holds a blessed model with {_describe(baseline)} ({uri}), and "
            f"variant {config.variant!r} has {_describe(wanted)}: the Evaluator compares each run with the "
            "latest blessed model of its pipeline output by output, which needs the same heads. Run variant "
            f"{config.variant!r} in its own --output-dir (or after a variant with the same heads).")
