"""Helpers shared by the partition tests (graph builder, convexity checker); no tests here."""

from __future__ import annotations

import random

from neuroncli.format.neuron_op import NeuronOpSpec
from neuroncli.graph import Graph, Node
from neuroncli.partition import SegmentPlan, SegmentGraph

FLOAT, DOUBLE, INT32, STRING, INT64, RESOURCE = 1, 2, 3, 7, 9, 20


def build(*specs: str, dtypes: dict[str, list[int | None] | None] | None = None) -> Graph:
    """``build("x=Placeholder()", "a=Relu(x)", "b=AddV2(a, x:1, ^c)")``.

    Inputs without a port read port 0; ``^name`` is a control input.  Every node outputs one
    float tensor unless ``dtypes`` says otherwise (``None`` = not annotated).
    """
    dtypes = dtypes or {}
    nodes = []
    for spec in specs:
        name, _, rest = spec.partition("=")
        op, _, args = rest.partition("(")
        data, control = [], []
        for arg in (a.strip() for a in args.rstrip(")").split(",")):
            if arg.startswith("^"):
                control.append(arg[1:])
            elif arg:
                data.append(arg if ":" in arg else f"{arg}:0")
        out = dtypes.get(name.strip(), [FLOAT])
        nodes.append(Node(name.strip(), op.strip(), data, control, output_dtypes=out,
                          output_shapes=None if out is None else [(1, 4)] * len(out)))
    return Graph(nodes)


def segment_sets(plan: SegmentPlan) -> list[set[str]]:
    return [set(s.nodes) for s in plan.segments]


def reason_of(plan: SegmentPlan, name: str) -> str:
    return next(r for r, names in plan.cpu_nodes.items() if name in names)


def random_dag(rng: random.Random, n: int = 30, *, p_supported: float = 0.7,
               p_control: float = 0.1, p_bad_dtype: float = 0.0) -> Graph:
    """A random DAG in insertion (= topological) order with a mix of supported ops."""
    nodes = [Node("n0", "Placeholder", output_dtypes=[FLOAT])]
    for i in range(1, n):
        k = rng.randint(0, min(3, i))
        srcs = rng.sample(range(i), k)
        control = [f"n{j}" for j in range(i) if j not in srcs and rng.random() < p_control / 3]
        op = ("Relu" if k else "Const") if rng.random() < p_supported else "CpuOnly"
        dtype = INT64 if rng.random() < p_bad_dtype else FLOAT
        nodes.append(Node(f"n{i}", op, [f"n{j}:0" for j in srcs], control,
                          output_dtypes=[dtype]))
    return Graph(nodes)


def group_of(graph: Graph, segments: list[set[str]]) -> dict[str, str]:
    """Node -> contracted node: ``seg<i>`` for segment members, the node's name otherwise."""
    groups = {n.name: n.name for n in graph}
    for i, seg in enumerate(segments):
        for name in seg:
            groups[name] = f"seg{i}"
    return groups


def contracted_is_acyclic(graph: Graph, segments: list[set[str]]) -> bool:
    """Brute force: contract each segment to one node and look for a cycle (Kahn)."""
    groups = group_of(graph, segments)
    edges: dict[str, set[str]] = {g: set() for g in groups.values()}
    for node in graph:
        for src in node.input_nodes():
            if groups[src] != groups[node.name]:
                edges[groups[src]].add(groups[node.name])
    indegree = {g: 0 for g in edges}
    for targets in edges.values():
        for t in targets:
            indegree[t] += 1
    ready = [g for g, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        g = ready.pop()
        seen += 1
        for t in edges[g]:
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return seen == len(edges)


def is_convex(graph: Graph, segment: set[str]) -> bool:
    """No path leaves ``segment`` and comes back (brute-force forward search)."""
    frontier = [c for name in segment for c, _ in graph.consumers(name) if c not in segment]
    seen: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name in segment:
            return False
        if name in seen:
            continue
        seen.add(name)
        frontier.extend(c for c, _ in graph.consumers(name))
    return True


def spec_for(extracted: SegmentGraph, executable: bytes = b"") -> NeuronOpSpec:
    """A NeuronOpSpec for an extracted segment, as the compile pipeline builds it."""
    return NeuronOpSpec(
        graph_def=extracted.graph_def.SerializeToString(deterministic=True),
        input_names=extracted.input_names, input_dtypes=extracted.input_dtypes,
        input_shapes=extracted.input_shapes, output_names=extracted.output_names,
        output_dtypes=extracted.output_dtypes, output_shapes=extracted.output_shapes,
        executable=executable, input_batch_axis=tuple(-1 for _ in extracted.input_names),
        output_batch_axis=tuple(-1 for _ in extracted.output_names),
        model_config=(1, 1, 64, 10))
