"""Propose segments: group supported nodes so that each group can become one ``NeuronOp``.

Requires: a valid, acyclic :class:`~neuroncli.graph.Graph` (dtypes from shape inference are
used when present).  Ensures: a :class:`~neuroncli.partition.plan.SegmentPlan` whose segments are
disjoint, each convex, and whose contraction leaves the graph acyclic -- for *any* subset of
the segments, so :func:`~neuroncli.partition.plan.filter_segments` and compile failures can
drop segments freely.  Runs in O((V + E) * rounds); rounds is almost always 1 or 2.

The algorithm, instead of TF-TRT's DFS per contraction (quadratic on large graphs):

1. **Decide.** Every node gets a :class:`~neuroncli.partition.support.Decision`; signature
   inputs and protected nodes are never candidates.
2. **Barrier levels.** Assign every node an integer ``bar`` such that on every edge
   ``p -> q`` (data or control): ``bar(q) >= bar(p) + (0 if p is a candidate else 1)``.
   A forward pass gives the smallest such levels; a backward pass then lifts a node towards
   its consumers where that lets it join one: a candidate rises to the lowest level of its
   consumers if a *candidate* consumer sits there (this pulls weights, ``Const`` nodes at
   level 0, into the segment of the ``MatMul`` at level 1 that reads them), else stays; a
   non-candidate rises as high as allowed (a sink above everything), leaving room for its
   producers.  CPU nodes that only *wait* on a candidate (a control edge, as tf.function's
   ``NoOp`` on every variable read) do not hold it back: the candidate rises anyway and a
   second forward pass pushes the waiting node and what follows it up.
3. **Union.** Union-find over every edge whose ends are both candidates at the same level.
   The components are the segments.
4. **Boundary dtypes.** A tensor of dtype string/int64/double/resource/variant (or a
   reference type) may not cross a segment boundary (segment outputs listed as graph outputs
   included).  Its non-forced candidate ends are removed, and the removal cascades along such
   tensors inside the old segment.  Then steps 2-4 repeat until nothing is removed.  This
   terminates: the candidate set only shrinks.  A tensor of unknown dtype (no shape
   inference) is treated as float, i.e. free to cross.

Why segments are convex and the contraction acyclic: ``bar`` never decreases along a path and
strictly increases after a non-candidate node.  Take a path from segment ``S`` (level ``B``)
that ends in ``S`` again, or a cycle of segments ``S1 -> S2 -> ... -> S1`` connected by real
paths.  Levels along it start and end at ``B``, so every node on it is at level ``B`` and no
node on it except possibly the last is a non-candidate; every edge on it therefore joins two
candidates of equal level and step 3 unioned it: the path never left ``S`` and all ``Si`` are
one segment.  The argument uses only levels computed once, so it holds for any subset of the
segments; removal in step 4 re-runs steps 2-3, so it holds for the final plan too.

Where this is not optimal: one level per node is a choice.  A node is unioned only with
neighbours at its own level, so it may refuse a merge that a DFS would prove safe: e.g. a
candidate whose consumers lie at two levels joins only the lower one, and two candidates
at different levels stay apart even when no path joins them through the blocking
non-candidate.  Shared constants are not duplicated into each segment that reads them.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from neuroncli.graph.ir import Graph, GraphError, split_tensor, tensor_ref
from neuroncli.partition.index import GraphIndex, build_index, paused_gc
from neuroncli.partition.plan import (
    SegmentPlan, Segment, check_minimum_segment_size, check_prune_ratio, drop_cheap_segments,
    filter_segments, keep_dominant_segment, sorted_cpu_nodes,
)
from neuroncli.partition.support import Decision, Rule
from neuroncli.proto.dtypes import REF_OFFSET, dtype_enum

SIGNATURE_INPUT = "signature input"
PROTECTED = "protected: kept on CPU by the caller"
# Dtypes that may not cross a segment boundary (docs/format.md, "Partitioning"; variant added).
BOUNDARY_DTYPES: dict[int, str] = {dtype_enum(f"DT_{kind.upper()}"): kind for kind in (
    "double", "string", "int64", "resource", "variant")}

# (producer, consumer or -1 for a graph output, tensor ref, dtype kind)
BadEdge = tuple[int, int, str, str]


def propose_segments(graph: Graph, policy: Rule, *, protected: Iterable[str] = (),
                     graph_outputs: Iterable[str] = ()) -> SegmentPlan:
    """Candidate segments (unfiltered) and the reason for every other node; see module doc.

    ``policy`` is a :class:`~neuroncli.partition.support.SupportPolicy` or any rule; a
    ``forced`` attribute (names) lets those nodes bypass the boundary dtype rule.
    ``graph_outputs`` are tensor refs (signature outputs); they become segment outputs.
    """
    with paused_gc():
        return _propose(graph, policy, frozenset(protected), graph_outputs)


def _propose(graph: Graph, policy: Rule, protected: frozenset[str],
             graph_outputs: Iterable[str]) -> SegmentPlan:
    index = build_index(graph)
    outputs = _graph_output_refs(index, graph_outputs)
    forced_names = frozenset(getattr(policy, "forced", ()))
    reasons, forced = _decide(index, policy, protected, forced_names)
    candidate = [r is None for r in reasons]
    bad_edges = _bad_edges(index, outputs)
    incident: dict[int, list[BadEdge]] = {}
    for edge in bad_edges:
        incident.setdefault(edge[0], []).append(edge)
        if edge[1] >= 0:
            incident.setdefault(edge[1], []).append(edge)
    while True:
        seg = _segments(index, candidate)
        removed = _boundary_removals(bad_edges, incident, seg, forced)
        if not removed:
            break
        for node, reason in removed.items():
            candidate[node] = False
            reasons[node] = reason
    return _plan(index, seg, reasons, outputs)


def partition(graph: Graph, policy: Rule, *, minimum_segment_size: int = 1,
              graph_outputs: Iterable[str] = (), protected: Iterable[str] = (),
              prune_small_subgraphs_ratio: float = 0.0,
              expensive_op_types: frozenset[str] = frozenset()) -> SegmentPlan:
    """Propose, filter, drop segments without an expensive op when another has one (a
    non-empty ``expensive_op_types``), then (ratio > 0) keep only a dominant segment: the
    plan that is compiled (:mod:`neuroncli.partition.plan`)."""
    check_minimum_segment_size(minimum_segment_size)  # before any work
    check_prune_ratio(prune_small_subgraphs_ratio)
    with paused_gc():
        plan = _propose(graph, policy, frozenset(protected), graph_outputs)
        plan = filter_segments(plan, minimum_segment_size)
        plan = drop_cheap_segments(plan, expensive_op_types)
        return keep_dominant_segment(plan, prune_small_subgraphs_ratio)


def _graph_output_refs(index: GraphIndex, refs: Iterable[str]) -> dict[str, int]:
    """Normalised ref -> producer index, in the order given."""
    out: dict[str, int] = {}
    for ref in refs:
        name, port = split_tensor(ref)
        producer = index.position.get(name)
        if producer is None:
            raise GraphError(f"graph output {ref!r} names a node that does not exist")
        out[tensor_ref(name, port)] = producer
    return out


def _decide(index: GraphIndex, policy: Rule, protected: frozenset[str],
            forced_names: frozenset[str]) -> tuple[list[str | None], list[bool]]:
    """Step 1: per node, ``None`` (candidate) or the reason it stays on CPU."""
    reasons: list[str | None] = []
    decide = policy.decide
    for node in index.nodes:
        if node.op == "Placeholder":
            reasons.append(SIGNATURE_INPUT)
        elif protected and node.name in protected:
            reasons.append(PROTECTED)
        else:
            decision: Decision = decide(node)
            reasons.append(None if decision.ok else
                           decision.reason or "refused by the support policy")
    forced = [False] * len(reasons)
    for name in forced_names:
        i = index.position.get(name)
        if i is not None and reasons[i] is None:
            forced[i] = True
    return reasons, forced


def _dtype_kind(dtype: int | None) -> str | None:
    if dtype is None:
        return None  # unknown: treated as float
    if dtype > REF_OFFSET:
        return "reference"
    return BOUNDARY_DTYPES.get(dtype)


def _bad_edges(index: GraphIndex, outputs: dict[str, int]) -> list[BadEdge]:
    """Every data edge (and graph output) carrying a tensor that may not cross a boundary."""
    bad_ports: dict[int, dict[int, str]] = {}
    plain = frozenset(range(REF_OFFSET)) - frozenset(BOUNDARY_DTYPES)
    for p, node in enumerate(index.nodes):
        dtypes = node.output_dtypes
        if dtypes and not plain.issuperset(dtypes):  # fast path: nothing to look at
            kinds = {port: kind for port, dtype in enumerate(dtypes)
                     if (kind := _dtype_kind(dtype)) is not None}
            if kinds:
                bad_ports[p] = kinds
    edges: list[BadEdge] = []
    if bad_ports:
        for q in range(len(index.nodes)):
            for k, p in enumerate(index.data_src[q]):
                kinds = bad_ports.get(p)
                if kinds is not None and index.data_port[q][k] in kinds:
                    edges.append((p, q, index.inputs[q][k], kinds[index.data_port[q][k]]))
    for ref, p in outputs.items():
        port = split_tensor(ref)[1]
        if port in bad_ports.get(p, {}):
            edges.append((p, -1, ref, bad_ports[p][port]))
    return edges


def _levels(index: GraphIndex, candidate: list[bool]) -> list[int]:
    """Step 2: barrier levels: forward lower bounds, backward lift, forward repair."""
    step = [0 if c else 1 for c in candidate]
    bar = [0] * len(candidate)
    _push_down(index, bar, step)
    if _lift(index, candidate, step, bar):
        _push_down(index, bar, step)
    return bar


def _push_down(index: GraphIndex, bar: list[int], step: list[int]) -> None:
    """Raise levels just enough that ``bar[q] >= bar[p] + step[p]`` on every edge."""
    preds = index.preds
    for q in index.order:
        level = bar[q]
        for p in preds[q]:
            v = bar[p] + step[p]
            if v > level:
                level = v
        bar[q] = level


def _lift(index: GraphIndex, candidate: list[bool], step: list[int], bar: list[int]) -> bool:
    """Backward: move nodes up towards their consumers (module doc, step 2).

    Consumers push to producers, so no consumer lists are needed.  Returns whether a
    candidate rose above a CPU node that only waits on it, so levels must be pushed down again.
    """
    unset = len(bar) + 1  # above any level
    hard = [unset] * len(bar)  # lowest level among all consumers
    low = [unset] * len(bar)   # ... not counting CPU nodes that only wait (control edge)
    join = [False] * len(bar)  # whether a candidate consumer sits at ``low``
    violated = False
    preds, data_src = index.preds, index.data_src
    for q in reversed(index.order):
        if step[q]:  # as high as allowed (a sink: above everything): room for its producers
            bar[q] = hard[q] - 1 if hard[q] != unset else unset
        elif join[q]:
            bar[q] = low[q]  # join that consumer (a no-op when already there)
            violated = violated or low[q] > hard[q]
        level, c = bar[q], candidate[q]
        srcs, producers = data_src[q], preds[q]
        for p in srcs:
            if level < hard[p]:
                hard[p] = level
            if level < low[p]:
                low[p] = level
                join[p] = c
            elif c and level == low[p]:
                join[p] = True
        if producers is not srcs:  # control inputs follow the data inputs
            for p in producers[len(srcs):]:
                if level < hard[p]:
                    hard[p] = level
                if c and level <= low[p]:
                    low[p] = level
                    join[p] = True
    return violated


def _segments(index: GraphIndex, candidate: list[bool]) -> list[int]:
    """Steps 2-3: union-find root per candidate node, -1 for the others."""
    bar = _levels(index, candidate)
    parent = index.ids[:]  # shares the int objects: no allocation per node
    preds = index.preds
    for q in index.order:
        if not candidate[q]:
            continue
        level = bar[q]
        for p in preds[q]:
            if candidate[p] and bar[p] == level:
                a, b = p, q
                while parent[a] != a:
                    parent[a] = a = parent[parent[a]]
                while parent[b] != b:
                    parent[b] = b = parent[parent[b]]
                if a != b:
                    parent[b] = a
    seg = [-1] * len(candidate)
    for i, c in enumerate(candidate):
        if c:
            r = i
            while parent[r] != r:
                parent[r] = r = parent[parent[r]]
            seg[i] = r
    return seg


def _boundary_removals(bad_edges: list[BadEdge], incident: dict[int, list[BadEdge]],
                       seg: list[int], forced: list[bool]) -> dict[int, str]:
    """Step 4: candidates to remove (node -> reason), cascading inside the old segment."""
    removed: dict[int, str] = {}
    stack: list[int] = []

    def remove(node: int, ref: str, kind: str) -> None:
        if node >= 0 and seg[node] >= 0 and not forced[node] and node not in removed:
            removed[node] = f"{kind} tensor {ref} would cross the segment boundary"
            stack.append(node)

    for p, q, ref, kind in bad_edges:
        sp, sq = seg[p], (seg[q] if q >= 0 else -1)
        if sp != sq:
            remove(p, ref, kind)
            remove(q, ref, kind)
    while stack:
        node = stack.pop()
        for p, q, ref, kind in incident.get(node, ()):
            other = q if p == node else p
            if other >= 0 and seg[other] == seg[node]:
                remove(other, ref, kind)
    return removed


def _plan(index: GraphIndex, seg: list[int], reasons: list[str | None],
          outputs: dict[str, int]) -> SegmentPlan:
    """Turn roots into numbered :class:`Segment` objects plus the CPU reasons."""
    groups: list[list[int]] = []
    sid = [-1] * len(seg)
    number = [-1] * len(seg)  # root -> segment number
    for i in index.order:  # number segments by their first node's topological position
        root = seg[i]
        if root >= 0:
            s = number[root]
            if s < 0:
                s = number[root] = len(groups)
                groups.append([])
            groups[s].append(i)
            sid[i] = s
    ins: list[dict[str, None]] = [{} for _ in groups]
    outs: list[dict[str, tuple[int, int]]] = [{} for _ in groups]
    rank, inputs, data_src, data_port = index.rank, index.inputs, index.data_src, index.data_port
    for q in index.order:
        sq = sid[q]
        for p, ref, port in zip(data_src[q], inputs[q], data_port[q]):
            sp = sid[p]
            if sp != sq:
                if sq >= 0:
                    ins[sq].setdefault(ref)
                if sp >= 0:
                    outs[sp][ref] = (rank[p], port)
    for ref, p in outputs.items():
        if sid[p] >= 0:
            outs[sid[p]][ref] = (rank[p], split_tensor(ref)[1])
    return SegmentPlan(_segment_objects(index, groups, ins, outs), _cpu_nodes(index, reasons),
                len(seg))


def _segment_objects(index: GraphIndex, groups: list[list[int]], ins: list[dict[str, None]],
                     outs: list[dict[str, tuple[int, int]]]) -> tuple[Segment, ...]:
    ops = [node.op for node in index.nodes]
    names = index.names
    segments = []
    for s, members in enumerate(groups):
        hist = Counter(map(ops.__getitem__, members))
        segments.append(Segment(
            index=s, nodes=tuple(map(names.__getitem__, members)), inputs=tuple(ins[s]),
            outputs=tuple(sorted(outs[s], key=outs[s].__getitem__)),
            op_histogram=dict(sorted(hist.items(), key=_by_count))))
    return tuple(segments)


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _cpu_nodes(index: GraphIndex, reasons: list[str | None]) -> dict[str, tuple[str, ...]]:
    cpu: dict[str, list[str]] = {}
    for name, reason in zip(index.names, reasons):
        if reason is not None:
            cpu.setdefault(reason, []).append(name)
    return sorted_cpu_nodes(cpu)
