"""Timing helpers shared by the benchmarks: interleaved medians and threaded throughput.

``interleaved`` alternates the candidates call by call, so that machine drift (another
process, frequency scaling) hits all of them alike; ``throughput`` runs one caller per thread
for a fixed time and counts completed calls.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

import numpy as np


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int,
                warmup: int = 0) -> dict[str, float]:
    """Median seconds per call of each candidate, after ``warmup`` calls of each."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in times.items()}


def throughput(calls: Sequence[Callable[[], Any]], seconds: float) -> float:
    """Completed calls per second, ``calls[i]`` looping on thread i for ``seconds``."""
    done = [0] * len(calls)
    stop = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        while time.perf_counter() < stop:
            calls[slot]()
            done[slot] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done) / (time.perf_counter() - started)
