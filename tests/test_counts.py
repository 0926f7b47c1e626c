"""OnNeuronRatio and the operator counts, checked against hand-computed values."""

from __future__ import annotations

import pytest

from neuroncli import proto
from neuroncli.format import counts, neuron_op, view, weights


def _segment(n_ops: int, n_placeholders: int) -> bytes:
    inner = proto.GraphDef()
    for i in range(n_placeholders):
        inner.node.add(name=f"input{i}", op="Placeholder")
    for i in range(n_ops):
        inner.node.add(name=f"op{i}", op="Relu")
    return inner.SerializeToString()


def _neuron_node(graph_def: object, name: str, inner: bytes, compiled: bool = True) -> None:
    node = graph_def.node.add(name=name, op=neuron_op.NEURON_OP)
    node.attr["graph_def"].s = inner
    node.attr["executable"].s = b"program" if compiled else b""


def test_empty_graph_has_ratio_zero_not_a_division_error() -> None:
    c = counts.count_graph(proto.GraphDef())
    assert (c.graph_nodes, c.neuron_ops, c.on_neuron, c.total, c.ratio) == (0, 0, 0, 0, 0.0)


def test_no_supported_op() -> None:
    # x -> StringSplit -> Identity : nothing compiled
    g = proto.GraphDef()
    for name, op in (("x", "Placeholder"), ("split", "StringSplit"), ("out", "Identity")):
        g.node.add(name=name, op=op)
    c = counts.count_graph(g)
    assert (c.on_neuron, c.total, c.ratio) == (0, 3, 0.0)
    assert c.low


def test_every_op_supported() -> None:
    # x -> NeuronOp(5 ops, 1 placeholder): on_neuron 5, total 2 + 5 - 1 = 6
    g = proto.GraphDef()
    g.node.add(name="x", op="Placeholder")
    _neuron_node(g, "neuron_op_a", _segment(5, 1))
    c = counts.count_graph(g)
    assert (c.graph_nodes, c.neuron_ops, c.on_neuron, c.total) == (2, 1, 5, 6)
    assert c.ratio == pytest.approx(5 / 6)


def test_mixed_graph_and_uncompiled_neuron_op() -> None:
    # x, y -> NeuronOp A (7 ops, 2 ph) -> cast(CPU) -> NeuronOp B (3 ops, 1 ph) ; C uncompiled
    g = proto.GraphDef()
    g.node.add(name="x", op="Placeholder")
    g.node.add(name="y", op="Placeholder")
    _neuron_node(g, "a", _segment(7, 2))
    g.node.add(name="cast", op="AsString")
    _neuron_node(g, "b", _segment(3, 1))
    _neuron_node(g, "c", _segment(4, 1), compiled=False)
    c = counts.count_graph(g)
    # nodes 6; on_neuron 7 + 3 = 10; compiled NeuronOps 2; total 6 + 10 - 2 = 14
    assert (c.graph_nodes, c.neuron_ops, c.on_neuron, c.total) == (6, 2, 10, 14)
    assert c.ratio == pytest.approx(10 / 14)
    assert not c.low


def test_ratio_at_threshold_warns() -> None:
    # 3 on neuron of 10 total -> 0.3 is "low" (at or below)
    g = proto.GraphDef()
    for i in range(7):
        g.node.add(name=f"cpu{i}", op="StringSplit")
    _neuron_node(g, "n", _segment(3, 1))  # 8 nodes + 3 - 1 = 10
    c = counts.count_graph(g)
    assert (c.on_neuron, c.total) == (3, 10)
    assert c.low


def _library_meta_graph() -> object:
    """AWS's TF2 layout: the NeuronOp inside a library function, beside an uncompiled copy."""
    mg = proto.MetaGraphDef()
    mg.graph_def.node.add(name="x", op="Placeholder")
    mg.graph_def.node.add(name="call", op="StatefulPartitionedCall")
    fn = mg.graph_def.library.function.add()
    fn.signature.name = "inference"
    fn.node_def.add(name="pre", op="Cast")
    node = fn.node_def.add(name="neuron_op_f", op=neuron_op.NEURON_OP)
    node.attr["graph_def"].s = _segment(4, 1)
    node.attr["executable"].s = b"p"
    plain = mg.graph_def.library.function.add()  # an uncompiled copy is not counted
    plain.signature.name = "original"
    plain.node_def.add(name="relu", op="Relu")
    return mg


