"""A run a person can read: component lines and progress on the console, everything else in a log file.

A local run writes to the terminal from many layers — Python ``logging`` and absl (TFX, TFMA, Beam), the
TensorFlow C++ runtime (straight to file descriptor 2, below Python), Beam worker subprocesses — and
nothing of it says which component is running. :func:`quiet` points descriptors 1 and 2 at a log file,
so all of that (the C++ lines and child processes included) lands there, and hands back a
:class:`Console` on the original terminal for what a person reads::

    with run_log.quiet("outputs/logs/pipeline-20250101-120000.log") as console:
        console.line("==> Running the TFX pipeline")
        with run_log.component_progress(console, total=len(pipeline.components)):
            tfx.orchestration.LocalDagRunner().run(pipeline)

:func:`component_progress` listens to the runner's own messages rather than wrapping it: TFX's
``LocalDagRunner`` logs ``Component <id> is running.`` / ``... is finished.`` (absl, INFO) around each
launch and the portable launcher logs ``A cached execution <id> is used.``; each component becomes one
console line, opened when it starts and closed with its state and elapsed seconds::

    [ 8/12] Transform                        done      39.2 s

Keras's per-epoch progress (``fit(verbose=2)``) is routed to absl by
``tf_keras.utils.disable_interactive_logging()`` and shown indented under the Trainer's line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from typing import Callable, Iterator, Optional, TextIO

from absl import logging as absl_logging

# The messages TFX logs around every component (tfx/orchestration/local/local_dag_runner.py and
# tfx/orchestration/portable/launcher.py, tfx 1.16): matched on the unformatted template, never on text.
COMPONENT_RUNNING = "Component %s is running."
COMPONENT_FINISHED = "Component %s is finished."
EXECUTION_CACHED = "A cached execution %d is used."
EXECUTION_SKIPPED = "Skipping execution for %s"

DONE, CACHED, SKIPPED, FAILED = "done", "cached", "skipped", "FAILED"
NAME_WIDTH = 32
_KERAS_DIR = os.sep + "tf_keras" + os.sep
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def format_start(index: int, total: int, name: str) -> str:
    """The opening half of a component's line: ``[ 3/12] StatisticsGen`` padded to a fixed width."""
    width = len(str(total))
    return f"[{index:>{width}}/{total}] {name:<{NAME_WIDTH}}"


def format_end(state: str, seconds: float) -> str:
    """The closing half: state and elapsed wall time, e.g. ``done      12.0 s``."""
    return f" {state:<7} {seconds:7.1f} s"


class Console:
    """Lines for the person at the terminal; a component's line stays open until the component ends.

    ``begin`` writes a line without its end; ``end`` completes it. Anything written in between (a
    Keras progress line) first closes the open line, and ``end`` then repeats its beginning. With
    ``hold_lines=False`` (when other output shares the terminal, as with ``--verbose``) every ``begin``
    is a whole line of its own.
    """

    def __init__(self, out: TextIO, err: Optional[TextIO] = None, hold_lines: bool = True):
        self.out = out
        self.err = err or out
        self.hold_lines = hold_lines
        self._open: Optional[str] = None  # the beginning of a line waiting for its end
        self._interrupted = False

    def line(self, text: str = "") -> None:
        self._break()
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        self._break()
        self.out.flush()
        self.err.write(text + "\n")
        self.err.flush()

    def begin(self, text: str) -> None:
        self._break()
        self._open, self._interrupted = text, not self.hold_lines
        self.out.write(text if self.hold_lines else text + "\n")
        self.out.flush()

    def end(self, text: str) -> None:
        if self._open is None:
            self.line(text)
            return
        start, self._open = self._open, None
        self.out.write((start if self._interrupted else "") + text + "\n")
        self.out.flush()

    def _break(self) -> None:
        if self._open is not None and not self._interrupted:
            self.out.write("\n")
            self._interrupted = True

    @contextlib.contextmanager
    def as_stderr(self) -> Iterator[None]:
        """``sys.stderr`` is this console meanwhile: for progress bars (tqdm) that write there."""
        self._break()
        saved, sys.stderr = sys.stderr, self.err
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr = saved


