"""Timed runs of a loaded model: latency percentiles, throughput and per-core activity.

``measure(model, inputs, repeat, threads)`` makes ``threads`` caller threads each run
``repeat`` inferences on the same inputs, and returns a :class:`Measurement`.  It is what
``neuron-run`` prints and what the runtime benchmark uses; the first error raised by any
thread is re-raised once every thread has stopped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from neuroncli.errors import UserError


@dataclass(frozen=True)
class CoreActivity:
    """One visible core during the run.

    index / physical: visible and instance index.  calls: program executions of the model
    on it.  busy_percent: share of the wall time it spent executing.  bytes_loaded /
    capacity_bytes: device memory in use (all models) and in total.  failed: marked failed.
    """

    index: int
    physical: int
    calls: int
    busy_percent: float
    bytes_loaded: int
    capacity_bytes: int
    failed: bool


@dataclass(frozen=True)
class Measurement:
    """The result of :func:`measure`.

    outputs: the first call's outputs.  latencies_ms: every call, in completion order.
    wall_seconds: from the first call to the last.  cores: one row per visible core.
    """

    outputs: Mapping[str, np.ndarray]
    latencies_ms: tuple[float, ...]
    wall_seconds: float
    cores: tuple[CoreActivity, ...]

    @property
    def calls(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.calls / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    @property
    def core_calls(self) -> dict[int, int]:
        return {core.index: core.calls for core in self.cores}

    def latency_summary(self) -> dict[str, float]:
        values = self.latencies_ms or (0.0,)
        return {"p50": self.percentile(50), "p90": self.percentile(90),
                "p99": self.percentile(99), "mean": float(np.mean(values)),
                "min": float(min(values)), "max": float(max(values))}


def measure(model: Any, inputs: Mapping[str, Any], repeat: int = 1,
            threads: int = 1) -> Measurement:
    """Run ``repeat`` calls in each of ``threads`` threads; see module doc."""
    if repeat < 1 or threads < 1:
        raise UserError(f"repeat and threads must be at least 1 (got {repeat}, {threads})")
    before = model.stats()
    latencies: list[float] = []
    first: dict[str, dict] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(repeat):
            if errors:
                return
            started = time.perf_counter()
            try:
                out = model(inputs)
            except BaseException as exc:  # handed to the caller's thread below
                with lock:
                    errors.append(exc)
                return
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                first.setdefault("outputs", out)

    started = time.perf_counter()
    if threads == 1:
        worker()
    else:
        pool = [threading.Thread(target=worker, name=f"neuroncli-caller-{i}")
                for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Measurement(first.get("outputs", {}), tuple(latencies), wall,
                       _activity(model, before, wall))


def _activity(model: Any, before: Any, wall: float) -> tuple[CoreActivity, ...]:
    after = model.stats()
    rows = []
    for core in model.runtime.core_stats():
        calls = after.core_calls.get(core.index, 0) - before.core_calls.get(core.index, 0)
        busy = (after.core_busy_seconds.get(core.index, 0.0)
                - before.core_busy_seconds.get(core.index, 0.0))
        rows.append(CoreActivity(core.index, core.physical, calls,
                                 100.0 * busy / wall if wall > 0 else 0.0,
                                 core.bytes_loaded, core.capacity_bytes, core.failed))
    return tuple(rows)