def test_meta_graph_counts_neuron_ops_in_library_functions() -> None:
    c = counts.count_meta_graph(_library_meta_graph())
    # graph: 2 nodes; function: 2 nodes, 1 NeuronOp with 4 ops
    assert (c.graph_nodes, c.neuron_ops, c.on_neuron, c.total) == (4, 1, 4, 7)


def _view_cases() -> dict:
    """Meta graphs covering every term of the formula, for the view/proto agreement below."""
    plain = proto.MetaGraphDef()
    plain.graph_def.node.add(name="x", op="Placeholder")
    _neuron_node(plain.graph_def, "neuron_op_a", _segment(5, 2))
    _neuron_node(plain.graph_def, "neuron_op_b", _segment(3, 1))
    _neuron_node(plain.graph_def, "neuron_op_c", _segment(7, 1), compiled=False)
    plain.graph_def.node.add(name="y", op="Identity")
    unnamed_op = proto.GraphDef()  # a node without an op field still counts (not a Placeholder)
    unnamed_op.node.add(name="input0", op="Placeholder")
    unnamed_op.node.add(name="no_op_type")
    # ... read inside its own NodeDef: the GraphDef field after it (here a ``library`` whose
    # bytes happen to spell "Placeholder", valid wire format) is not its op type
    library_field = bytes([2 << 3 | 2, len(b"Placeholder")]) + b"Placeholder"
    _neuron_node(plain.graph_def, "neuron_op_d", unnamed_op.SerializeToString() + library_field)
    no_graph = plain.graph_def.node.add(name="neuron_op_e", op=neuron_op.NEURON_OP)
    no_graph.attr["executable"].s = b"program"  # compiled, without a graph_def: no ops inside

    library = _library_meta_graph()

    saver = proto.MetaGraphDef()
    for name in ("w0", "w1"):
        saver.graph_def.node.add(name=name, op=weights.HANDLE_OP)
    _neuron_node(saver.graph_def, "neuron_op_s", _segment(6, 2))
    weights.add_saver(saver)
    saver.graph_def.node.add(name="after_the_saver", op="Identity")  # counting goes on past it
    # a neuroncli saver whose variables were all stripped out: its five fixed nodes remain
    handleless = proto.MetaGraphDef()
    handleless.CopyFrom(saver)
    kept = [n for n in handleless.graph_def.node
            if n.op not in (weights.HANDLE_OP, "AssignVariableOp")]
    del handleless.graph_def.node[:]
    handleless.graph_def.node.extend(kept)
    return {"plain": (plain, (7, 4, 9, 12)), "library": (library, (4, 1, 4, 7)),
            "saver": (saver, (4, 1, 6, 9)), "handleless": (handleless, (2, 1, 6, 7))}


@pytest.mark.parametrize("case", ["plain", "library", "saver", "handleless"])
def test_view_counts_equal_the_proto_counts(case: str, tmp_path) -> None:
    """``neuron-inspect``'s byte-level counts agree with the compile report's, term by term."""
    meta_graph, expected = _view_cases()[case]
    saved = proto.SavedModel()
    saved.meta_graphs.add().CopyFrom(meta_graph)
    (tmp_path / "saved_model.pb").write_bytes(saved.SerializeToString())
    from_proto = counts.count_meta_graph(meta_graph)
    opened = view.open_view(str(tmp_path))
    try:
        from_view = counts.count_view(opened.meta_graphs[0])
    finally:
        opened.close()
    got = (from_view.graph_nodes, from_view.neuron_ops, from_view.on_neuron, from_view.total)
    assert got == expected
    assert from_view == from_proto
