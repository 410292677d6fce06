"""The ranking teacher CACS's selector is distilled from: a trained, frozen creative ranker.

CACS (Lin et al., SIGIR 2022) distils a strong ranking model into its cheap dual-tower selector
(``trainer.listwise_distillation``). The teacher scores every candidate creative of every training impression;
it is a trained, exported model given to the run (e.g. the latest blessed JAC), never the current run's own
outputs, and it receives no gradient.

A teacher is any :class:`Teacher`: ``candidate_logits(rows, pctr)`` over the candidate rows of
:func:`trainer.candidates.candidate_rows` (transformed user, ad and candidate-creative features, ``N`` rows,
and the impression's historical ad CTR per row) returns one logit per row ``[N]``.

* :class:`HeadTeacher` wraps an in-memory CR head (a ``JACModel.cr``); used by tests and notebooks.
* :class:`SavedModelTeacher` loads a *teacher SavedModel* written by :func:`save_teacher`: one signature,
  :data:`TEACHER_SIGNATURE`, from the transformed CR features the head reads (and ``pctr``) to ``logit``.
  Every variant whose CR is the MLP CR (``jac``, ``cr``, ``acr``) writes one as ``teacher/`` beside its
  ``ar/`` and ``cr/`` in the Trainer's model (``trainer.variants.export_models``), so a trained, blessed JAC
  is a teacher: ``python -m tfx_pipeline.local_runner --variant cacs --teacher-model DIR`` with DIR that
  model (the Trainer's ``model`` artifact, its ``Format-Serving`` directory, or the teacher directory
  itself, :func:`resolve_teacher_dir`). The pipeline passes the directory to the Trainer as
  ``JACConfig.cacs_teacher_model``.

Checks, each naming the model: at pipeline construction (:func:`check_teacher_model`), that the directory
holds a SavedModel with :data:`TEACHER_SIGNATURE`, that the signature needs no input a candidate row lacks and
has a ``logit`` output; at the start of ``run_fn``, before any training (:meth:`SavedModelTeacher.check`), that
the teacher was trained on this run's vocabularies: its inputs are transformed *indices*, so a teacher of
other vocabularies would score other creatives than the examples' candidates. The teacher records a SHA-256
of each vocabulary file it reads (:func:`vocabulary_fingerprints`); equal table sizes alone would miss a
reordered vocabulary.
"""

from __future__ import annotations

import hashlib
import os
from typing import Dict, Mapping, Optional, Protocol, Sequence, Tuple

import tensorflow as tf

from transform import names as N

TEACHER_SIGNATURE = "teacher_logits"
TEACHER_DIR = "teacher"  # the teacher SavedModel's directory in a Trainer's model
TEACHER_PCTR = "pctr"
TEACHER_LOGIT = "logit"
# What a candidate row carries (trainer.candidates.candidate_rows): the CR user and ad codes, the candidate
# creative's id, attributes and content embedding; plus the impression's historical ad CTR.
CANDIDATE_ROW_INPUTS: Tuple[str, ...] = N.CR_CATEGORICAL + N.CR_DENSE
TEACHER_INPUTS: Tuple[str, ...] = CANDIDATE_ROW_INPUTS + (TEACHER_PCTR,)


class Teacher(Protocol):
    def candidate_logits(self, rows: Mapping[str, tf.Tensor], pctr: tf.Tensor) -> tf.Tensor:
        """One teacher logit per candidate row ``[N]``."""


def _input_spec(name: str) -> tf.TensorSpec:
    if name == TEACHER_PCTR:
        return tf.TensorSpec([None], tf.float32, name)
    if name in N.DENSE_WIDTHS:
        return tf.TensorSpec([None, N.DENSE_WIDTHS[name]], tf.float32, name)
    return tf.TensorSpec([None], tf.int64, name)


class HeadTeacher:
    """A trained CR head as teacher: ``head(rows, pctr, training=False)``, without gradient."""

    def __init__(self, head):
        self.head = head

    def candidate_logits(self, rows, pctr):
        return tf.stop_gradient(tf.reshape(self.head(rows, pctr, training=False), [-1]))


