"""Constant-foldable nodes: values fixed at compile time, which join segments whatever their type.

AWS's partitioner claims these nodes as supported (``fuse_foldable_nodes``), so shape
arithmetic and weight preprocessing compile with the ops around them instead of cutting
segments apart:

- ``Shape`` and ``Size`` of a tensor whose shape is fully known, and ``Rank`` of a tensor
  whose rank is known (the compile-time input shapes make most shapes static);
- any node with at least one input whose inputs (data and control) all come from ``Const``
  nodes or from foldable nodes (``Reshape`` of a weight, ``StridedSlice`` of a ``Shape``,
  ``Pack`` of those, ``Cast`` of a constant, ...).

Nodes that never run on the device whatever feeds them (signature inputs, variables,
control flow, function calls, ``NoOp``: :func:`~neuroncli.partition.support.cpu_only_reason`)
are never foldable here: AWS would claim a control-flow op fed by constants too, but the
simulated backend lowers no such op inside a segment.  No TensorFlow here.

Requires: a graph annotated by shape inference (unknown shapes just fold less).
"""

from __future__ import annotations

from neuroncli.graph.ir import Graph
from neuroncli.partition.support import cpu_only_reason

# Shape queries whose value is fixed once the queried tensor's shape is.
SHAPE_QUERY_OPS = frozenset({"Shape", "Size", "Rank"})


def constant_foldable(graph: Graph) -> frozenset[str]:
    """Names of the constant-foldable nodes of ``graph`` (module doc); ``Const`` excluded."""
    foldable: set[str] = set()
    consts: set[str] = set()
    for node in graph.topological_order():
        if node.op == "Const":
            consts.add(node.name)
        elif cpu_only_reason(node.op) is not None:
            continue
        elif node.op in SHAPE_QUERY_OPS:
            if node.inputs and _static(graph, node.inputs[0], rank_only=node.op == "Rank"):
                foldable.add(node.name)
        else:
            producers = list(node.input_nodes())
            if producers and all(p in consts or p in foldable for p in producers):
                foldable.add(node.name)
    return frozenset(foldable)


def _static(graph: Graph, ref: str, *, rank_only: bool) -> bool:
    shape = graph.tensor_shape(ref)
    if shape is None:
        return False
    return rank_only or all(d is not None and d >= 0 for d in shape)
