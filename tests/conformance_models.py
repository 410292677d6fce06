"""The conformance suite's models and server configs (``tests/test_serving_conformance.py``).

Half-plus-two as TF Serving's own tests build it (``saved_model_half_plus_two.py``): y = 0.5 x + 2 in TF1
style (a graph with a serialized ``tf.Example`` placeholder; predict, classify and regress signatures; ``x``
of shape [-1, 1]) and in TF2 style (``tf.saved_model.save`` of a ``tf.Module``), each in the version
directory ``00000123``; half-plus-three (y = 0.5 x + 3) as a second model and version; and our AR / CR
contract models (``serving.testing``).

To check a TF Serving that runs elsewhere::

    python tests/conformance_models.py DIR      # writes the models and configs, prints the command
    ADCR_CONFORMANCE_SERVER=HOST:8500,HOST:8501 pytest tests/test_serving_conformance.py
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import List

VERSION = 123  # TF Serving's testdata version directory "00000123"
VERSION_DIR = "00000123"
LABELLED_VERSIONS = (123, 124)  # model "labelled": 123 is half-plus-two, 124 half-plus-three

MODELS_CONFIG = """\
model_config_list {{
  config {{ name: "default" base_path: "{root}/half_plus_two" model_platform: "tensorflow" }}
  config {{ name: "half_plus_two_tf2" base_path: "{root}/half_plus_two_tf2" model_platform: "tensorflow" }}
  config {{
    name: "labelled" base_path: "{root}/labelled" model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 123 versions: 124 }} }}
    version_labels {{ key: "stable" value: 123 }}
    version_labels {{ key: "canary" value: 124 }}
  }}
  config {{ name: "ar" base_path: "{root}/ar" model_platform: "tensorflow" }}
  config {{ name: "cr" base_path: "{root}/cr" model_platform: "tensorflow" }}
}}
"""
MONITORING_CONFIG = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'


def _feature_spec(tf):
    return {"x": tf.compat.v1.FixedLenFeature([1], dtype=tf.float32),
            "x2": tf.compat.v1.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0])}


def _asset(directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "foo.txt")
    with open(path, "w") as fh:
        fh.write("asset-file-contents")
    return path


def write_half_plus_two_tf1(export_dir: str, b: float = 2.0) -> str:
    """TF Serving's TF1 half-plus-two (``b=3.0``: half-plus-three), signatures and tensor names as theirs."""
    import tensorflow as tf

    v1 = tf.compat.v1
    asset = _asset(os.path.join(os.path.dirname(export_dir), ".assets"))
    builder = v1.saved_model.builder.SavedModelBuilder(export_dir)
    with tf.Graph().as_default(), v1.Session() as sess:
        a, b_, c = v1.Variable(0.5, name="a"), v1.Variable(b, name="b"), v1.Variable(b + 1.0, name="c")
        serialized = v1.placeholder(tf.string, name="tf_example")  # unknown rank, as in their testdata
        # (Reshaped so that x is [-1, 1], as TF 1.x's ParseExample inferred for their testdata.)
        parsed = v1.parse_example(tf.reshape(serialized, [-1]), _feature_spec(tf))
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(tf.add(tf.multiply(a, x), b_), name="y")
        y2 = tf.identity(tf.add(tf.multiply(a, x), c), name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        a2, c2 = v1.Variable(0.5, name="a2"), v1.Variable(b + 1.0, name="c2")
        y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, tf.constant(asset))
        filename = v1.Variable("foo.txt", name="filename_tensor", trainable=False, collections=[])
        info = v1.saved_model.utils.build_tensor_info
        k = v1.saved_model.signature_constants

        def sig(inputs, outputs, method):
            return v1.saved_model.signature_def_utils.build_signature_def(
                {n: info(t) for n, t in inputs.items()}, {n: info(t) for n, t in outputs.items()}, method)

        signatures = {
            "regress_x_to_y": sig({k.REGRESS_INPUTS: serialized}, {k.REGRESS_OUTPUTS: y}, k.REGRESS_METHOD_NAME),
            "regress_x_to_y2": sig({k.REGRESS_INPUTS: serialized}, {k.REGRESS_OUTPUTS: y2}, k.REGRESS_METHOD_NAME),
            "regress_x2_to_y3": sig({k.REGRESS_INPUTS: x2}, {k.REGRESS_OUTPUTS: y3}, k.REGRESS_METHOD_NAME),
            "classify_x_to_y": sig({k.CLASSIFY_INPUTS: serialized}, {k.CLASSIFY_OUTPUT_SCORES: y},
                                   k.CLASSIFY_METHOD_NAME),
            k.DEFAULT_SERVING_SIGNATURE_DEF_KEY: sig({"x": x}, {"y": y}, k.PREDICT_METHOD_NAME),
        }
        sess.run(v1.global_variables_initializer())
        builder.add_meta_graph_and_variables(
            sess, [v1.saved_model.tag_constants.SERVING], signature_def_map=signatures,
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=tf.group(filename.assign("foo.txt")))
    builder.save()
    return export_dir


