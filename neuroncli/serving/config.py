"""What the server was asked to serve: models, version policies, batching, monitoring.

The model list comes from ``--model_name``/``--model_base_path`` or from
``--model_config_file``, TF Serving's text-format ``ModelServerConfig`` parsed with the
``tensorflow-serving-api`` wheel's own message classes.  That wheel does not ship
``BatchingParameters`` or ``MonitoringConfig``, so those two messages are declared here
(field names and numbers as TF Serving's ``session_bundle_config.proto`` and
``monitoring_config.proto`` have them) and parsed by protobuf's ``text_format``, which gives
TF Serving's syntax and its errors for unknown fields for free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from neuroncli.errors import UserError

# TF Serving's defaults (batching_parameters.proto comments, server flags).
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_MAX_ENQUEUED_BATCHES = 1_000_000
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@dataclass(frozen=True)
class VersionPolicy:
    """Which version directories to serve.

    kind: ``latest`` (the ``num_versions`` highest), ``all`` or ``specific`` (``versions``).
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def aspired(self, present: list[int]) -> list[int]:
        """The versions to serve out of those present on disk, highest first."""
        ordered = sorted(present, reverse=True)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[:self.num_versions]


@dataclass(frozen=True)
class ModelConfig:
    """One served model: its name, its base path (numeric version directories below),
    its version policy and its version labels (label -> version)."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchingOptions:
    """``--batching_parameters_file``: how concurrent requests are merged.

    max_batch_size: rows per merged call.  batch_timeout_micros: how long an open batch
    waits for more rows (0 = run what is queued as soon as a thread is free).
    max_enqueued_batches: batches waiting at most (beyond: ``RESOURCE_EXHAUSTED``).
    num_batch_threads: merged calls running at once.  allowed_batch_sizes: the sizes a
    merged call is padded to (the last must equal max_batch_size).
    """

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    num_batch_threads: int = 0  # 0: the host's CPUs
    allowed_batch_sizes: tuple[int, ...] = ()


def read_model_config(path: str) -> list[ModelConfig]:
    """Parse a text-format ``ModelServerConfig`` (``model_config_list`` only)."""
    from tensorflow_serving.config import model_server_config_pb2
    message = _parse(path, model_server_config_pb2.ModelServerConfig(), "--model_config_file")
    if message.WhichOneof("config") != "model_config_list":
        raise UserError(f"{path}: only model_config_list is supported (custom_model_config "
                        "needs TF Serving's C++ plugins): list the models there")
    models = []
    for item in message.model_config_list.config:
        if not item.name or not item.base_path:
            raise UserError(f"{path}: every config needs a name and a base_path")
        if item.model_platform not in ("", "tensorflow"):
            raise UserError(f"{path}: model {item.name!r} has model_platform "
                            f"{item.model_platform!r}: only 'tensorflow' is served")
        models.append(ModelConfig(item.name, item.base_path,
                                  _policy(item.model_version_policy),
                                  dict(item.version_labels)))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: model names must be unique, got {names}")
    return models


def _policy(message: Any) -> VersionPolicy:
    kind = message.WhichOneof("policy_choice") or "latest"
    if kind == "latest":
        return VersionPolicy("latest", max(1, message.latest.num_versions or 1))
    if kind == "specific":
        return VersionPolicy("specific", versions=tuple(int(v) for v in
                                                         message.specific.versions))
    return VersionPolicy("all")


def read_batching_parameters(path: str | None) -> BatchingOptions:
    """Parse a text-format ``BatchingParameters`` file (None: TF Serving's defaults)."""
    if path is None:
        return BatchingOptions()
    msg = _parse(path, _messages()["BatchingParameters"](), "--batching_parameters_file")

    def get(name: str, default: int) -> int:
        return int(getattr(msg, name).value) if msg.HasField(name) else default
    options = BatchingOptions(
        max_batch_size=get("max_batch_size", DEFAULT_MAX_BATCH_SIZE),
        batch_timeout_micros=get("batch_timeout_micros", 0),
        max_enqueued_batches=get("max_enqueued_batches", DEFAULT_MAX_ENQUEUED_BATCHES),
        num_batch_threads=get("num_batch_threads", 0),
        allowed_batch_sizes=tuple(int(v) for v in msg.allowed_batch_sizes))
    _check_batching(path, options)
    return options


def _check_batching(path: str, options: BatchingOptions) -> None:
    if options.max_batch_size < 1 or options.max_enqueued_batches < 1:
        raise UserError(f"{path}: max_batch_size and max_enqueued_batches must be >= 1")
    if options.batch_timeout_micros < 0 or options.num_batch_threads < 0:
        raise UserError(f"{path}: batch_timeout_micros and num_batch_threads must be >= 0")
    sizes = options.allowed_batch_sizes
    if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != options.max_batch_size
                  or sizes[0] < 1):
        raise UserError(f"{path}: allowed_batch_sizes must increase and end with "
                        f"max_batch_size ({options.max_batch_size}), got {list(sizes)}")


def read_monitoring_config(path: str | None) -> str | None:
    """The Prometheus path of a text-format ``MonitoringConfig`` (None: metrics off)."""
    if path is None:
        return None
    msg = _parse(path, _messages()["MonitoringConfig"](), "--monitoring_config_file")
    prometheus = msg.prometheus_config
    if not prometheus.enable:
        return None
    where = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not where.startswith("/"):
        raise UserError(f"{path}: prometheus_config.path must start with '/', got {where!r}")
    return where


def _parse(path: str, message: Any, flag: str) -> Any:
    from google.protobuf import text_format
    if not os.path.isfile(path):
        raise UserError(f"{flag}={path}: no such file: pass a text-format protobuf file")
    try:
        with open(path, encoding="utf-8") as handle:
            text_format.Parse(handle.read(), message)
    except (text_format.ParseError, UnicodeDecodeError) as exc:
        raise UserError(f"{flag}={path}: not a valid text-format "
                        f"{message.DESCRIPTOR.name} ({exc}): fix the file") from None
    return message


_classes: dict[str, Any] = {}


def _messages() -> dict[str, Any]:
    """``BatchingParameters`` and ``MonitoringConfig`` message classes (built once)."""
    if _classes:
        return _classes
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="neuroncli/serving/config.proto", package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"], syntax="proto3")
    F = descriptor_pb2.FieldDescriptorProto
    batching = proto.message_type.add(name="BatchingParameters")
    for number, (name, kind) in enumerate(
            [("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
             ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
             ("thread_pool_name", "StringValue")], start=1):
        batching.field.add(name=name, number=number, label=F.LABEL_OPTIONAL,
                           type=F.TYPE_MESSAGE, type_name=f".google.protobuf.{kind}")
    batching.field.add(name="allowed_batch_sizes", number=6, label=F.LABEL_REPEATED,
                       type=F.TYPE_INT64)
    batching.field.add(name="pad_variable_length_inputs", number=7, label=F.LABEL_OPTIONAL,
                       type=F.TYPE_BOOL)
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, label=F.LABEL_OPTIONAL,
                         type=F.TYPE_MESSAGE, type_name=".tensorflow.serving.PrometheusConfig")
    pool.Add(proto)
    for name in ("BatchingParameters", "MonitoringConfig"):
        descriptor = pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
        _classes[name] = message_factory.GetMessageClass(descriptor)
    return _classes