@contextlib.contextmanager
def redirect_fds(log_path: str) -> Iterator[Console]:
    """Points file descriptors 1 and 2 at ``log_path`` (appended); yields a :class:`Console` on the old ones.

    At the descriptor level, so C and C++ writes and child processes follow; ``sys.stdout`` and
    ``sys.stderr`` are replaced by streams on the log too (they may not be fds 1 and 2, e.g. under pytest).
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    saved_streams = sys.stdout, sys.stderr
    for stream in saved_streams:
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    out = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    err = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    log = os.fdopen(os.dup(log_fd), "w", buffering=1)
    try:
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        sys.stdout = sys.stderr = log
        yield Console(out, err)
    finally:
        sys.stdout, sys.stderr = saved_streams
        for stream in (log, out, err):
            stream.flush()
        for fd, old in saved.items():
            os.dup2(old, fd)
            os.close(old)
        for stream in (log, out, err):
            stream.close()
        os.close(log_fd)


@contextlib.contextmanager
def quiet(log_path: str, level: int = logging.INFO) -> Iterator[Console]:
    """:func:`redirect_fds`, with Python logging (root handlers) writing to the log at ``level``."""
    with redirect_fds(log_path) as console:
        handler = logging.StreamHandler(sys.stderr)  # fd 2, the log file
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        saved_handlers, saved_level = root.handlers[:], root.level
        root.handlers = [handler]
        root.setLevel(level)
        try:
            yield console
        finally:
            root.handlers = saved_handlers
            root.setLevel(saved_level)


class ComponentProgress(logging.Handler):
    """Turns TFX's component log messages into one console line per component (see the module doc)."""

    def __init__(self, console: Console, total: int, clock: Callable[[], float] = time.monotonic):
        super().__init__(logging.INFO)
        self.console = console
        self.total = total
        self.clock = clock
        self.index = 0
        self.running: Optional[str] = None  # the component that started and has not finished
        self._started = 0.0
        self._state = DONE

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.msg == COMPONENT_RUNNING:
                self.index += 1
                self.running, self._started, self._state = str(record.args[0]), self.clock(), DONE
                self.console.begin(format_start(self.index, self.total, self.running))
            elif record.msg == COMPONENT_FINISHED and self.running is not None:
                self._close(self._state)
            elif record.msg == EXECUTION_CACHED:
                self._state = CACHED
            elif record.msg == EXECUTION_SKIPPED:
                self._state = SKIPPED
            elif record.levelno == logging.INFO and _KERAS_DIR in record.pathname:
                self.console.line(" " * 8 + record.getMessage().rstrip())  # Keras progress, under the Trainer
        except Exception:  # a display problem must never fail the run
            self.handleError(record)

    def fail(self) -> Optional[str]:
        """Closes the running component's line as FAILED; returns its name (None if none was running)."""
        name = self.running
        if name is not None:
            self._close(FAILED)
        return name

    def _close(self, state: str) -> None:
        self.console.end(format_end(state, self.clock() - self._started))
        self.running = None


@contextlib.contextmanager
def component_progress(console: Console, total: int, keras_progress: bool = True) -> Iterator[ComponentProgress]:
    """Shows each component's line while the block runs a TFX pipeline (and Keras's epoch lines).

    On an exception the running component's line is closed as FAILED before the exception propagates.
    """
    absl_logger = logging.getLogger("absl")
    progress = ComponentProgress(console, total)
    # Through absl's own verbosity: TF code saves and restores it around a save (never the logger's level).
    saved_verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(max(saved_verbosity, absl_logging.INFO))  # the messages are INFO
    absl_logger.addHandler(progress)
    keras_interactive = None
    if keras_progress:
        from tf_keras.utils import disable_interactive_logging, is_interactive_logging_enabled

        keras_interactive = is_interactive_logging_enabled()
        disable_interactive_logging()  # Keras's progress lines become absl records (this thread only)
    try:
        yield progress
    except BaseException:
        progress.fail()
        raise
    finally:
        absl_logger.removeHandler(progress)
        absl_logging.set_verbosity(saved_verbosity)
        if keras_interactive:
            from tf_keras.utils import enable_interactive_logging

            enable_interactive_logging()


def report_failure(console: Console, error: BaseException, log: Optional[str], what: str) -> None:
    """Tells the console what failed; with a log file (where nothing else of it shows) the whole traceback.

    The traceback is logged too, so the log file holds it next to the run's other lines.
    """
    if log:
        logging.error("%s", what, exc_info=error)
        console.error("\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip())
    console.error(f"\nERROR: {what}: {error}" + (f"\n(full log: {log})" if log else ""))
