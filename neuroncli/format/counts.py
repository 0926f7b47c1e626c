"""Operator counts and ``OnNeuronRatio``, computed exactly as AWS's tool does (protobuf only).

- on_neuron = sum over compiled NeuronOps of (nodes in its ``graph_def`` - its Placeholders)
- total     = nodes in the compiled graph + on_neuron - number of compiled NeuronOps
- ratio     = on_neuron / total, and 0.0 when total is 0

A NeuronOp counts as compiled when its ``executable`` is non-empty.  NeuronOps may also live
in the function library (AWS's TF2 models); :func:`count_meta_graph` walks both places.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from neuroncli import proto
from neuroncli.format.neuron_op import NEURON_OP
from neuroncli.format.weights import HANDLE_OP, is_saver_node, saver_node_count

LOW_RATIO = 0.3


@dataclass(frozen=True)
class OperatorCounts:
    """Counts of one compiled graph.

    graph_nodes: nodes in the compiled graph (NeuronOps included).
    neuron_ops: compiled NeuronOp nodes.
    on_neuron: original operations now inside compiled NeuronOps.
    total: the original graph's operations as the real tool estimates them.
    """

    graph_nodes: int
    neuron_ops: int
    on_neuron: int
    total: int

    @property
    def ratio(self) -> float:
        return self.on_neuron / self.total if self.total else 0.0

    @property
    def low(self) -> bool:
        return self.ratio <= LOW_RATIO


def segment_op_count(graph_def_bytes: bytes) -> int:
    """Nodes of a NeuronOp's ``graph_def`` attribute that are not Placeholders."""
    inner = proto.GraphDef.FromString(graph_def_bytes)
    return sum(1 for node in inner.node if node.op != "Placeholder")


def _is_compiled(node: Any) -> bool:
    return node.op == NEURON_OP and "executable" in node.attr and bool(node.attr["executable"].s)


def count_nodes(nodes: Iterable[Any]) -> OperatorCounts:
    """Counts over ``NodeDef``s (a GraphDef's ``node`` or a FunctionDef's ``node_def``)."""
    graph_nodes = neuron_ops = on_neuron = 0
    for node in nodes:
        if is_saver_node(node.name):  # restore ops for TensorFlow's loaders, not the model
            continue
        graph_nodes += 1
        if _is_compiled(node):
            neuron_ops += 1
            on_neuron += segment_op_count(node.attr["graph_def"].s)
    return OperatorCounts(graph_nodes, neuron_ops, on_neuron,
                          graph_nodes + on_neuron - neuron_ops)


def count_graph(graph_def: Any) -> OperatorCounts:
    return count_nodes(graph_def.node)


def count_meta_graph(meta_graph: Any) -> OperatorCounts:
    """Counts over the top-level graph and every library function that holds NeuronOps.

    Functions without NeuronOps are left out: in a TF2 model they are the original
    (uncompiled) copies of the graph and would count the same operations twice.
    """
    graph_def = meta_graph.graph_def
    parts = [count_graph(graph_def)]
    for function in graph_def.library.function:
        if any(node.op == NEURON_OP for node in function.node_def):
            parts.append(count_nodes(function.node_def))
    return OperatorCounts(*(sum(getattr(p, f) for p in parts)
                            for f in ("graph_nodes", "neuron_ops", "on_neuron", "total")))


def _inner_op_count(graph_def: Any) -> int:
    """Like :func:`segment_op_count`, on the raw bytes (a memoryview), without parsing."""
    from neuroncli.format import wire
    buf = memoryview(graph_def)
    count = 0
    for node in wire.fields(buf):
        if node.number == 1:
            op = wire.first(buf, node.value_start, node.end, 2)
            count += op is None or bytes(buf[op.value_start:op.end]) != b"Placeholder"
    return count


def count_view(meta: Any) -> OperatorCounts:
    """:func:`count_meta_graph` over a :class:`neuroncli.format.view.MetaGraphView`."""
    compiled = [op for op in meta.neuron_ops if len(op.heavy.get("executable", b""))]
    on_neuron = sum(_inner_op_count(op.heavy.get("graph_def", b"")) for op in compiled)
    saver = saver_node_count(meta.meta, meta.cpu_op_types.get(HANDLE_OP, 0))
    nodes = meta.graph_nodes - saver + sum(meta.library_nodes.values())
    return OperatorCounts(nodes, len(compiled), on_neuron, nodes + on_neuron - len(compiled))
