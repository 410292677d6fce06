"""The two TF Serving config messages ``tensorflow-serving-api`` does not ship, with TF Serving's fields.

``--monitoring_config_file`` holds a text ``tensorflow.serving.MonitoringConfig``
(``tensorflow_serving/config/monitoring_config.proto``) and ``--batching_parameters_file`` a text
``tensorflow.serving.BatchingParameters`` (``tensorflow_serving/servables/tensorflow/
session_bundle_config.proto``). The pip package has ``model_server_config_pb2`` but neither of these, so
they are declared here field for field (same names, numbers and types as TF Serving 2.16) in a private
descriptor pool: a file written for TF Serving parses here, and a misspelt field fails here as it does
there.
"""

from __future__ import annotations

import functools

PACKAGE = "tensorflow.serving"

_INT64_VALUE = ".google.protobuf.Int64Value"
_STRING_VALUE = ".google.protobuf.StringValue"
_BOOL_VALUE = ".google.protobuf.BoolValue"

# message name -> [(field name, number, type, type name or None, repeated)]
_MESSAGES = {
    "PrometheusConfig": [("enable", 1, "bool", None, False), ("path", 2, "string", None, False)],
    "MonitoringConfig": [("prometheus_config", 1, "message", f".{PACKAGE}.PrometheusConfig", False)],
    "BatchingParameters": [
        ("max_batch_size", 1, "message", _INT64_VALUE, False),
        ("batch_timeout_micros", 2, "message", _INT64_VALUE, False),
        ("max_enqueued_batches", 3, "message", _INT64_VALUE, False),
        ("num_batch_threads", 4, "message", _INT64_VALUE, False),
        ("thread_pool_name", 5, "message", _STRING_VALUE, False),
        ("allowed_batch_sizes", 6, "int64", None, True),
        ("pad_variable_length_inputs", 7, "bool", None, False),
        ("enable_large_batch_splitting", 8, "message", _BOOL_VALUE, False),
        ("max_execution_batch_size", 9, "message", _INT64_VALUE, False),
    ],
}


@functools.lru_cache(maxsize=None)
def _classes():
    from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2
    from google.protobuf import message_factory

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    fdp = descriptor_pb2.FileDescriptorProto(name="standin/tf_serving_configs.proto", package=PACKAGE,
                                             syntax="proto3", dependency=[wrappers.name])
    F = descriptor_pb2.FieldDescriptorProto
    for name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        for field, number, kind, type_name, repeated in fields:
            f = msg.field.add(name=field, number=number, type=getattr(F, f"TYPE_{kind.upper()}"),
                              label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = type_name
    pool.Add(fdp)
    factory = message_factory.MessageFactory(pool)
    return {name: factory.GetPrototype(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in _MESSAGES}


def monitoring_config_class():
    """``tensorflow.serving.MonitoringConfig``."""
    return _classes()["MonitoringConfig"]


def batching_parameters_class():
    """``tensorflow.serving.BatchingParameters``."""
    return _classes()["BatchingParameters"]
