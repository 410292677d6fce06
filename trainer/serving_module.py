"""The building blocks of every exported SavedModel: the Transform layer, raw / tf.Example signatures, saving.

An online model is a :class:`OnlineModule` around ``score(transformed, seed) -> {output: [B]}``: its
``predict_raw`` signature takes named raw tensors (:func:`~trainer.signatures.raw_input_signature` of its input
set), its ``serving_default`` serialized tf.Example; both apply the one Transform graph to the model's own raw
inputs. ``seed()`` builds, on demand, a seed derived from the request (``trainer.thompson.request_seed``) for
models that sample. :func:`export_online` saves a module with its signatures and TF Serving warm-up requests.

The SavedModels hold only TensorFlow ops, variables and the Transform assets: they load with
``tf.saved_model.load`` without this project installed.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

import tensorflow as tf

import features as F
from transform import names as N
from trainer import thompson
from trainer.serving_inputs import SERVING_INPUTS, example_request
from trainer.signatures import (EXAMPLES_KEY, EXAMPLES_SIGNATURE, broadcast_rows, check_batch, parse_examples,
                                raw_input_signature, to_transform_inputs)
from trainer.warmup import write_warmup_requests

Score = Callable[[Mapping[str, tf.Tensor], Callable[[], tf.Tensor]], Dict[str, tf.Tensor]]


class Untracked:
    """Holds a Keras model without making it part of the SavedModel's object graph.

    The serving functions capture the model's variables, which the module tracks explicitly; keeping the
    Keras object itself out of the graph avoids Keras-specific serialization of every layer.
    """

    def __init__(self, value):
        self.value = value


class TransformingModule(tf.Module):
    """Holds the Transform layer and applies it to raw inputs in the layout it was traced with."""

    def __init__(self, tft_output, name: str):
        super().__init__(name=name)
        self.tft_layer = tft_output.transform_features_layer()
        self._raw_spec = tft_output.raw_feature_spec()
        missing = sorted(set(N.EVAL_RAW_INPUTS) - set(self._raw_spec))
        if missing:
            raise ValueError(f"the Transform graph does not take the raw feature(s) {missing}")

    def _transform(self, raw: Mapping[str, object], first: Optional[str] = None) -> Dict[str, object]:
        # tf.Transform fills the raw features not given here with dummies batched like the *first* input;
        # ``first`` lets a caller choose which (e.g. the user features, often of batch 1).
        order = ([first] if first else []) + [k for k in raw if k != first]
        return self.tft_layer({k: raw[k] for k in order})

    def _parse(self, serialized: tf.Tensor, names) -> Dict[str, object]:
        return parse_examples(serialized, names, self._raw_spec)


class OnlineModule(TransformingModule):
    """An online model's signatures around ``score(transformed, seed)``.

    * ``predict_raw``: named raw tensors of the input set ``inputs_key`` (default: the model name); the user
      features keep their own batch (usually 1) unless ``repeat_user_rows`` repeats them per row;
    * ``serve_examples``: serialized tf.Example, parsing only the model's own raw inputs;
    * :meth:`raw_signature` builds further raw signatures (a subset of inputs, another score).
    """

    def __init__(self, tft_output, name: str, inputs_key: Optional[str] = None):
        super().__init__(tft_output, name=name)
        self.inputs_key = inputs_key or name
        self.extra_signatures: Dict[str, object] = {}

    def raw_signature(self, inputs_key: str, score: Score, first_user: Optional[str] = None,
                      repeat_user_rows: bool = False):
        """A ``tf.function`` over the raw input set ``inputs_key`` returning ``score``'s outputs."""
        raw_spec = self._raw_spec

        @tf.function(input_signature=[raw_input_signature(inputs_key)])
        def signature(inputs):
            inputs, batch = check_batch(inputs_key, inputs)
            if repeat_user_rows:
                inputs = broadcast_rows(inputs, [n for n in inputs if n in F.BROADCASTABLE_INPUTS], batch)
            seed = lambda: thompson.request_seed([inputs[n] for n in sorted(inputs)])  # noqa: E731
            return score(self._transform(to_transform_inputs(inputs, raw_spec), first=first_user), seed)

        return signature

    def _add_signatures(self, score: Score, first_user: str, repeat_user_rows: bool = False) -> None:
        serving_inputs = SERVING_INPUTS[self.inputs_key]
        self.predict_raw = self.raw_signature(self.inputs_key, score, first_user, repeat_user_rows)

        @tf.function(input_signature=[EXAMPLES_SIGNATURE])
        def serve_examples(inputs):
            serialized = inputs[EXAMPLES_KEY]
            return score(self._transform(self._parse(serialized, serving_inputs)),
                         lambda: thompson.request_seed([serialized]))

        self.serve_examples = serve_examples


def save_module(module: tf.Module, export_dir: str, signatures: Mapping[str, object]) -> str:
    tf.saved_model.save(module, export_dir,
                        signatures={k: f.get_concrete_function() for k, f in signatures.items()})
    return export_dir


def export_online(module: OnlineModule, export_dir: str, warmup: bool, request_rows: int) -> str:
    """Saves an online module with all its signatures; warm-up: ``request_rows`` rows, 4 x 4.

    Every warm-up request gives all its inputs the same 0th dimension (user features repeated per row):
    TF Serving replays warm-up through its batching session when ``--enable_batching`` is on, and that
    session refuses unequal 0th dimensions, which would fail the load.
    """
    save_module(module, export_dir, {F.SERVING_SIGNATURE: module.serve_examples, F.RAW_SIGNATURE: module.predict_raw,
                                     **module.extra_signatures})
    if warmup:
        write_warmup_requests(export_dir, module.name, [
            example_request(module.inputs_key, batch_size=request_rows, user_batch_size=request_rows, seed=0),
            example_request(module.inputs_key, batch_size=4, user_batch_size=4, seed=1)])
    return export_dir