def vocabulary_fingerprints(tft_output, features: Sequence[str]) -> Dict[str, str]:
    """SHA-256 of the vocabulary file behind each transformed id feature of ``features`` (``{feature: hex}``)."""
    out = {}
    for raw, vocab in N.ID_VOCABULARIES.items():
        if N.xf(raw) in features:
            with tf.io.gfile.GFile(tft_output.vocabulary_file_by_name(vocab.filename), "rb") as f:
                out[N.xf(raw)] = hashlib.sha256(f.read()).hexdigest()
    return out


class _TeacherModule(tf.Module):
    def __init__(self, head, inputs: Sequence[str], fingerprints: Mapping[str, str]):
        super().__init__(name="teacher")
        self.model_variables = list(head.variables)
        # The rows of the tables the head was trained with: its inputs are *transformed* indices, so it only
        # fits a run whose Transform graph gives the same vocabularies (checked by SavedModelTeacher.check).
        names = sorted(head.cardinalities)
        self.cardinality_names = tf.Variable(names, trainable=False, name="cardinality_names")
        self.cardinality_rows = tf.Variable([int(head.cardinalities[n]) for n in names], dtype=tf.int64,
                                            trainable=False, name="cardinality_rows")
        named = sorted(fingerprints)
        self.vocabulary_names = tf.Variable(named, dtype=tf.string, trainable=False, name="vocabulary_names")
        self.vocabulary_sha256 = tf.Variable([fingerprints[n] for n in named], dtype=tf.string, trainable=False,
                                             name="vocabulary_sha256")
        spec = {n: _input_spec(n) for n in inputs}

        @tf.function(input_signature=[spec])
        def teacher_logits(features):
            rows = {n: features[n] for n in inputs if n != TEACHER_PCTR}
            return {TEACHER_LOGIT: tf.reshape(head(rows, features[TEACHER_PCTR], training=False), [-1])}

        self.teacher_logits = teacher_logits


def save_teacher(head, export_dir: str, tft_output=None) -> str:
    """Saves ``head`` (a trained CR head) as a teacher SavedModel with :data:`TEACHER_SIGNATURE`.

    Its inputs are the candidate-row features the head reads (``head.feature_names``) and ``pctr``; with
    ``tft_output`` (the Transform output it was trained on) it records the fingerprints of the vocabularies
    it reads.
    """
    inputs = tuple(n for n in CANDIDATE_ROW_INPUTS if n in head.feature_names) + (TEACHER_PCTR,)
    fingerprints = vocabulary_fingerprints(tft_output, inputs) if tft_output is not None else {}
    module = _TeacherModule(head, inputs, fingerprints)
    tf.saved_model.save(module, export_dir, signatures={TEACHER_SIGNATURE: module.teacher_logits})
    return export_dir


