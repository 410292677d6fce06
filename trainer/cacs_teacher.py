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
  A pipeline passes its directory as ``JACConfig.cacs_teacher_model``; a Resolver that provides the latest
  blessed model will hand over the same directory. Loading checks the signature's inputs against what the
  candidate rows carry and names the model and the missing inputs; :meth:`SavedModelTeacher.check` compares
  the teacher's table sizes with this run's (its inputs are transformed indices, so the teacher must have
  been trained on the same vocabularies).
"""

from __future__ import annotations

from typing import Dict, Mapping, Protocol, Sequence, Tuple

import tensorflow as tf

from transform import names as N

TEACHER_SIGNATURE = "teacher_logits"
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


class _TeacherModule(tf.Module):
    def __init__(self, head, inputs: Sequence[str]):
        super().__init__(name="teacher")
        self.model_variables = list(head.variables)
        # The rows of the tables the head was trained with: its inputs are *transformed* indices, so it only
        # fits a run whose Transform graph gives the same vocabularies (checked by SavedModelTeacher.check).
        names = sorted(head.cardinalities)
        self.cardinality_names = tf.Variable(names, trainable=False, name="cardinality_names")
        self.cardinality_rows = tf.Variable([int(head.cardinalities[n]) for n in names], dtype=tf.int64,
                                            trainable=False, name="cardinality_rows")
        spec = {n: _input_spec(n) for n in inputs}

        @tf.function(input_signature=[spec])
        def teacher_logits(features):
            rows = {n: features[n] for n in inputs if n != TEACHER_PCTR}
            return {TEACHER_LOGIT: tf.reshape(head(rows, features[TEACHER_PCTR], training=False), [-1])}

        self.teacher_logits = teacher_logits


def save_teacher(head, export_dir: str) -> str:
    """Saves ``head`` (a trained CR head) as a teacher SavedModel with :data:`TEACHER_SIGNATURE`.

    Its inputs are the candidate-row features the head reads (``head.feature_names``) and ``pctr``.
    """
    inputs = tuple(n for n in CANDIDATE_ROW_INPUTS if n in head.feature_names) + (TEACHER_PCTR,)
    module = _TeacherModule(head, inputs)
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

    def check(self, cardinalities: Mapping[str, int]) -> None:
        """Raises ``ValueError`` naming the model and the features whose vocabularies differ from this run's.

        Equal sizes are necessary, not sufficient, for the same vocabularies (the same Transform graph).
        """
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
