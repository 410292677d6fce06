"""Small formula models with the AR and CR serving contract, for tests, the benchmark and dry runs.

:func:`make_fake_models` writes ``<root>/ar/<version>/`` and ``<root>/cr/<version>/`` exactly as the
pipeline's Pusher does: SavedModels with the ``serving_default`` (serialized ``tf.Example``) and
``predict_raw`` (named raw tensors) signatures of :mod:`features`, plus
``assets.extra/tf_serving_warmup_requests``. Their scores are closed-form, so expected outputs are known:

.. math::

    pctr_{ad} = \\sigma(z_{user} + z_{ad} + 8\\,ctr_{hist} + 0.05 \\log(1 + imps_{hist})
                + 0.3\\,\\#\\{seq\\_ad\\_ids = ad\\_id\\} + 0.1\\,\\#\\{seq\\_ad\\_categories = ad\\_category\\}
                - 3 + h_{AR})

    pctr_c = \\sigma(z'_{user} + z'_{ad} + 4\\,ctr_{hist} + z_{creative}
                + 0.5 \\tanh(w^\\top e_{creative}) - 2 + h_{CR})

where the ``z`` are fixed linear terms of the categorical codes (see :func:`reference_pctr_ad` and
:func:`reference_pctr_c`, their NumPy twins) and ``h`` is an optional fixed-weight MLP term
(``hidden_units``; zero by default) that gives the benchmark a realistic amount of compute per row.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

import features as F

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

_AR_USER_W = {
    F.USER_GENDER: 0.15, F.USER_AGE_BUCKET: -0.05, F.USER_CITY_TIER: 0.04, F.USER_DEVICE: 0.10,
    F.USER_OS: -0.05, F.USER_ACTIVITY_LEVEL: 0.08, F.USER_INCOME_BUCKET: 0.03,
    F.USER_MEMBER_LEVEL: 0.05, F.USER_PURCHASE_FREQ: 0.06,
}
_CR_USER_W = {
    F.USER_GENDER: 0.10, F.USER_AGE_BUCKET: -0.03, F.USER_CITY_TIER: 0.02, F.USER_DEVICE: 0.05,
    F.USER_ACTIVITY_LEVEL: 0.04,
}
_CREATIVE_W = {
    F.CREATIVE_STYLE: 0.20, F.CREATIVE_COLOR_TONE: -0.10, F.CREATIVE_PRICE_TAG: 0.15,
    F.CREATIVE_TEXT_LENGTH: 0.05,
}
_EMBEDDING_W = np.linspace(-0.4, 0.4, F.CREATIVE_EMBEDDING_DIM).astype(np.float32)


def _tf_spec(name: str):
    import tensorflow as tf

    dtype = tf.int64 if F.BY_NAME[name].dtype == F.INT else tf.float32
    if name == F.CREATIVE_EMBEDDING:
        shape = [None, F.CREATIVE_EMBEDDING_DIM]
    elif name in F.SEQUENCE_FEATURES:
        shape = [None, None]
    else:
        shape = [None]
    return tf.TensorSpec(shape, dtype, name=name)


# ------------------------------------------------------------------------------------ NumPy references
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _f(inputs, name):
    return np.asarray(inputs[name], np.float64)


def reference_pctr_ad(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """``pctr_ad`` of a fake AR model with ``hidden_units=()``, in float64 (inputs as for ``predict_raw``)."""
    z = -3.0 + sum(w * _f(inputs, n) for n, w in _AR_USER_W.items())
    z = z + 0.01 * np.mod(_f(inputs, F.USER_ID), 7)
    z = z + 0.02 * np.mod(_f(inputs, F.AD_ID), 11) + 0.01 * _f(inputs, F.AD_CATEGORY)
    z = z - 0.05 * _f(inputs, F.AD_PRICE_BUCKET) + 0.005 * np.mod(_f(inputs, F.AD_ADVERTISER_ID), 5)
    z = z + 0.003 * np.mod(_f(inputs, F.AD_BRAND_ID), 3)
    z = z + 8.0 * _f(inputs, F.AD_HIST_CTR) + 0.05 * np.log1p(_f(inputs, F.AD_HIST_IMPS))
    seq_ids = np.asarray(inputs[F.SEQ_AD_IDS])
    seq_cats = np.asarray(inputs[F.SEQ_AD_CATEGORIES])
    ad_id = np.asarray(inputs[F.AD_ID])[:, None]
    ad_cat = np.asarray(inputs[F.AD_CATEGORY])[:, None]
    z = z + 0.3 * ((seq_ids == ad_id) & (seq_ids != F.SEQUENCE_PAD)).sum(axis=1)
    z = z + 0.1 * ((seq_cats == ad_cat) & (seq_cats != F.SEQUENCE_PAD)).sum(axis=1)
    return _sigmoid(z)


def reference_pctr_c(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """``pctr_c`` of a fake CR model with ``hidden_units=()``, in float64."""
    z = -2.0 + sum(w * _f(inputs, n) for n, w in _CR_USER_W.items())
    z = z + 0.01 * np.mod(_f(inputs, F.AD_ID), 11) + 0.02 * _f(inputs, F.AD_CATEGORY)
    z = z + 4.0 * _f(inputs, F.AD_HIST_CTR)
    z = z + sum(w * _f(inputs, n) for n, w in _CREATIVE_W.items())
    z = z + 0.001 * np.mod(_f(inputs, F.CREATIVE_ID), 97)
    emb = np.asarray(inputs[F.CREATIVE_EMBEDDING], np.float64)
    z = z + 0.5 * np.tanh(emb @ _EMBEDDING_W.astype(np.float64))
    return _sigmoid(z)


# ------------------------------------------------------------------------------------------ TF models
def _build_module(kind: str, hidden_units: Sequence[int], seed: int):
    """A tf.Module with the raw and serialized-example signatures of model ``kind`` ('ar' or 'cr')."""
    import tensorflow as tf

    names = F.AR_SERVING_INPUTS if kind == F.AR_MODEL_NAME else F.CR_SERVING_INPUTS
    output = F.PCTR_AD if kind == F.AR_MODEL_NAME else F.PCTR_C
    rng = np.random.default_rng(seed)

    module = tf.Module()
    # The MLP term reads every scalar input (scaled to O(1)) plus the embedding for CR.
    scalar_names = [n for n in names if n not in F.SEQUENCE_FEATURES and n != F.CREATIVE_EMBEDDING]
    width = len(scalar_names) + (F.CREATIVE_EMBEDDING_DIM if kind == F.CR_MODEL_NAME else 0)
    module.mlp = []
    for units in hidden_units:
        w = rng.normal(0.0, 1.0 / np.sqrt(width), (width, units)).astype(np.float32)
        module.mlp.append(tf.Variable(w, trainable=False))
        width = units
    if hidden_units:
        module.mlp.append(tf.Variable(
            rng.normal(0.0, 1.0 / np.sqrt(width), (width, 1)).astype(np.float32), trainable=False))

    def f(x, name):
        return tf.cast(x[name], tf.float32)

    def mlp_term(x, batch):
        if not hidden_units:
            return 0.0
        cols = [tf.broadcast_to(tf.math.tanh(f(x, n) * 0.01), [batch]) for n in scalar_names]
        h = tf.stack(cols, axis=1)
        if kind == F.CR_MODEL_NAME:
            h = tf.concat([h, x[F.CREATIVE_EMBEDDING]], axis=1)
        for w in module.mlp[:-1]:
            h = tf.nn.relu(tf.matmul(h, w))
        return 0.1 * tf.math.tanh(tf.squeeze(tf.matmul(h, module.mlp[-1]), axis=1))

    def fmod(x, name, m):
        return tf.cast(tf.math.floormod(x[name], m), tf.float32)

    def score_ar(x):
        batch = tf.shape(x[F.AD_ID])[0]
        z = -3.0 + sum(w * f(x, n) for n, w in _AR_USER_W.items())
        z += 0.01 * fmod(x, F.USER_ID, 7)
        z += 0.02 * fmod(x, F.AD_ID, 11) + 0.01 * f(x, F.AD_CATEGORY)
        z += -0.05 * f(x, F.AD_PRICE_BUCKET) + 0.005 * fmod(x, F.AD_ADVERTISER_ID, 5)
        z += 0.003 * fmod(x, F.AD_BRAND_ID, 3)
        z += 8.0 * f(x, F.AD_HIST_CTR) + 0.05 * tf.math.log1p(f(x, F.AD_HIST_IMPS))
        seq_ids, seq_cats = x[F.SEQ_AD_IDS], x[F.SEQ_AD_CATEGORIES]
        hits = tf.logical_and(tf.equal(seq_ids, x[F.AD_ID][:, None]), seq_ids != F.SEQUENCE_PAD)
        cat_hits = tf.logical_and(tf.equal(seq_cats, x[F.AD_CATEGORY][:, None]),
                                  seq_cats != F.SEQUENCE_PAD)
        z += 0.3 * tf.reduce_sum(tf.cast(hits, tf.float32), axis=1)
        z += 0.1 * tf.reduce_sum(tf.cast(cat_hits, tf.float32), axis=1)
        z = tf.broadcast_to(z, [batch]) + mlp_term(x, batch)
        return tf.math.sigmoid(z)

    def score_cr(x):
        batch = tf.shape(x[F.CREATIVE_ID])[0]
        z = -2.0 + sum(w * f(x, n) for n, w in _CR_USER_W.items())
        z += 0.01 * fmod(x, F.AD_ID, 11) + 0.02 * f(x, F.AD_CATEGORY)
        z += 4.0 * f(x, F.AD_HIST_CTR)
        z += sum(w * f(x, n) for n, w in _CREATIVE_W.items())
        z += 0.001 * fmod(x, F.CREATIVE_ID, 97)
        z += 0.5 * tf.math.tanh(tf.linalg.matvec(x[F.CREATIVE_EMBEDDING], tf.constant(_EMBEDDING_W)))
        z = tf.broadcast_to(z, [batch]) + mlp_term(x, batch)
        return tf.math.sigmoid(z)

    score = score_ar if kind == F.AR_MODEL_NAME else score_cr

    def raw(*args):
        return {output: score(dict(zip(names, args)))}

    raw_fn = tf.function(raw, input_signature=[_tf_spec(n) for n in names], autograph=False)

    parse_spec = F.raw_feature_spec(names)

    def from_examples(examples):
        parsed = tf.io.parse_example(examples, parse_spec)
        x = {n: (tf.sparse.to_dense(v, default_value=F.SEQUENCE_PAD) if isinstance(v, tf.SparseTensor)
                 else v) for n, v in parsed.items()}
        return {output: score(x)}

    examples_fn = tf.function(
        from_examples, input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
        autograph=False)
    module.raw = raw_fn
    module.examples = examples_fn
    signatures = {
        F.RAW_SIGNATURE: raw_fn.get_concrete_function(),
        F.SERVING_SIGNATURE: examples_fn.get_concrete_function(),
    }
    return module, signatures


def sample_inputs(kind: str, batch: int = 3, seed: int = 0, broadcast_user: bool = True,
                  seq_len: int = 4) -> Dict[str, np.ndarray]:
    """Random valid ``predict_raw`` inputs for model ``kind`` ('ar' or 'cr'), for warm-up and tests."""
    rng = np.random.default_rng(seed)
    names = F.AR_SERVING_INPUTS if kind == F.AR_MODEL_NAME else F.CR_SERVING_INPUTS
    out = {}
    for n in names:
        rows = 1 if (broadcast_user and n in F.BROADCASTABLE_INPUTS) else batch
        feat = F.BY_NAME[n]
        if n == F.CREATIVE_EMBEDDING:
            out[n] = rng.normal(size=(rows, F.CREATIVE_EMBEDDING_DIM)).astype(np.float32)
        elif n in F.SEQUENCE_FEATURES:
            hi = feat.domain or 50
            seq = rng.integers(0, hi, size=(rows, seq_len))
            seq[:, seq_len - 1:] = F.SEQUENCE_PAD  # a padded tail, as clients send
            out[n] = seq.astype(np.int64)
        elif feat.dtype == F.FLOAT:
            out[n] = rng.uniform(0.0, 0.1, size=rows).astype(np.float32)
        else:
            out[n] = rng.integers(0, feat.domain or 50, size=rows).astype(np.int64)
    return out


def _write_warmup(export_dir: str, kind: str) -> None:
    """Writes two PredictionLog records (one per signature) as TF Serving's warm-up file.

    Every input has the same 0th dimension: with ``--enable_batching`` TF Serving replays warm-up through
    its batching session, which refuses broadcast (batch-1) user features and would fail the load.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    names = F.AR_SERVING_INPUTS if kind == F.AR_MODEL_NAME else F.CR_SERVING_INPUTS
    raw = sample_inputs(kind, batch=2, broadcast_user=False)
    requests = []
    req = predict_pb2.PredictRequest()
    req.model_spec.name = kind
    req.model_spec.signature_name = F.RAW_SIGNATURE
    for n in names:
        req.inputs[n].CopyFrom(tf.make_tensor_proto(raw[n]))
    requests.append(req)
    req = predict_pb2.PredictRequest()
    req.model_spec.name = kind
    req.model_spec.signature_name = F.SERVING_SIGNATURE
    req.inputs["examples"].CopyFrom(tf.make_tensor_proto(
        np.array(examples_from_inputs(raw), dtype=object), dtype=tf.string))
    requests.append(req)
    os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(export_dir, WARMUP_FILE)) as w:
        for r in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=r))
            w.write(log.SerializeToString())


