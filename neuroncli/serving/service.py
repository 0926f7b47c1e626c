"""What a request does, whatever protocol carried it: find the model version and signature,
convert the inputs, run them (through the batch queue with ``--enable_batching``), count it.

The gRPC and REST front ends are thin translators around :class:`InferenceService`: they turn
their wire format into arrays and a :class:`~neuroncli.serving.status.ServingError` into
their own error form.  The service also gates shutdown: once :meth:`drain` starts, new
requests are refused with ``UNAVAILABLE`` and the ones already accepted run to the end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from neuroncli.runtime import TensorSpec
from neuroncli.serving.batching import BatchScheduler
from neuroncli.serving.metrics import Metrics
from neuroncli.serving.models import LoadedVersion, ModelManager, VersionStatus
from neuroncli.serving.status import (
    INVALID_ARGUMENT, OK, UNAVAILABLE, ServingError, from_exception,
)

Converter = Callable[[Mapping[str, TensorSpec]], dict[str, Any]]


@dataclass(frozen=True)
class ModelRef:
    """Which model a request names: ``version`` or ``label`` (or neither: the latest)."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


@dataclass(frozen=True)
class PredictResult:
    """A successful inference: where it ran and its outputs (with their signature specs)."""

    name: str
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]
    specs: Mapping[str, TensorSpec]


class InferenceService:
    """Predict, metadata and status over a :class:`ModelManager`."""

    def __init__(self, manager: ModelManager, batcher: BatchScheduler | None,
                 metrics: Metrics) -> None:
        self.manager = manager
        self.batcher = batcher
        self.metrics = metrics
        self._gate = threading.Condition()
        self._inflight = 0
        self._draining = False
        self.accepted = 0

    # -- requests -------------------------------------------------------------------------
    @contextlib.contextmanager
    def request(self, model_name: str, api: str, entrypoint: str) -> Iterator[None]:
        """Admit one request (or refuse it while draining) and record its outcome."""
        with self._gate:
            if self._draining:
                raise ServingError(UNAVAILABLE, "the server is shutting down: retry on "
                                   "another replica")
            self._inflight += 1
            self.accepted += 1
        started = time.perf_counter()
        status = OK
        try:
            yield
        except BaseException as exc:
            status = from_exception(exc).code
            raise
        finally:
            self.metrics.record(model_name, api, entrypoint, status,
                                time.perf_counter() - started)
            with self._gate:
                self._inflight -= 1
                self._gate.notify_all()

    def predict(self, ref: ModelRef, convert: Converter, output_filter: tuple[str, ...] = (),
                method: str | None = None) -> PredictResult:
        """Run the signature ``ref`` names on the inputs ``convert(specs)`` returns;
        ``method``: the ``method_name`` the signature must have (Classify, Regress)."""
        with self._version(ref) as loaded:
            model = loaded.model(ref.signature_name)
            if method is not None:
                from neuroncli.serving.classify import check_method
                check_method(loaded.signature_defs[model.signature.key], model.signature.key,
                             method)
            specs = model.signature.outputs
            unknown = [k for k in output_filter if k not in specs]
            if unknown:
                raise ServingError(INVALID_ARGUMENT, f"output tensor alias not found in "
                                   f"signature: {', '.join(unknown)} (outputs: "
                                   f"{', '.join(specs)})")
            feeds = convert(model.signature.inputs)
            try:
                outputs = (self.batcher.run(model, feeds) if self.batcher is not None
                           else model(feeds))
            except Exception as exc:  # noqa: BLE001 - every failure gets its status code
                raise from_exception(exc) from None
            if output_filter:
                outputs = {k: outputs[k] for k in output_filter}
            return PredictResult(ref.name, loaded.version, model.signature.key, outputs,
                                 specs)

    def metadata(self, ref: ModelRef) -> tuple[int, Any]:
        """``(version, signature_def map)`` of the version ``ref`` names."""
        with self._version(ref) as loaded:
            return loaded.version, loaded.signature_defs

    def status(self, ref: ModelRef) -> list[VersionStatus]:
        model = self.manager.get(ref.name)
        version = ref.version
        if ref.label:
            version = model.config.labels.get(ref.label, -1)
        return model.status(version)

    @contextlib.contextmanager
    def _version(self, ref: ModelRef) -> Iterator[LoadedVersion]:
        loaded = self.manager.get(ref.name).acquire(ref.version, ref.label)
        try:
            yield loaded
        finally:
            loaded.leave()

    # -- shutdown -------------------------------------------------------------------------
    def refuse_new(self) -> None:
        """From now on, requests are refused with ``UNAVAILABLE``."""
        with self._gate:
            self._draining = True

    def drain(self, timeout: float | None = None) -> bool:
        """Refuse new requests; wait for the accepted ones (True if they all finished)."""
        self.refuse_new()
        with self._gate:
            return self._gate.wait_for(lambda: self._inflight == 0, timeout)
