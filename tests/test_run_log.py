"""The run's console and log file: descriptor-level redirection, one line per component, Keras's epoch line."""

import ctypes
import io
import logging
import subprocess
import sys

import pytest
from absl import logging as absl_logging

from tfx_pipeline import run_log


def test_component_line_format():
    line = run_log.format_start(3, 12, "StatisticsGen") + run_log.format_end(run_log.DONE, 12.04)
    assert line == "[ 3/12] StatisticsGen" + " " * 19 + " done       12.0 s"
    assert run_log.format_start(3, 9, "A") == "[3/9] A" + " " * 31
    assert run_log.format_end(run_log.FAILED, 0.25) == " FAILED      0.2 s"


def test_c_level_writes_child_processes_and_logging_land_in_the_log_not_on_the_console(tmp_path, capfd):
    log = tmp_path / "logs" / "run.log"  # the directory is created
    libc = ctypes.CDLL(None)
    c_stderr = ctypes.c_void_p.in_dll(libc, "stderr")
    with run_log.quiet(str(log)) as console:
        console.line("shown on the console")
        libc.fputs(b"c stdio to fd 2\n", c_stderr)  # what TensorFlow's C++ logging does
        libc.fflush(c_stderr)
        libc.write(1, b"c write to fd 1\n", 16)
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'child stderr\\n')"], check=True)
        print("python print")
        logging.getLogger("some.library").warning("a library warning")
        logging.getLogger("some.library").info("an info line")
        console.error("an error for the console")
    captured = capfd.readouterr()
    assert captured.out == "shown on the console\n"
    assert captured.err == "an error for the console\n"
    text = log.read_text()
    for noise in ("c stdio to fd 2", "c write to fd 1", "child stderr", "python print", "a library warning",
                  "an info line"):
        assert noise in text, noise
    assert "shown on the console" not in text
    # Afterwards the descriptors are the terminal's again.
    libc.write(2, b"after\n", 6)
    print("after print")
    after = capfd.readouterr()
    assert after.err == "after\n" and after.out == "after print\n"


def test_the_log_is_appended_to_and_logging_is_restored(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("earlier run\n")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with run_log.quiet(str(log)):
        logging.getLogger("x").warning("second run")
    assert root.handlers == handlers and root.level == level
    assert log.read_text().startswith("earlier run\n") and "second run" in log.read_text()


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _keras_record(message):
    return logging.LogRecord("absl", logging.INFO, "/venv/site-packages/tf_keras/src/utils/generic_utils.py",
                             1, message, None, None)


def test_one_line_per_component_from_the_runners_messages():
    out = io.StringIO()
    clock = _Clock()
    progress = run_log.ComponentProgress(run_log.Console(out), total=3, clock=clock)
    absl = logging.getLogger("absl")
    absl.addHandler(progress)
    saved = absl.level
    absl.setLevel(logging.INFO)
    try:
        absl_logging.info(run_log.COMPONENT_RUNNING, "ImportExampleGen")
        absl_logging.info("Going to run a new execution %d", 7)  # other TFX messages show nothing
        clock.now += 16.7
        absl_logging.info(run_log.COMPONENT_FINISHED, "ImportExampleGen")
        absl_logging.info(run_log.COMPONENT_RUNNING, "SchemaGen")
        absl_logging.info(run_log.EXECUTION_CACHED, 8)
        clock.now += 0.1
        absl_logging.info(run_log.COMPONENT_FINISHED, "SchemaGen")
        absl_logging.info(run_log.COMPONENT_RUNNING, "Trainer")
        progress.handle(_keras_record("100/100 - 61s - loss: 0.2242"))
        clock.now += 90.2
        absl_logging.info(run_log.COMPONENT_FINISHED, "Trainer")
    finally:
        absl.removeHandler(progress)
        absl.setLevel(saved)
    pad = lambda name: name + " " * (run_log.NAME_WIDTH - len(name))  # noqa: E731
    assert out.getvalue().splitlines() == [
        f"[1/3] {pad('ImportExampleGen')} done       16.7 s",
        f"[2/3] {pad('SchemaGen')} cached      0.1 s",
        f"[3/3] {pad('Trainer')}",
        "        100/100 - 61s - loss: 0.2242",
        f"[3/3] {pad('Trainer')} done       90.2 s",
    ]


def test_a_failing_component_closes_its_line_as_failed_and_the_error_propagates():
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="anomalies"):
        with run_log.component_progress(run_log.Console(out), total=2, keras_progress=False) as progress:
            absl_logging.info(run_log.COMPONENT_RUNNING, "DataGate")
            raise RuntimeError("anomalies in click")
    assert progress.running is None
    line = out.getvalue()
    assert line.startswith("[1/2] DataGate ") and " FAILED " in line and line.endswith(" s\n")
    assert progress not in logging.getLogger("absl").handlers


def test_verbose_console_prints_each_beginning_as_a_whole_line():
    out = io.StringIO()
    console = run_log.Console(out, hold_lines=False)
    console.begin("[1/1] Trainer")
    out.write("interleaved library output\n")  # as TF's own lines on a shared terminal
    console.end(" done 1.0 s")
    assert out.getvalue().splitlines() == ["[1/1] Trainer", "interleaved library output",
                                           "[1/1] Trainer done 1.0 s"]


def test_keras_epoch_line_is_shown_under_its_component():
    import numpy as np
    import tf_keras

    out = io.StringIO()
    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse")
    with run_log.component_progress(run_log.Console(out), total=1):
        absl_logging.info(run_log.COMPONENT_RUNNING, "Trainer")
        model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=4, epochs=1, verbose=2)
        absl_logging.info(run_log.COMPONENT_FINISHED, "Trainer")
    assert tf_keras.utils.is_interactive_logging_enabled()  # restored
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[1].startswith("        2/2 - ") and " - loss: " in lines[1]
    assert lines[2].startswith("[1/1] Trainer ") and " done " in lines[2]


def test_lines_survive_tensorflow_saving_and_restoring_absl_verbosity():
    # tf.saved_model.save sets absl's verbosity to FATAL and back around every object it lists; lines of
    # components that run after a save (Transform, Trainer) must still be shown.
    out = io.StringIO()
    with run_log.component_progress(run_log.Console(out), total=2, keras_progress=False):
        absl_logging.info(run_log.COMPONENT_RUNNING, "Transform")
        saved = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.FATAL)
        absl_logging.set_verbosity(saved)
        absl_logging.info(run_log.COMPONENT_FINISHED, "Transform")
        absl_logging.info(run_log.COMPONENT_RUNNING, "Trainer")
        absl_logging.info(run_log.COMPONENT_FINISHED, "Trainer")
    lines = out.getvalue().splitlines()
    assert [line.split()[:3] for line in lines] == [["[1/2]", "Transform", "done"], ["[2/2]", "Trainer", "done"]]
