"""Prometheus metrics (``--monitoring_config_file``): TF Serving's request metrics plus the
simulated NeuronCores' own.

Request metrics keep TF Serving's names and labels (``:tensorflow:serving:request_count``
by model and status, ``:tensorflow:serving:request_latency`` in microseconds by model, API
and entry point), so existing dashboards and alerts work.  Per-core metrics come from the
runtime's :meth:`~neuroncli.runtime.NeuronRuntime.core_stats`: program executions, busy
seconds and device memory of every visible core, labelled with its visible index and its
physical index on the instance (what proves two servers on disjoint
``NEURON_RT_VISIBLE_CORES`` never touch each other's cores).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Any

# TF Serving's request latency buckets: 10 us growing by 1.8x, 33 of them.
LATENCY_BUCKETS_US = tuple(10 * 1.8 ** i for i in range(33))


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_US))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(LATENCY_BUCKETS_US, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1


class Metrics:
    """Thread-safe request counters; :meth:`render` adds the core statistics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._latency: dict[tuple[str, str, str], _Histogram] = {}

    def record(self, model: str, api: str, entrypoint: str, status: str,
               seconds: float) -> None:
        with self._lock:
            key = (model, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._latency.setdefault((model, api, entrypoint), _Histogram())
            hist.observe(seconds * 1e6)

    def requests(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._requests)

    def render(self, runtime: Any, batcher: Any = None) -> str:
        lines: list[str] = []
        with self._lock:
            _family(lines, ":tensorflow:serving:request_count", "counter",
                    "The total number of requests.")
            for (model, status), count in sorted(self._requests.items()):
                lines.append(f':tensorflow:serving:request_count{{model_name="{model}",'
                             f'status="{status}"}} {count}')
            _family(lines, ":tensorflow:serving:request_latency", "histogram",
                    "Distribution of wall time (in microseconds) for Tensorflow Serving "
                    "request.")
            for (model, api, entry), hist in sorted(self._latency.items()):
                _histogram(lines, f'model_name="{model}",API="{api}",entrypoint="{entry}"',
                           hist)
        _cores(lines, runtime)
        if batcher is not None:
            _family(lines, ":neuron:serving:batches", "counter",
                    "Batches run by --enable_batching (one model call each).")
            lines.append(f":neuron:serving:batches {batcher.batches_run}")
            _family(lines, ":neuron:serving:batch_queue_rows", "gauge",
                    "Rows waiting in --enable_batching queues.")
            lines.append(f":neuron:serving:batch_queue_rows {batcher.queued_rows()}")
        return "\n".join(lines) + "\n"


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _histogram(lines: list[str], labels: str, hist: _Histogram) -> None:
    name = ":tensorflow:serving:request_latency"
    running = 0
    for bound, count in zip(LATENCY_BUCKETS_US, hist.counts):
        running += count
        lines.append(f'{name}_bucket{{{labels},le="{bound:.6g}"}} {running}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {hist.count}')
    lines.append(f"{name}_sum{{{labels}}} {hist.total:.6f}")
    lines.append(f"{name}_count{{{labels}}} {hist.count}")


def _cores(lines: list[str], runtime: Any) -> None:
    stats = runtime.core_stats()
    series = (
        (":neuron:core:calls", "counter", "Program executions on the NeuronCore.",
         lambda c: str(c.calls)),
        (":neuron:core:busy_seconds", "counter", "Seconds the NeuronCore spent executing.",
         lambda c: f"{c.busy_seconds:.6f}"),
        (":neuron:core:device_bytes", "gauge", "Device memory held by loaded programs.",
         lambda c: str(c.bytes_loaded)),
        (":neuron:core:capacity_bytes", "gauge", "Device memory of the NeuronCore.",
         lambda c: str(c.capacity_bytes)),
    )
    for name, kind, help_text, value in series:
        _family(lines, name, kind, help_text)
        for core in stats:
            lines.append(f'{name}{{core="{core.index}",physical="{core.physical}",'
                         f'instance_type="{runtime.instance.name}"}} {value(core)}')
