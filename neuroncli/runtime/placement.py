"""Where a model's copies go: the real runtime's placement rules, checked up front.

In order of precedence:

1. ``start_nc`` / ``nc_count`` (``load()`` arguments, else this project's NeuronOp attributes
   ``_neuroncli_start_nc`` / ``_neuroncli_nc_count``, written by ``neuron-place``):
   ``start_nc`` -1 (or None) means the least-used visible cores; ``nc_count`` -1 (or None)
   means one copy, N means N cores (N / pipeline-cores copies), 0 every visible core from
   ``start_nc`` on.  An explicit count is the user's choice: like ``_automatic_multicore``
   it is not capped by ``max_num_duplicates``.
2. ``_automatic_multicore = N``: N copies on cores 0..N-1 (N below 1 or above the visible
   cores is an error, found here rather than at the first inference as AWS's tool does).
3. Default: a model with one NeuronOp gets ``min(4, visible cores, max_num_duplicates)``
   copies ("up to 4 cores"); a model with several NeuronOps gets one copy.

A program compiled with pipeline cores P > 1 spans P consecutive cores and cannot be
replicated (the real runtime silently ignores a replica count then; we refuse it).  The result
is a :class:`ReplicaLayout`: one tuple of visible core indices per copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from neuroncli.errors import UserError
from neuroncli.format.placement import (
    ALL_VISIBLE, DEFAULT_MAX_COPIES, check_nc_count, check_start_nc,
)
from neuroncli.runtime.program import Program



@dataclass(frozen=True)
class ReplicaLayout:
    """The cores of a loaded model.

    replicas: one core group per copy; a group lists P consecutive visible core indices.
    rule: which rule chose it, for reports (e.g. ``"default: 1 NeuronOp, up to 4 copies"``).
    """

    replicas: tuple[tuple[int, ...], ...]
    rule: str

    @property
    def cores(self) -> tuple[int, ...]:
        return tuple(sorted({core for group in self.replicas for core in group}))


def _consistent(programs: Sequence[Program], attr: str) -> int | None:
    values = {getattr(p, attr) for p in programs if getattr(p, attr) is not None}
    if len(values) > 1:
        raise UserError(f"the model's NeuronOps disagree on {attr} ({sorted(values)}): "
                        "tag all of them with the same value")
    return values.pop() if values else None


def pipeline_width(programs: Sequence[Program]) -> int:
    return max((p.pipeline_cores for p in programs), default=1)


def least_used_start(usage: Sequence[int], width: int) -> int:
    """Start of the ``width`` consecutive cores with the least device memory in use."""
    best, best_used = 0, None
    for start in range(len(usage) - width + 1):
        used = sum(usage[start:start + width])
        if best_used is None or used < best_used:
            best, best_used = start, used
    return best


def _groups(start: int, copies: int, width: int, visible: int, why: str) -> tuple:
    end = start + copies * width
    if start < 0 or end > visible:
        raise UserError(f"{why} needs visible cores {start}-{end - 1} but this process sees "
                        f"{visible} (0-{visible - 1}): lower the count or the start, or make "
                        "more cores visible (NEURON_RT_VISIBLE_CORES / --instance-type)")
    return tuple(tuple(range(start + i * width, start + (i + 1) * width))
                 for i in range(copies))


def place(programs: Sequence[Program], usage: Sequence[int], *, start_nc: int | None = None,
          nc_count: int | None = None) -> ReplicaLayout:
    """Choose the replicas of a model given the device memory in use per visible core."""
    if not programs:
        return ReplicaLayout((), "no NeuronOps: the model runs on the CPU")
    visible = len(usage)
    width = pipeline_width(programs)
    if width > visible:
        raise UserError(f"the model is compiled for {width} pipeline cores but this process "
                        f"sees {visible} core(s): make more cores visible or recompile with "
                        "a smaller --neuroncore-pipeline-cores")
    if start_nc is None:
        start_nc = _consistent(programs, "start_nc")
    if nc_count is None:
        nc_count = _consistent(programs, "nc_count")
    if start_nc is not None or nc_count is not None:
        return _explicit(usage, width, start_nc, nc_count)
    auto = _consistent(programs, "auto_multicore")
    if auto is not None:
        return _auto_multicore(auto, width, visible)
    return _default(programs, usage, width)


def _explicit(usage: Sequence[int], width: int, start_nc: int | None,
              nc_count: int | None) -> ReplicaLayout:
    visible = len(usage)
    if start_nc is not None:
        check_start_nc(start_nc)
    if nc_count is not None:
        check_nc_count(nc_count, all_visible=True)
    if nc_count == ALL_VISIBLE:
        start = max(0, start_nc or 0)
        count = (visible - start) // width * width
    else:
        count = width if nc_count in (None, -1) else int(nc_count)
        start = -1 if start_nc is None else int(start_nc)
    if count < width or count % width:
        raise UserError(f"nc_count {nc_count} does not fit the model's {width} pipeline "
                        "cores: each copy spans all of them, so use a multiple of that")
    copies = count // width
    if copies > 1 and width > 1:
        raise UserError(f"nc_count {count}: the model is compiled for {width} pipeline cores "
                        "and cannot be replicated: use one copy, or recompile without "
                        "--neuroncore-pipeline-cores to replicate it")
    if start == -1:
        start = least_used_start(usage, count) if count <= visible else 0
    why = f"start_nc {-1 if start_nc is None else start_nc}, nc_count {count}"
    return ReplicaLayout(_groups(start, copies, width, visible, why), why)


def _auto_multicore(count: int, width: int, visible: int) -> ReplicaLayout:
    if count < 1:
        raise UserError(f"Num of cores for auto multicore replication, {count}, is below 1: "
                        "re-tag the model with a count of at least 1")
    if count > 1 and width > 1:
        raise UserError(f"_automatic_multicore {count}: the model is compiled for {width} "
                        "pipeline cores and cannot be replicated: re-tag it with 1 or "
                        "recompile without --neuroncore-pipeline-cores")
    if count > visible:
        raise UserError(f"_automatic_multicore {count} exceeds the {visible} visible "
                        "NeuronCore(s): re-tag the model with at most that many, or make more "
                        "cores visible (NEURON_RT_VISIBLE_CORES / --instance-type)")
    why = f"_automatic_multicore {count}"
    return ReplicaLayout(_groups(0, count, width, visible, why), why)


def _default(programs: Sequence[Program], usage: Sequence[int], width: int) -> ReplicaLayout:
    visible = len(usage)
    if len(programs) == 1 and width == 1:
        cap = programs[0].max_duplicates or visible
        copies = max(1, min(DEFAULT_MAX_COPIES, visible, cap))
        rule = f"default: 1 NeuronOp, {copies} cop{'y' if copies == 1 else 'ies'}"
    else:
        copies = 1
        rule = (f"default: {len(programs)} NeuronOps, one copy" if len(programs) != 1
                else f"default: pipeline of {width} cores, one copy")
    start = least_used_start(usage, copies * width)
    return ReplicaLayout(_groups(start, copies, width, visible, rule), rule)
