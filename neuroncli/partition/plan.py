"""The partition plan: which nodes form which segment, and why every other node stays on CPU.

A :class:`SegmentPlan` is plain data: it can be printed (``str(plan)``), dumped (:meth:`SegmentPlan.to_json`)
and tested without touching a graph.  :func:`~neuroncli.partition.propose.propose_segments`
makes one; :func:`filter_segments` sends segments that are too small (or have nothing to
compute) back to CPU, recording the reason for each of their nodes.

Determinism: segments are numbered by the topological position of their first node, their
node lists are in topological order, inputs in order of first use and outputs in topological
order of their producers; ``cpu_nodes`` is sorted by reason and its names by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Sequence

from neuroncli.errors import UsageError

# Ops that do not count towards ``minimum_segment_size``: pure forwarding (TF-TRT also skips
# them when it counts "effective" nodes; docs/format.md, "Partitioning", names Identity).
UNCOUNTED_OPS = frozenset({"Identity", "IdentityN"})
# A segment made only of these computes nothing: compiling it would just move constants.
_NOTHING_TO_COMPUTE = frozenset({"Const"}) | UNCOUNTED_OPS
NOTHING_TO_COMPUTE_REASON = "segment holds only Const/Identity nodes: nothing to compute"


@dataclass(frozen=True)
class Segment:
    """One group of nodes to become a single ``NeuronOp``.

    index: position in the plan (0-based, by topological position of the first node).
    nodes: node names, in topological order.
    inputs: tensor refs (``node:port``) produced outside and read inside, by first use.
    outputs: refs produced inside and read outside or listed as graph outputs.
    op_histogram: op type -> count, most frequent first (ties by op name).
    """

    index: int
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    op_histogram: dict[str, int]

    @property
    def size(self) -> int:
        """Node count as ``minimum_segment_size`` sees it (Identity/IdentityN not counted)."""
        return sum(n for op, n in self.op_histogram.items() if op not in UNCOUNTED_OPS)

    def to_dict(self) -> dict:
        return {"index": self.index, "nodes": list(self.nodes), "inputs": list(self.inputs),
                "outputs": list(self.outputs), "op_histogram": dict(self.op_histogram),
                "size": self.size}


@dataclass(frozen=True)
class SegmentPlan:
    """Segments plus every other node under the reason it stays on CPU.

    segments: the segments, indexed 0..n-1.
    cpu_nodes: reason -> node names (sorted); together with the segments' nodes this covers
        every node of the graph exactly once.
    node_count: number of nodes in the partitioned graph.
    """

    segments: tuple[Segment, ...]
    cpu_nodes: dict[str, tuple[str, ...]]
    node_count: int

    @property
    def nodes_in_segments(self) -> int:
        return sum(len(s.nodes) for s in self.segments)

    def segment_of(self) -> dict[str, int]:
        """Node name -> segment index, for nodes in segments."""
        return {name: s.index for s in self.segments for name in s.nodes}

    def to_json(self) -> str:
        doc = {"node_count": self.node_count,
               "nodes_in_segments": self.nodes_in_segments,
               "segments": [s.to_dict() for s in self.segments],
               "cpu_nodes": {r: list(n) for r, n in self.cpu_nodes.items()}}
        return json.dumps(doc, indent=2, sort_keys=True)

    def __str__(self) -> str:
        total = self.node_count
        inside = self.nodes_in_segments
        pct = 100.0 * inside / total if total else 0.0
        lines = [f"Plan: {len(self.segments)} segment(s) hold {inside} of {total} nodes "
                 f"({pct:.1f}%)"]
        for s in self.segments:
            hist = ", ".join(f"{op}×{n}" for op, n in list(s.op_histogram.items())[:6])
            if len(s.op_histogram) > 6:
                hist += ", …"
            lines.append(f"  segment {s.index}: {len(s.nodes)} nodes ({s.size} counted), "
                         f"inputs [{_short(s.inputs)}], outputs [{_short(s.outputs)}]; {hist}")
        if self.cpu_nodes:
            lines.append("Nodes on CPU, by reason:")
            for reason, names in self.cpu_nodes.items():
                lines.append(f"  {reason} ({len(names)}): {_short(names, 8)}")
        return "\n".join(lines)


def _short(items: Sequence[str], keep: int = 4) -> str:
    shown = ", ".join(items[:keep])
    return shown + (f", … (+{len(items) - keep})" if len(items) > keep else "")


def sorted_cpu_nodes(cpu: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """Canonical form of a reason -> names map: reasons sorted, names sorted."""
    return {reason: tuple(sorted(cpu[reason])) for reason in sorted(cpu) if cpu[reason]}


def check_minimum_segment_size(minimum_segment_size: int) -> None:
    """Reject a bad value before any work starts."""
    if isinstance(minimum_segment_size, bool) or not isinstance(minimum_segment_size, int) \
            or minimum_segment_size < 1:
        raise UsageError(f"minimum_segment_size must be an integer of at least 1, "
                         f"got {minimum_segment_size!r}")


def filter_segments(plan_or_candidates: SegmentPlan | Sequence[Segment],
                    minimum_segment_size: int) -> SegmentPlan:
    """Send small or computation-free segments back to CPU; renumber the rest.

    Dropping whole segments cannot create a cycle or a new boundary crossing (see
    :mod:`neuroncli.partition.propose`), so no re-proposal is needed.
    """
    check_minimum_segment_size(minimum_segment_size)
    if isinstance(plan_or_candidates, SegmentPlan):
        plan = plan_or_candidates
    else:
        segments = tuple(plan_or_candidates)
        plan = SegmentPlan(segments, {}, sum(len(s.nodes) for s in segments))
    cpu: dict[str, list[str]] = {r: list(n) for r, n in plan.cpu_nodes.items()}
    kept: list[Segment] = []
    for segment in plan.segments:
        if all(op in _NOTHING_TO_COMPUTE for op in segment.op_histogram):
            cpu.setdefault(NOTHING_TO_COMPUTE_REASON, []).extend(segment.nodes)
        elif segment.size < minimum_segment_size:
            reason = (f"segment of {segment.size} ops is below minimum_segment_size "
                      f"{minimum_segment_size}")
            cpu.setdefault(reason, []).extend(segment.nodes)
        elif segment.index == len(kept):
            kept.append(segment)  # already numbered right; replace() is slow on 100k segments
        else:
            kept.append(replace(segment, index=len(kept)))
    return SegmentPlan(tuple(kept), sorted_cpu_nodes(cpu), plan.node_count)


def check_prune_ratio(ratio: float) -> None:
    """Reject a bad ``prune_small_subgraphs_ratio`` before any work starts."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise UsageError(f"prune_small_subgraphs_ratio must be a number from 0 to 1, "
                         f"got {ratio!r}")


