"""Training throughput as ``run_fn`` reports it: examples per second of the training steps."""

from __future__ import annotations

import time
from typing import Dict, Optional

import tf_keras as keras


class TrainingClock(keras.callbacks.Callback):
    """Wall time of the training steps of a ``fit``, validation excluded.

    * ``train_seconds``: from the first step's start to the end of each epoch's last step (tracing, input
      start-up and, under parameter-server training, the coordinator's scheduling included);
    * ``steady_seconds``, ``steady_steps``: from the end of step ``warmup`` on, i.e. without the first
      call's tracing. Meaningful where steps run synchronously (one process, multi-worker); under
      parameter-server training steps are only scheduled when the callback sees them, so it is ``None``.

    Uses no batch logs (``_supports_tf_logs``): it never makes a step wait for its results.
    """

    def __init__(self, warmup: int = 20):
        super().__init__()
        self._supports_tf_logs = True
        self.warmup = int(warmup)
        self.train_seconds = 0.0
        self.steady_seconds: Optional[float] = None
        self.steady_steps = 0
        self._epoch_start: Optional[float] = None
        self._steady_start: Optional[float] = None
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1  # Keras passes the index of the last step the call ran
        if self._steady_start is None and self._steps >= self.warmup:
            self._steady_start, self._steady_from = time.perf_counter(), self._steps

    def _end_of_steps(self):
        if self._epoch_start is None:
            return
        now = time.perf_counter()
        self.train_seconds += now - self._epoch_start
        if self._steady_start is not None and self._steps > self._steady_from:
            self.steady_seconds = (self.steady_seconds or 0.0) + now - self._steady_start
            self.steady_steps += self._steps - self._steady_from
        self._epoch_start = self._steady_start = None

    def on_test_begin(self, logs=None):
        self._end_of_steps()

    def on_epoch_end(self, epoch, logs=None):
        self._end_of_steps()

    def summary(self, examples_per_step: int, steps: int, synchronous: bool = True) -> Dict[str, Optional[float]]:
        """``{"train_seconds", "examples_per_second", "steady_examples_per_second"}`` for ``steps`` steps of
        ``examples_per_step`` examples each."""
        steady = None
        if synchronous and self.steady_seconds:
            steady = round(self.steady_steps * examples_per_step / self.steady_seconds, 1)
        return {"train_seconds": round(self.train_seconds, 2),
                "examples_per_second": round(steps * examples_per_step / self.train_seconds, 1)
                if self.train_seconds else None,
                "steady_examples_per_second": steady}
