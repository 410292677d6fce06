"""tf.Transform preprocessing of the impression log.

* :mod:`transform.preprocessing` -- ``preprocessing_fn`` (the TFX Transform component's user code);
* :mod:`transform.names` -- transformed feature names, groups, vocabulary settings, cardinalities;
* :mod:`transform.local` -- the same analysis and transformation on local files, without a pipeline.
"""
