"""What the served ad ranker reads -- from its metadata -- and so which orders of AR and CR it allows.

An AR model either ranks ads alone (``features.AR_SERVING_INPUTS``: JAC's AR, creative-blind) or also reads
the creative shown with each ad (``features.ACR_SERVING_INPUTS``: the creative-aware "ACR" of Yang et al.,
AAAI 2024, Table 4; ``features.CACS_AR_SERVING_INPUTS``: CACS's ranker, Lin et al., SIGIR 2022, which also
takes the creative id for its copy of the selector's creative tower). The router does not guess: it reads the served AR's ``predict_raw`` inputs with
``GetModelMetadata`` (:func:`read_ar_contract`) and, per mode:

============  ==================================  ==================================================
mode          creative-blind AR                   creative-aware AR
============  ==================================  ==================================================
``peri``      AR and CR at once                   refused (400): AR needs the creative CR has not picked
``post``      AR, then CR on the top ads          refused (400): as ``peri``
``pre``       CR, then AR; the ranking equals     CR, then AR on each ad with the creative CR picked
              ``peri``'s (the response says so)   (its fallback creative if CR failed)
``no-cr``     AR; a random creative shown         a random creative per ad, which AR then scores
============  ==================================  ==================================================

:class:`ARContractCache` keeps the contract of the version last read, and reads it again when an AR response
comes from another version or AR fails (a newly pushed model may read other inputs).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable, Dict, Optional, Tuple

import numpy as np

import features as F
from serving.protocol import ModelMetadata, ServingError
from serving.router.request import NO_CR, PERI, POST, PRE, RankRequest, RequestError

PRE_EQUALS_PERI = ("the served ad ranker does not read creatives, so this 'pre' ranking is the one 'peri' "
                   "gives; only the latency differs")


class ContractError(Exception):
    """The AR model's metadata could not be read or makes no sense (HTTP 503, like an AR failure)."""

    status = 503


@dataclasses.dataclass(frozen=True)
class ARContract:
    """The served AR model's raw inputs: its ``version`` and the creative inputs it takes (none: blind)."""

    model: str
    version: Optional[int]
    creative_inputs: Tuple[str, ...] = ()

    @property
    def creative_aware(self) -> bool:
        return bool(self.creative_inputs)


def contract_from_metadata(metadata: ModelMetadata) -> ARContract:
    """:class:`ARContract` of an AR model's ``GetModelMetadata`` (its ``predict_raw`` signature's inputs)."""
    signature = metadata.signatures.get(F.RAW_SIGNATURE)
    if signature is None:
        raise ContractError(f"ad ranker {metadata.name!r} version {metadata.version} has no "
                            f"{F.RAW_SIGNATURE!r} signature (has {sorted(metadata.signatures)})")
    inputs = set(signature.inputs)
    missing = [n for n in F.AR_SERVING_INPUTS if n not in inputs]
    creative = tuple(n for n in F.CREATIVE_FEATURES if n in inputs)  # the id only beside all of ACR's
    lacking_creative = [n for n in F.ACR_CREATIVE_INPUTS if creative and n not in inputs]
    if missing or lacking_creative:
        lacking = missing + lacking_creative
        raise ContractError(f"ad ranker {metadata.name!r} version {metadata.version}: its {F.RAW_SIGNATURE} lacks "
                            f"the input(s) {lacking}; it takes {sorted(inputs)}")
    return ARContract(metadata.name, metadata.version, creative)


def read_ar_contract(client, model: str, timeout: float = 10.0) -> ARContract:
    try:
        return contract_from_metadata(client.metadata(model, timeout=timeout))
    except ServingError as e:
        raise ContractError(f"ad ranker ({model}) failed: {e.code.name}: {e.message} (reading its metadata "
                            f"to learn its inputs)") from None


class ARContractCache:
    """The contract of the served AR, read on first use and again after :meth:`invalidate` (thread-safe)."""

    def __init__(self, read: Callable[[], ARContract]):
        self._read = read
        self._lock = threading.Lock()
        self._contract: Optional[ARContract] = None

    def get(self) -> ARContract:
        with self._lock:
            if self._contract is None:
                self._contract = self._read()
            return self._contract

    def invalidate(self) -> None:
        with self._lock:
            self._contract = None

    def observe(self, version: Optional[int]) -> None:
        """An AR response came from ``version``: read the contract again next time if it is another one."""
        with self._lock:
            if self._contract is not None and version is not None and version != self._contract.version:
                self._contract = None


def check_mode(contract: ARContract, mode: str) -> Optional[str]:
    """The response's note for ``mode`` with this AR (``None``: nothing to say); raises :class:`RequestError`
    (400) for an order the AR cannot serve."""
    if contract.creative_aware and mode in (PERI, POST):
        when = "at the same time as CR" if mode == PERI else "before CR"
        raise RequestError(
            f"mode: '{mode}' runs the ad ranker {when}, but the served ad ranker {contract.model!r} (version "
            f"{contract.version}) is creative-aware: it scores each ad with its creative "
            f"({', '.join(contract.creative_inputs)}), which is only known after CR picked it; use mode "
            f"'{PRE}' (CR, then AR on the picked creatives) or '{NO_CR}' (a random creative)")
    if not contract.creative_aware and mode == PRE:
        return PRE_EQUALS_PERI
    return None


def creative_columns(req: RankRequest, rows: np.ndarray,
                     names: Tuple[str, ...] = F.ACR_CREATIVE_INPUTS) -> Dict[str, np.ndarray]:
    """A creative-aware AR's creative inputs ``names`` (its contract's): creative ``rows[i]`` (a row of the
    request's creatives) for ad i."""
    return {n: req.creatives[n][rows] for n in names}
