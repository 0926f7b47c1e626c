"""Send program executions to a model's copies: round robin, deadlines, failed cores.

Each program of a model has a :class:`Dispatcher` over the model's replicas (core groups).  An
execution takes the next healthy replica in turn (under a lock, so concurrent callers spread
evenly), waits for all its cores with a deadline, runs, and records the time on every core of
the group.  The deadline (``NEURON_FRAMEWORK_INFER_TIMEOUT_SEC``, default 10 s) covers the wait
for the cores and the run itself.

A replica whose core was marked failed is skipped; an execution that was running when its
core failed is void and runs again on the next healthy replica, so no call is lost.  With no
healthy replica left the call fails with :class:`CoreUnavailable`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

from neuroncli.errors import UserError
from neuroncli.runtime.cores import CorePool

T = TypeVar("T")
Group = tuple[int, ...]


class InferenceTimeout(UserError):
    """An execution did not get its cores, or did not finish, within the timeout."""


class CoreUnavailable(UserError):
    """Every copy of a program is on a failed core."""


def _cores(group: Sequence[int]) -> str:
    return ("NeuronCore " if len(group) == 1 else "NeuronCores ") + ",".join(map(str, group))


@dataclass(frozen=True)
class Usage:
    """Executions and busy seconds of one model on one core."""

    calls: int = 0
    busy_seconds: float = 0.0


class UsageCounter:
    """Per-core usage of one model (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage: dict[int, Usage] = {}

    def add(self, group: Sequence[int], seconds: float) -> None:
        with self._lock:
            for core in group:
                old = self._usage.get(core, Usage())
                self._usage[core] = Usage(old.calls + 1, old.busy_seconds + seconds)

    def snapshot(self) -> dict[int, Usage]:
        with self._lock:
            return dict(sorted(self._usage.items()))


class Dispatcher:
    """Round-robin executions of one program over the replicas of its model."""

    def __init__(self, name: str, pool: CorePool, replicas: Sequence[Group],
                 usage: UsageCounter, timeout: Callable[[], float]) -> None:
        self.name = name
        self._pool = pool
        self._usage = usage
        self._timeout = timeout
        self._lock = threading.Lock()
        self._replicas: tuple[Group, ...] = tuple(replicas)
        self._next = 0

    @property
    def replicas(self) -> tuple[Group, ...]:
        return self._replicas

    def set_replicas(self, replicas: Sequence[Group]) -> None:
        with self._lock:
            self._replicas = tuple(replicas)
            self._next = 0

    def choose(self, skip: set[Group] | None = None) -> Group:
        """The next healthy replica in turn, not in ``skip``."""
        with self._lock:
            count = len(self._replicas)
            for step in range(count):
                group = self._replicas[(self._next + step) % count]
                if (skip and group in skip) or not self._pool.healthy(group):
                    continue
                self._next = (self._next + step + 1) % count
                return group
            replicas = self._replicas
        failed = sorted({c for g in replicas for c in g if self._pool.cores[c].failed})
        raise CoreUnavailable(
            f"no healthy NeuronCore left for NeuronOp {self.name}: its copies are on "
            f"{', '.join(_cores(g) for g in replicas) or 'no core'} and "
            f"{_cores(failed) if failed else 'none'} failed: restore the cores "
            "(neuroncli.runtime.restore_core) or move the model to healthy cores "
            "(set_neuron_cores)")

    def execute(self, work: Callable[[int, float], T], group: Group | None = None) -> T:
        """Run ``work(pool_index, deadline)`` on a replica; ``group`` is the preferred one."""
        timeout = self._timeout()
        deadline = time.monotonic() + timeout
        skip: set[Group] = set()
        while True:
            if group is None or group in skip or not self._pool.healthy(group):
                group = self.choose(skip)
            if not self._pool.acquire(group, deadline):
                raise InferenceTimeout(
                    f"inference timed out after {timeout:g} s waiting for {_cores(group)} "
                    f"(NeuronOp {self.name}); every core runs one inference at a time: use "
                    "more copies, fewer caller threads, or raise "
                    "NEURON_FRAMEWORK_INFER_TIMEOUT_SEC")
            try:
                result = self._run_on(group, work, deadline, timeout)
            finally:
                self._pool.release_group(group)
            if result is not _VOID:
                return result  # type: ignore[return-value]
            skip.add(group)
            group = None

    def _run_on(self, group: Group, work: Callable[[int, float], T], deadline: float,
                timeout: float) -> T | object:
        from neuroncli.runtime.host import DeadlineExceeded
        if not self._pool.healthy(group):
            return _VOID
        marks = self._pool.failure_marks(group)
        started = time.perf_counter()
        try:
            result = work(group[0], deadline)
        except DeadlineExceeded:
            if self._pool.failure_marks(group) != marks:
                return _VOID
            raise InferenceTimeout(
                f"inference timed out: NeuronOp {self.name} did not finish on "
                f"{_cores(group)} within {timeout:g} s: raise "
                "NEURON_FRAMEWORK_INFER_TIMEOUT_SEC for slow models") from None
        seconds = time.perf_counter() - started
        if self._pool.failure_marks(group) != marks:
            return _VOID  # the core failed while running: the result is void
        for index in group:
            self._pool.cores[index].record(seconds)
        self._usage.add(group, seconds)
        return result


_VOID = object()