class SavedModelTeacher:
    """A teacher SavedModel (:func:`save_teacher`) at ``path``; checked on load.

    Raises ``ValueError`` naming ``path`` when the model lacks :data:`TEACHER_SIGNATURE`, when the signature
    needs inputs a candidate row does not carry, or when it has no ``logit`` output.
    """

    def __init__(self, path: str):
        self.path = path
        try:
            self._loaded = tf.saved_model.load(path)
        except (OSError, IOError, ValueError) as error:
            raise ValueError(f"CACS teacher model {path!r}: cannot be loaded as a SavedModel ({error})") from error
        signatures = self._loaded.signatures
        if TEACHER_SIGNATURE not in signatures:
            raise ValueError(f"CACS teacher model {path!r}: has no {TEACHER_SIGNATURE!r} signature (it has "
                             f"{sorted(signatures)}); write one with trainer.cacs_teacher.save_teacher")
        self._fn = signatures[TEACHER_SIGNATURE]
        self.inputs = tuple(sorted(self._fn.structured_input_signature[1]))
        unknown = sorted(set(self.inputs) - set(TEACHER_INPUTS))
        if unknown:
            raise ValueError(f"CACS teacher model {path!r}: its {TEACHER_SIGNATURE!r} signature needs the inputs "
                             f"{unknown}, which the candidate rows do not carry (they carry {list(TEACHER_INPUTS)})")
        if not hasattr(self._loaded, "cardinality_rows"):
            raise ValueError(f"CACS teacher model {path!r}: records no table sizes (cardinality_rows); write it "
                             f"with trainer.cacs_teacher.save_teacher")
        if TEACHER_LOGIT not in self._fn.structured_outputs:
            raise ValueError(f"CACS teacher model {path!r}: its {TEACHER_SIGNATURE!r} signature has no "
                             f"{TEACHER_LOGIT!r} output (it has {sorted(self._fn.structured_outputs)})")

    @property
    def cardinalities(self) -> Dict[str, int]:
        """Rows of each categorical table of the teacher (:func:`save_teacher` records them)."""
        names = [n.decode() for n in self._loaded.cardinality_names.numpy()]
        return dict(zip(names, (int(r) for r in self._loaded.cardinality_rows.numpy())))

    @property
    def fingerprints(self) -> Dict[str, str]:
        """The recorded SHA-256 per vocabulary (``{}`` for a teacher saved without its Transform output)."""
        if not hasattr(self._loaded, "vocabulary_names"):
            return {}
        names = [n.decode() for n in self._loaded.vocabulary_names.numpy()]
        return dict(zip(names, (h.decode() for h in self._loaded.vocabulary_sha256.numpy())))

    def check(self, cardinalities: Mapping[str, int], tft_output=None) -> None:
        """Raises ``ValueError`` naming the model and the features whose vocabularies differ from this run's.

        Table sizes always; with ``tft_output`` (this run's Transform output) also the vocabulary files'
        fingerprints (a vocabulary of the same size in another order maps ids to other indices).
        """
        if tft_output is not None:
            recorded = self.fingerprints
            ours = vocabulary_fingerprints(tft_output, tuple(recorded))
            differ = sorted(n for n in recorded if recorded[n] != ours.get(n))
            if differ:
                raise ValueError(
                    f"CACS teacher model {self.path!r}: was trained on other vocabularies than this run's Transform "
                    f"output (the vocabulary files of {differ} differ: SHA-256 {[recorded[n][:12] for n in differ]} "
                    f"in the teacher, {[ours.get(n, '')[:12] for n in differ]} here); its candidate scores would "
                    f"be of other creatives than the examples' candidates. Train the teacher on the same "
                    f"Transform output (the same training data)")
        differ = sorted(n for n, rows in self.cardinalities.items() if n in cardinalities and cardinalities[n] != rows)
        if differ:
            detail = ", ".join(f"{n}: teacher {self.cardinalities[n]} rows, this run {cardinalities[n]}" for n in differ)
            raise ValueError(f"CACS teacher model {self.path!r}: was trained on other vocabularies than this run's "
                             f"Transform output ({detail}); its transformed inputs would mean other ids")

    def candidate_logits(self, rows, pctr):
        given = dict(rows, **{TEACHER_PCTR: tf.reshape(tf.cast(pctr, tf.float32), [-1])})
        spec = self._fn.structured_input_signature[1]
        features = {n: tf.cast(given[n], spec[n].dtype) for n in self.inputs}
        return tf.stop_gradient(self._fn(**features)[TEACHER_LOGIT])


def resolve_teacher_dir(path: str) -> str:
    """The teacher SavedModel at ``path``: the directory itself, its ``teacher/`` (a Trainer's serving model
    directory), or its ``Format-Serving/teacher/`` (a Trainer's ``model`` artifact); ``path`` when none holds
    one (loading then says why)."""
    # teacher/ first: a Trainer's serving model directory is itself a SavedModel (the eval model).
    for candidate in (os.path.join(path, TEACHER_DIR), os.path.join(path, "Format-Serving", TEACHER_DIR)):
        if tf.io.gfile.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    return path


def check_teacher_model(path: Optional[str]) -> Optional[str]:
    """At pipeline construction: the resolved teacher directory of ``path`` after the checks that need no data
    (:class:`SavedModelTeacher`'s); ``None`` for no teacher. Raises ``ValueError`` naming the model."""
    if not path:
        return None
    resolved = resolve_teacher_dir(path)
    SavedModelTeacher(resolved)
    return resolved
