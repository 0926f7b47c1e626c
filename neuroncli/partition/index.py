"""An integer-indexed, read-only view of a :class:`~neuroncli.graph.Graph` for linear passes.

The partitioner walks every edge a few times; on million-node graphs, string lookups and
per-node objects in those loops dominate.  :func:`build_index` resolves every input once into
plain lists of ints (node ``i`` is the ``i``-th node in the graph's insertion order), so passes
never touch names until they report.  The topological order is the insertion order when that
already is one (usually so for GraphDefs TensorFlow writes), else Kahn's algorithm with ties
in insertion order, as :meth:`Graph.topological_order`.  Consumer lists are not stored: the
passes push values to producers instead, which saves a list per node.

Requires: a graph whose inputs name existing nodes.  Ensures: ``order`` lists every node once,
producers before consumers; otherwise :class:`~neuroncli.graph.GraphError`.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

from neuroncli.graph.ir import Graph, GraphError, Node


@dataclass(frozen=True, eq=False)
class GraphIndex:
    """Adjacency of a graph as lists indexed by insertion position.

    nodes/names: the graph's nodes and their names, in insertion order.
    position: name -> index.
    ids: ``list(range(n))``, the int objects every other list shares.
    order: node indices in topological order; rank[i] is node i's place in it (both are
        ``ids`` when insertion order is topological).
    inputs: per node, ``node.inputs`` itself (saves an attribute lookup in hot loops).
    data_src/data_port: per node, the producer index and port of each data input, parallel
        to ``inputs`` (all-zero port lists are shared tuples: read-only).
    preds: per node, producers of data then control inputs (repeats kept).
    """

    nodes: list[Node]
    names: list[str]
    position: dict[str, int]
    ids: list[int]
    order: list[int]
    rank: list[int]
    inputs: list[list[str]]
    data_src: list[list[int]]
    data_port: list[Sequence[int]]
    preds: list[list[int]]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Suspend the cyclic garbage collector around allocation-heavy linear passes.

    The passes allocate millions of small lists and create no reference cycles; left on, the
    collector rescans the whole (growing) heap every few thousand allocations, which made a
    100k-node partition about 18x slower than a 10k one instead of 10x.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _resolve(position: dict[str, int], node: Node, name: str) -> int:
    index = position.get(name)
    if index is None:
        raise GraphError(f"node {node.name!r} reads {name!r}, which does not exist")
    return index


_ZEROS = [(0,) * k for k in range(16)]  # shared port lists: most inputs read port 0


def build_index(graph: Graph) -> GraphIndex:
    """Index ``graph`` in O(V + E), touching each node object once."""
    nodes = list(graph.nodes.values())
    names = list(graph.nodes)
    ids = list(range(len(names)))
    position = dict(zip(names, ids))
    get = position.get
    inputs: list[list[str]] = []
    data_src: list[list[int]] = []
    data_port: list[Sequence[int]] = []
    preds: list[list[int]] = []
    in_order = True  # is insertion order topological?
    for i, node in enumerate(nodes):
        refs = node.inputs
        srcs: list[int] = []
        ports: list[int] | None = None  # allocated on the first port other than 0
        for k, ref in enumerate(refs):
            name, _, port = ref.rpartition(":")
            src = get(name)
            if src is None:
                src = _resolve(position, node, name)
            if src >= i:
                in_order = False
            srcs.append(src)
            if port != "0":
                if ports is None:
                    ports = [0] * len(refs)
                ports[k] = int(port)
        inputs.append(refs)
        data_src.append(srcs)
        if ports is not None:
            data_port.append(ports)
        else:
            data_port.append(_ZEROS[len(refs)] if len(refs) < len(_ZEROS) else (0,) * len(refs))
        if node.control_inputs:
            allp = list(srcs)
            for name in node.control_inputs:
                src = get(name)
                if src is None:
                    src = _resolve(position, node, name)
                if src >= i:
                    in_order = False
                allp.append(src)
            preds.append(allp)
        else:
            preds.append(srcs)  # shared, read-only
    order, rank = (ids, ids) if in_order else _kahn(preds, names, ids)
    return GraphIndex(nodes, names, position, ids, order, rank, inputs, data_src, data_port, preds)


def _kahn(preds: list[list[int]], names: list[str],
          ids: list[int]) -> tuple[list[int], list[int]]:
    """Topological order (ties in insertion order) and its inverse, or a cycle error."""
    succs: list[list[int]] = [[] for _ in preds]
    for i, producers in enumerate(preds):
        for p in producers:
            succs[p].append(i)
    indegree = [len(p) for p in preds]
    order = [i for i, d in enumerate(indegree) if d == 0]
    head = 0
    while head < len(order):  # ``order`` doubles as the FIFO queue
        for consumer in succs[order[head]]:
            indegree[consumer] -= 1
            if indegree[consumer] == 0:
                order.append(consumer)
        head += 1
    if len(order) != len(preds):
        stuck = sorted(names[i] for i, d in enumerate(indegree) if d > 0)[:5]
        raise GraphError(f"the graph has a cycle through {', '.join(stuck)}")
    rank = [0] * len(order)
    for r, i in enumerate(order):
        rank[i] = ids[r]
    return order, rank