def examples_from_inputs(inputs: Mapping[str, np.ndarray]) -> list:
    """Serialized ``tf.Example`` per row of raw inputs (batch-1 inputs broadcast; sequence pads dropped)."""
    import tensorflow as tf

    batch = max(np.asarray(v).shape[0] for v in inputs.values())
    out = []
    for i in range(batch):
        feats = {}
        for n, v in inputs.items():
            v = np.asarray(v)
            row = v[i if v.shape[0] > 1 else 0]
            if n in F.SEQUENCE_FEATURES:
                row = row[row != F.SEQUENCE_PAD]
            row = np.atleast_1d(row)
            if row.dtype.kind == "f":
                feats[n] = tf.train.Feature(float_list=tf.train.FloatList(value=row.tolist()))
            else:
                feats[n] = tf.train.Feature(int64_list=tf.train.Int64List(value=row.tolist()))
        out.append(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    return out


def make_fake_models(root: str, version: int = 1, *, ar_hidden_units: Sequence[int] = (),
                     cr_hidden_units: Sequence[int] = (), seed: int = 0,
                     warmup: bool = True) -> Tuple[str, str]:
    """Writes fake AR and CR SavedModels as ``<root>/ar/<version>`` and ``<root>/cr/<version>``.

    Each model is saved to a temporary sibling directory and renamed into place, so a server polling the
    base path never sees a half-written version. Returns the two version directories.

    Args:
      root: the serving root (TF Serving model base layout).
      version: integer version directory name (the same for both models, as the Pusher writes them).
      ar_hidden_units / cr_hidden_units: widths of the optional fixed-weight MLP term (compute per row).
      seed: seeds the MLP weights.
      warmup: also write ``assets.extra/tf_serving_warmup_requests``.
    """
    import tensorflow as tf

    if int(version) < 0:
        raise ValueError(f"version must be a non-negative integer, got {version!r}")
    paths = []
    for kind, hidden in ((F.AR_MODEL_NAME, ar_hidden_units), (F.CR_MODEL_NAME, cr_hidden_units)):
        def write(export_dir, kind=kind, hidden=hidden):
            module, signatures = _build_module(kind, tuple(hidden), seed)
            tf.saved_model.save(module, export_dir, signatures=signatures)
            if warmup:
                _write_warmup(export_dir, kind)

        paths.append(_write_version(os.path.join(root, kind), version, write))
    return paths[0], paths[1]


def _write_version(base: str, version: int, write: Callable[[str], None]) -> str:
    """Writes ``<base>/<version>`` through ``write(directory)`` into a temporary sibling, then renames it
    into place, so a server polling ``base`` never sees half a version. Returns the version directory."""
    os.makedirs(base, exist_ok=True)
    final = os.path.join(base, str(int(version)))
    if os.path.exists(final):
        raise FileExistsError(f"{final} already exists")
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base)
    try:
        write(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# Compute per row for the benchmark's fake models: on one CPU thread, AR on 1,000 rows and CR on 10,000
# rows each take ~30 ms, about what a CR-shaped Keras MLP costs on this stack (~25 ms for 10,000 rows).
BENCH_AR_HIDDEN_UNITS = (1024, 1024, 512)
BENCH_CR_HIDDEN_UNITS = (384, 256, 128)


def latest_version(base_path: str) -> Optional[int]:
    """The highest integer version directory under ``base_path`` (None if there is none)."""
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return None
    versions = [int(n) for n in names if n.isdigit()]
    return max(versions) if versions else None


# Tests run on fake models by default; pointing this at a real serving root (the Pusher's destination)
# runs the same tests on copies of its latest AR and CR versions.
SERVING_ROOT_ENV = "ADCR_SERVING_ROOT"


def copy_version(src_root: str, dst_root: str, version: int) -> None:
    """Copies the latest version of each model under ``src_root`` to ``<dst_root>/<model>/<version>``.

    Copied to a temporary sibling and renamed into place, like :func:`make_fake_models`.
    """
    for kind in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):
        latest = latest_version(os.path.join(src_root, kind))
        if latest is None:
            raise FileNotFoundError(f"no version of {kind} under {src_root}")
        src = os.path.join(src_root, kind, str(latest))
        _write_version(os.path.join(dst_root, kind), version,
                       lambda tmp, src=src: shutil.copytree(src, tmp, dirs_exist_ok=True))


def prepare_serving_root(root: str, version: int = 1) -> bool:
    """Fills ``root`` with version ``version`` of AR and CR for tests; True if they are real models.

    Real models are copies of ``$ADCR_SERVING_ROOT``'s latest versions; otherwise fake ones.
    """
    src = os.environ.get(SERVING_ROOT_ENV)
    if src:
        copy_version(src, root, version)
        return True
    make_fake_models(root, version)
    return False


def push_version(root: str, version: int) -> None:
    """Pushes a new version of both models into ``root`` (a copy of the latest, or new fake models)."""
    if os.environ.get(SERVING_ROOT_ENV):
        copy_version(root, root, version)
    else:
        make_fake_models(root, version)


def mutation(path: Sequence, value) -> Callable[[dict], dict]:
    """A request mutator for bad-input tables: sets the field at ``path`` (keys and list indices) to ``value``,
    to ``value(old)`` when ``value`` is callable, or deletes it when ``value`` is ``KeyError``."""
    def apply(request: dict) -> dict:
        obj = request
        for key in path[:-1]:
            obj = obj[key]
        if value is KeyError:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value(obj[path[-1]]) if callable(value) else value
        return request
    return apply