def keep_dominant_segment(plan: SegmentPlan, ratio: float) -> SegmentPlan:
    """AWS's ``prune_small_subgraphs_ratio``: when more than one segment remains and the
    largest holds more than ``ratio`` of the segmented nodes (every node counted, as AWS
    does), only the largest stays (the first one on a tie); the others go back to CPU.
    ``ratio`` 0 disables the rule (AWS's default outside ``trace``)."""
    check_prune_ratio(ratio)
    if ratio <= 0.0 or len(plan.segments) < 2:
        return plan
    total = plan.nodes_in_segments
    largest = max(plan.segments, key=lambda s: len(s.nodes))  # first of equals, like max_element
    share = len(largest.nodes) / total
    if share <= ratio:
        return plan
    reason = (f"a smaller segment: the largest holds {100 * share:.1f}% of the segmented "
              f"nodes (more than {100 * ratio:g}%), so only it is kept")
    cpu: dict[str, list[str]] = {r: list(n) for r, n in plan.cpu_nodes.items()}
    for segment in plan.segments:
        if segment is not largest:
            cpu.setdefault(reason, []).extend(segment.nodes)
    return SegmentPlan((replace(largest, index=0),), sorted_cpu_nodes(cpu), plan.node_count)


def drop_cheap_segments(plan: SegmentPlan, expensive_op_types: frozenset[str]) -> SegmentPlan:
    """AWS's automatic-mode pruning: when more than one segment remains and at least one
    holds an op of ``expensive_op_types`` (MatMul, Conv2D, ...), the segments holding none
    go back to CPU.  An empty set disables it."""
    if not expensive_op_types or len(plan.segments) < 2:
        return plan
    has = [any(op in expensive_op_types for op in s.op_histogram) for s in plan.segments]
    if not any(has) or all(has):
        return plan
    reason = ("a segment without an arithmetic-intensive op (MatMul, Conv2D, ...) while "
              "another segment has one")
    cpu: dict[str, list[str]] = {r: list(n) for r, n in plan.cpu_nodes.items()}
    kept: list[Segment] = []
    for segment, expensive in zip(plan.segments, has):
        if expensive:
            kept.append(replace(segment, index=len(kept)))
        else:
            cpu.setdefault(reason, []).extend(segment.nodes)
    return SegmentPlan(tuple(kept), sorted_cpu_nodes(cpu), plan.node_count)
