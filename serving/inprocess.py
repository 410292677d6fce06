"""Serving clients that answer in this process: the served SavedModels loaded here, or no model at all.

Both implement :class:`serving.clients.ServingClient`, so :class:`serving.router.PeriCRRouter` runs its
real code in front of them::

    ar = InProcessServingClient({"ar": "<serving root>/ar"})      # the latest version, loaded here
    router = PeriCRRouter(RouterConfig(), ar_client=ar, cr_client=InProcessServingClient({"cr": ...}))

* :class:`InProcessServingClient` loads the latest version of each model base path as the stand-in model
  server does (:func:`serving.standin.warmup.load_servable`: the SavedModel in a Session, its warm-up
  requests) and runs Predict on it as the stand-in does (:func:`serving.standin.predict.run_predict`):
  no gRPC, no second process. The experiment harness
  uses it for large sweeps; a test checks it answers exactly as the served models do.
* :class:`NoopServingClient` returns constant scores of the right shape at once: what is left of a request's
  cost is the caller's own (request building, the router's parsing and selection) — how the harness
  measures that it is not the bottleneck.
"""

from __future__ import annotations

import time
from concurrent import futures
from typing import Dict, List, Mapping, Optional

import grpc
import numpy as np

import features as F
from serving import protocol as P
from serving.clients import PredictCall, PredictResult, ServingClient
from serving.protocol import ServingError

# The output each model's raw signature returns, by model name.
OUTPUT_OF = {F.AR_MODEL_NAME: F.PCTR_AD, F.CR_MODEL_NAME: F.PCTR_C}
# The input whose length is a request's batch (user features may come with batch 1).
_ROWS_OF = {F.AR_MODEL_NAME: F.AD_ID, F.CR_MODEL_NAME: F.CREATIVE_ID}


class _DoneCall(PredictCall):
    """A Predict already answered (or failed) when it was started."""

    def __init__(self, result: Optional[PredictResult] = None, error: Optional[ServingError] = None):
        future: futures.Future = futures.Future()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
        super().__init__(future)

    def result(self, timeout: Optional[float] = None) -> PredictResult:
        return self._future.result()


class _LocalClient(ServingClient):
    """Predict answered synchronously by :meth:`_outputs`; the models are always AVAILABLE."""

    def _versions(self) -> Mapping[str, int]:
        raise NotImplementedError

    def _outputs(self, model: str, inputs: Mapping[str, np.ndarray], signature: str) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def _version(self, model: str, version: Optional[int]) -> int:
        versions = self._versions()
        if model not in versions or version not in (None, versions[model]):
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: {'Latest' if version is None else version}"
                               f"({model})")
        return versions[model]

    def start_predict(self, model: str, inputs: Mapping[str, np.ndarray], signature: str = F.SERVING_SIGNATURE,
                      version: Optional[int] = None, timeout: Optional[float] = None) -> PredictCall:
        t0 = time.perf_counter()
        try:
            served = self._version(model, version)
            outputs = self._outputs(model, inputs, signature)
        except ServingError as e:
            return _DoneCall(error=e)
        rpc_ms = (time.perf_counter() - t0) * 1e3
        return _DoneCall(PredictResult(outputs, model, served, signature, 0.0, rpc_ms, 0.0))

    def status(self, model: str, version: Optional[int] = None,
               timeout: Optional[float] = 10.0) -> List[P.VersionStatus]:
        return [P.VersionStatus(self._version(model, version), "AVAILABLE")]


class InProcessServingClient(_LocalClient):
    """One version of each ``{model name: model base path}``, loaded and run in this process.

    The latest version, or ``versions[name]``; ``labels``: model -> {version label: version}, the labels a
    request may address it by (TF Serving's ``version_labels``; each must name the loaded version).
    """

    def __init__(self, model_base_paths: Mapping[str, str], versions: Optional[Mapping[str, int]] = None,
                 labels: Optional[Mapping[str, Mapping[str, int]]] = None):
        import os

        from serving.standin.predict import Runtime
        from serving.standin.versions import list_versions
        from serving.standin.warmup import load_servable

        versions, self.labels = dict(versions or {}), {m: dict(v) for m, v in (labels or {}).items()}
        self.runtime = Runtime()
        self.servables = {}
        for name, base in model_base_paths.items():
            on_disk = list_versions(name, base) if os.path.isdir(base) else {}
            if not on_disk:
                raise FileNotFoundError(f"{name}: no model version under {base}")
            version = versions.get(name, max(on_disk))
            if version not in on_disk:
                raise FileNotFoundError(f"{name}: no version {version} under {base} (versions {sorted(on_disk)})")
            for label, labelled in self.labels.get(name, {}).items():
                if labelled != version:
                    raise ValueError(f"{name}: label {label!r} names version {labelled}, not the loaded {version}")
            self.servables[name] = load_servable(name, version, os.path.join(base, on_disk[version]), self.runtime)

    def _versions(self) -> Mapping[str, int]:
        return {name: s.version for name, s in self.servables.items()}

    def _version(self, model: str, version) -> int:
        if isinstance(version, str):  # a version label
            labelled = self.labels.get(model, {}).get(version)
            if labelled is None:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Unrecognized servable version label: {version}")
            version = labelled
        return super()._version(model, version)

    def _outputs(self, model, inputs, signature):
        from serving.standin.predict import run_predict

        return run_predict(self.runtime, self.servables[model], signature, inputs)[1]

    def metadata(self, model: str, version: Optional[int] = None, timeout: Optional[float] = 10.0):
        served = self._version(model, version)
        return P.ModelMetadata(model, served, P.signatures_from_proto(self.servables[model].signature_defs))


class NoopServingClient(_LocalClient):
    """Every model of ``models`` answers ``score`` for every row at once (no model runs)."""

    def __init__(self, models=(F.AR_MODEL_NAME, F.CR_MODEL_NAME), score: float = 0.02, version: int = 1):
        self.score = np.float32(score)
        self._served = dict.fromkeys(models, version)

    def _versions(self) -> Mapping[str, int]:
        return self._served

    def _outputs(self, model, inputs, signature):
        rows = len(inputs[_ROWS_OF[model]])
        return {OUTPUT_OF[model]: np.full(rows, self.score, np.float32)}

    def metadata(self, model: str, version: Optional[int] = None, timeout: Optional[float] = 10.0):
        """The raw signature of the default (creative-blind) AR and of CR, so the router serves every mode."""
        served = self._version(model, version)
        inputs = F.AR_SERVING_INPUTS if model == F.AR_MODEL_NAME else F.CR_SERVING_INPUTS
        raw = P.SignatureInfo({n: P.TensorInfo("DT_FLOAT", None) for n in inputs},
                              {OUTPUT_OF.get(model, F.PCTR_AD): P.TensorInfo("DT_FLOAT", (None,))})
        return P.ModelMetadata(model, served, {F.RAW_SIGNATURE: raw})