def write_half_plus_two_tf2(export_dir: str) -> str:
    """TF Serving's native TF2 ``HalfPlusTwoModel`` (every signature's method is predict, as TF2 saves them)."""
    import tensorflow as tf

    parse = lambda s: tf.io.parse_example(s, _feature_spec(tf))["x"]  # noqa: E731
    examples = tf.TensorSpec([None], tf.string, name="inputs")
    one = tf.TensorSpec([1], tf.float32, name="inputs")

    class HalfPlusTwo(tf.Module):
        def __init__(self, asset):
            self.a, self.b = tf.Variable(0.5, name="a"), tf.Variable(2.0, name="b")
            self.c = tf.Variable(3.0, name="c")
            self.asset = tf.saved_model.Asset(asset)

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
        def predict(self, x):
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[examples])
        def regress_xy(self, s):
            return {"outputs": self.a * parse(s) + self.b}

        @tf.function(input_signature=[examples])
        def regress_xy2(self, s):
            return {"outputs": self.a * parse(s) + self.c}

        @tf.function(input_signature=[one])
        def regress_x2y3(self, x2):
            return {"outputs": self.a * x2 + self.c}

        @tf.function(input_signature=[examples])
        def classify_xy(self, s):
            return {"scores": self.a * parse(s) + self.b}

        @tf.function(input_signature=[one])
        def classify_x2y3(self, x2):
            return {"scores": self.a * x2 + self.c}

    m = HalfPlusTwo(_asset(os.path.join(os.path.dirname(export_dir), ".assets")))
    tf.saved_model.save(m, export_dir, signatures={
        "regress_x_to_y": m.regress_xy, "regress_x_to_y2": m.regress_xy2, "regress_x2_to_y3": m.regress_x2y3,
        "classify_x_to_y": m.classify_xy, "classify_x2_to_y3": m.classify_x2y3, "serving_default": m.predict})
    return export_dir


def write_models(root: str) -> List[str]:
    """Every model of the suite under ``root``, with ``models.config`` and ``monitoring.config``; returns
    the TF Serving flags (ports excluded) that serve them."""
    from serving import testing as T

    root = os.path.abspath(root)
    write_half_plus_two_tf1(os.path.join(root, "half_plus_two", VERSION_DIR))
    write_half_plus_two_tf2(os.path.join(root, "half_plus_two_tf2", VERSION_DIR))
    write_half_plus_two_tf1(os.path.join(root, "half_plus_three", VERSION_DIR), b=3.0)
    shutil.copytree(os.path.join(root, "half_plus_two", VERSION_DIR), os.path.join(root, "labelled", "00000123"))
    shutil.copytree(os.path.join(root, "half_plus_three", VERSION_DIR), os.path.join(root, "labelled", "00000124"))
    T.make_fake_models(root, 1)
    with open(os.path.join(root, "models.config"), "w") as fh:
        fh.write(MODELS_CONFIG.format(root=root))
    with open(os.path.join(root, "monitoring.config"), "w") as fh:
        fh.write(MONITORING_CONFIG)
    return [f"--model_config_file={root}/models.config", f"--monitoring_config_file={root}/monitoring.config",
            "--allow_version_labels_for_unavailable_models=true", "--file_system_poll_wait_seconds=1"]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    flags = write_models(sys.argv[1])
    print("tensorflow_model_server --port=8500 --rest_api_port=8501 " + " ".join(flags))
