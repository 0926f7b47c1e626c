"""Simulated NeuronCores: exclusive execution, device memory, health and statistics.

A :class:`NeuronCore` runs one inference at a time (a lock a caller holds while its program
executes), accounts the device memory of the programs loaded on it, counts executions and busy
seconds, and can be marked failed for tests and drills.  A :class:`CorePool` is the set of
visible cores: it reserves device memory atomically (all cores of a placement or none) and
acquires core groups (pipeline programs span several cores) with a deadline, always in index
order so that two groups can never deadlock each other.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from neuroncli.errors import UserError
from neuroncli.runtime.instance import InstanceSpec, format_bytes


@dataclass(frozen=True)
class CoreStats:
    """A snapshot of one core.

    index: position in the visible set (what ``start_nc`` and the CLI call the core).
    physical: the core's index on the instance.
    calls: program executions completed on it.
    busy_seconds: time spent executing programs.
    bytes_loaded: device memory taken by loaded programs.
    capacity_bytes: device memory of the core.
    programs: program copies loaded on it.
    failed: marked failed (receives no work).
    """

    index: int
    physical: int
    calls: int
    busy_seconds: float
    bytes_loaded: int
    capacity_bytes: int
    programs: int
    failed: bool

    @property
    def bytes_free(self) -> int:
        return self.capacity_bytes - self.bytes_loaded


@dataclass(frozen=True)
class Reservation:
    """What one loaded model holds on the visible cores.

    device_bytes: visible core -> device memory (a pipeline program's share on each core).
    copies: visible core -> program copies loaded there.
    """

    device_bytes: Mapping[int, int] = field(default_factory=dict)
    copies: Mapping[int, int] = field(default_factory=dict)


NOTHING = Reservation()


class NeuronCore:
    """One simulated core.  ``lock`` is held by the inference running on it."""

    def __init__(self, index: int, physical: int, capacity_bytes: int) -> None:
        self.index = index
        self.physical = physical
        self.capacity_bytes = capacity_bytes
        self.lock = threading.Lock()
        self._mutex = threading.Lock()  # guards the counters below
        self.bytes_loaded = 0
        self.programs = 0
        self.calls = 0
        self.busy_seconds = 0.0
        self.failed = False
        self.failures = 0  # bumped by each failure: a run that saw it change is void

    def add_load(self, device_bytes: int, copies: int) -> None:
        """Account programs loaded (positive) or unloaded (negative) on this core."""
        with self._mutex:
            self.bytes_loaded += device_bytes
            self.programs += copies

    def record(self, seconds: float) -> None:
        with self._mutex:
            self.calls += 1
            self.busy_seconds += seconds

    def stats(self) -> CoreStats:
        with self._mutex:
            return CoreStats(self.index, self.physical, self.calls, self.busy_seconds,
                             self.bytes_loaded, self.capacity_bytes, self.programs,
                             self.failed)

    def __repr__(self) -> str:
        state = "failed" if self.failed else "ok"
        return f"NeuronCore({self.index}, physical={self.physical}, {state})"


class CorePool:
    """The visible cores of one simulated instance."""

    def __init__(self, spec: InstanceSpec, physical: Sequence[int],
                 capacity_bytes: int | None = None) -> None:
        self.spec = spec
        capacity = spec.core_memory_bytes if capacity_bytes is None else int(capacity_bytes)
        if capacity <= 0:
            raise UserError(f"device memory per core must be positive, got {capacity}")
        self.cores = tuple(NeuronCore(i, p, capacity) for i, p in enumerate(physical))
        self._mutex = threading.Lock()

    def __len__(self) -> int:
        return len(self.cores)

    def __getitem__(self, index: int) -> NeuronCore:
        return self.cores[self.check_index(index)]

    def check_index(self, index: int) -> int:
        if not 0 <= int(index) < len(self.cores):
            raise UserError(f"NeuronCore {index} is not visible: this process sees "
                            f"{len(self.cores)} core(s), indices 0-{len(self.cores) - 1} "
                            "(indices are relative to NEURON_RT_VISIBLE_CORES)")
        return int(index)

    # -- device memory --------------------------------------------------------------------
    def usage(self, exclude: Reservation = NOTHING) -> list[int]:
        """Bytes loaded per core, minus ``exclude`` (a model's own reservation)."""
        with self._mutex:
            used = [core.bytes_loaded for core in self.cores]
        for index, count in exclude.device_bytes.items():
            used[index] -= count
        return used

    def reserve(self, owner: str, wanted: Reservation,
                release: Reservation = NOTHING) -> None:
        """Take ``wanted`` on every core, or nothing (raises :class:`UserError`).

        ``release`` is given back in the same step: a model moving between cores counts its
        own reservation as free, and keeps it if the move does not fit.
        """
        with self._mutex:
            for index in sorted(wanted.device_bytes):
                core = self.cores[index]
                need = wanted.device_bytes[index]
                free = (core.capacity_bytes - core.bytes_loaded
                        + release.device_bytes.get(index, 0))
                if need > free:
                    raise UserError(
                        f"NeuronCore {index} (physical {core.physical}) of "
                        f"{self.spec.name} is out of device memory: {owner} needs "
                        f"{format_bytes(need)} ({need} bytes) but only "
                        f"{format_bytes(max(free, 0))} ({max(free, 0)} bytes) of "
                        f"{format_bytes(core.capacity_bytes)} are free: unload a model or "
                        "place this one on other cores (start_nc / nc_count)")
            self._apply(release, sign=-1)
            self._apply(wanted, sign=1)

    def release(self, held: Reservation) -> None:
        with self._mutex:
            self._apply(held, sign=-1)

    def _apply(self, reservation: Reservation, sign: int) -> None:
        for index in sorted({*reservation.device_bytes, *reservation.copies}):
            self.cores[index].add_load(sign * reservation.device_bytes.get(index, 0),
                                       sign * reservation.copies.get(index, 0))

    # -- execution ------------------------------------------------------------------------
    def acquire(self, group: Sequence[int], deadline: float) -> bool:
        """Lock every core of ``group`` (ascending) before ``deadline``; False on timeout."""
        taken: list[NeuronCore] = []
        for index in sorted(group):
            core = self.cores[index]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not core.lock.acquire(timeout=remaining):
                for held in reversed(taken):
                    held.lock.release()
                return False
            taken.append(core)
        return True

    def release_group(self, group: Iterable[int]) -> None:
        for index in sorted(group, reverse=True):
            self.cores[index].lock.release()

    def healthy(self, group: Iterable[int]) -> bool:
        return not any(self.cores[i].failed for i in group)

    def failure_marks(self, group: Iterable[int]) -> tuple[int, ...]:
        return tuple(self.cores[i].failures for i in group)

    # -- faults ---------------------------------------------------------------------------
    def fail(self, index: int) -> None:
        """Mark a core failed: it receives no new work and a run on it now is void."""
        core = self[index]
        with core._mutex:
            core.failed = True
            core.failures += 1

    def restore(self, index: int) -> None:
        core = self[index]
        with core._mutex:
            core.failed = False

    def stats(self) -> list[CoreStats]:
        return [core.stats() for core in self.cores]
