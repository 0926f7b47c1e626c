"""extract_segment, fuse_segment and expand_neuron_ops: valid graphs, round trips, control edges."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
from test_partition_helpers import FLOAT, INT32, build, random_dag, spec_for

from neuroncli import proto
from neuroncli.format import neuron_op
from neuroncli.graph import Graph, GraphError, graph_from_graphdef
from neuroncli.partition import (
    default_policy, expand_neuron_ops, expansion_map, extract_segment, fuse_segment,
    partition, segment_digest_name,
)

POLICY = default_policy()


def fuse_all(graph: Graph, plan) -> dict[str, str]:
    """What the compile pipeline does: extract every segment first, then fuse in order."""
    extracted = [(s, extract_segment(graph, s)) for s in plan.segments]
    mapping: dict[str, str] = {}
    for segment, ex in extracted:
        spec = spec_for(ex)
        mapping.update(fuse_segment(graph, segment, spec, segment_digest_name(spec.graph_def)))
        graph.validate()
    return mapping


def strip_prefix(name: str) -> str:
    return re.sub(r"^neuron_op_[0-9a-f]{16}/", "", name)


def test_digest_name() -> None:
    name = segment_digest_name(b"abc")
    assert re.fullmatch(r"neuron_op_[0-9a-f]{16}", name)
    assert name == segment_digest_name(b"abc") != segment_digest_name(b"abd")


def test_extract_segment() -> None:
    # x -> a=Relu -> b=AddV2(a, y) -> u*       t* ..^..> a
    g = build("x=Placeholder()", "y=Placeholder()", "t=CpuOnly()", "a=Relu(x, ^t)",
              "b=AddV2(a, y)", "u=CpuOnly(b, a)", dtypes={"y": [INT32]})
    g["x"].output_shapes = [(2, None)]
    plan = partition(g, POLICY)
    ex = extract_segment(g, plan.segments[0])
    assert ex.input_refs == ("x:0", "y:0")
    assert ex.input_names == ("input0:0", "input1:0")
    assert ex.input_dtypes == (FLOAT, INT32)
    assert ex.input_shapes == ((2, None), (1, 4))
    assert ex.output_refs == ex.output_names == ("a:0", "b:0")
    assert ex.output_dtypes == (FLOAT, FLOAT)
    assert ex.control_inputs == ("t",)
    nodes = {n.name: n for n in ex.graph_def.node}
    assert [n.name for n in ex.graph_def.node] == ["input0", "input1", "a", "b"]
    assert nodes["input1"].op == "Placeholder" and nodes["input1"].attr["dtype"].type == INT32
    dims = [d.size for d in nodes["input0"].attr["shape"].shape.dim]
    assert dims == [2, -1]
    assert list(nodes["a"].input) == ["input0"]  # outside control input dropped
    assert list(nodes["b"].input) == ["a", "input1"]


def test_extract_avoids_placeholder_name_clashes() -> None:
    g = build("x=Placeholder()", "input0=Relu(x)", "b=Relu(input0)")
    ex = extract_segment(g, partition(g, POLICY).segments[0])
    assert ex.input_names == ("input0_1:0",)
    assert len({n.name for n in ex.graph_def.node}) == 3


def test_fuse_segment_rewires_and_validates() -> None:
    #  x -> a -> b -> u*(b, a)       c* ..^..> a,  w* waits on b
    g = build("x=Placeholder()", "c=CpuOnly()", "a=Relu(x, ^c)", "b=Relu(a)",
              "u=CpuOnly(b, a)", "w=CpuOnly(^b, ^c)")
    plan = partition(g, POLICY, graph_outputs=["b:0"])
    segment = plan.segments[0]
    spec = spec_for(extract_segment(g, segment))
    mapping = fuse_segment(g, segment, spec, "nop")
    g.validate()
    assert mapping == {"a:0": "nop:0", "b:0": "nop:1"}  # producers in topological order
    assert set(g.nodes) == {"x", "c", "nop", "u", "w"}
    nop = g["nop"]
    assert nop.op == neuron_op.NEURON_OP
    assert nop.inputs == ["x:0"] and nop.control_inputs == ["c"]
    assert nop.output_dtypes == [FLOAT, FLOAT]
    assert g["u"].inputs == [mapping["b:0"], mapping["a:0"]]
    assert g["w"].control_inputs == ["nop", "c"]
    assert neuron_op.from_attrs(nop.attrs).output_names == segment.outputs


def test_fuse_segment_errors() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "b=Relu(a)", "u=CpuOnly(b)")
    segment = partition(g, POLICY).segments[0]
    spec = spec_for(extract_segment(g, segment))
    with pytest.raises(GraphError, match="exists"):
        fuse_segment(g, segment, spec, "u")
    bad = replace(spec, input_names=())
    with pytest.raises(GraphError, match="inputs"):
        fuse_segment(g, segment, bad, "nop")
    partial = replace(segment, outputs=())  # u reads b:0, which this one does not export
    with pytest.raises(GraphError, match="not one of the segment's outputs"):
        fuse_segment(g, partial, replace(spec, output_names=()), "nop")
    assert g["u"].inputs == ["b:0"] and "nop" not in g  # untouched
    fuse_segment(g, segment, spec, "nop")
    with pytest.raises(GraphError, match="fused twice"):
        fuse_segment(g, segment, spec, "nop2")


def test_fuse_chained_segments_in_order() -> None:
    # x -> a -> b -> u* -> c -> d,  b -> d      segment 1 reads segment 0 through b:0
    g = build("x=Placeholder()", "a=Relu(x)", "b=Relu(a)", "u=CpuOnly(b)", "c=Relu(u)",
              "d=AddV2(c, b)")
    plan = partition(g, POLICY, graph_outputs=["d:0"])
    assert len(plan.segments) == 2
    mapping = fuse_all(g, plan)
    first, second = (n for n in g if n.op == neuron_op.NEURON_OP)
    assert second.inputs == ["u:0", f"{first.name}:0"]
    assert mapping["d:0"] == f"{second.name}:0"


def _data_edges(graph: Graph) -> set[tuple[str, str, str]]:
    return {(strip_prefix(n.name), n.op, ",".join(strip_prefix(r) for r in n.inputs))
            for n in graph}


def test_fuse_then_expand_round_trips() -> None:
    g = build("x=Placeholder()", "w=Const()", "m=MatMul(x, w)", "s=Split(m)",
              "r=Relu(s:1)", "u=CpuOnly(s:0, r)", "v=Tanh(u)", "o=AddV2(v, r)",
              dtypes={"s": [FLOAT, FLOAT]})
    original = _data_edges(g)
    plan = partition(g, POLICY, graph_outputs=["o:0"])
    fuse_all(g, plan)
    assert [n.op for n in g].count(neuron_op.NEURON_OP) == 2
    expanded = expand_neuron_ops(g)
    expanded.validate()
    assert _data_edges(expanded) == original
    assert not any(n.op == neuron_op.NEURON_OP for n in expanded)


@pytest.mark.parametrize("seed", range(4))
def test_fuse_then_expand_random_graphs(seed: int) -> None:
    rng = random.Random(seed)
    policy = default_policy(op_set={"Relu", "Const"})
    for _ in range(25):
        g = random_dag(rng, 30, p_supported=0.8)
        original = _data_edges(g)
        outputs = [f"{n.name}:0" for n in g if not g.consumers(n.name)]
        plan = partition(g, policy, graph_outputs=outputs)
        mapping = fuse_all(g, plan)
        expanded = expand_neuron_ops(g)
        expanded.validate()
        assert _data_edges(expanded) == original
        back = expansion_map(g)
        for ref in outputs:  # signature outputs stay addressable, fused and expanded
            fused_ref = mapping.get(ref, ref)
            assert fused_ref.rpartition(":")[0] in g.nodes
            assert strip_prefix(back.get(fused_ref, fused_ref)) == ref


def test_expand_keeps_control_dependencies() -> None:
    # t* ..^..> a ; x -> a -> b ; w* waits on b      after fuse+expand the waits survive
    g = build("x=Placeholder()", "t=CpuOnly()", "a=Relu(x, ^t)", "b=Relu(a)", "u=CpuOnly(b)",
              "w=CpuOnly(^b)")
    plan = partition(g, POLICY)
    fuse_all(g, plan)
    expanded = expand_neuron_ops(g)
    expanded.validate()
    names = {strip_prefix(n.name): n for n in expanded}
    assert names["a"].control_inputs == ["t"]
    assert [strip_prefix(c) for c in names["w"].control_inputs] == ["b"]


def test_expand_aws_style_placeholder_names() -> None:
    inner = proto.GraphDef()
    ph = inner.node.add(name="input0/_0", op="Placeholder")
    ph.attr["dtype"].type = FLOAT
    inner.node.add(name="r", op="Relu", input=["input0/_0"])
    spec = neuron_op.NeuronOpSpec(
        graph_def=inner.SerializeToString(), input_names=("input0/_0:0",),
        input_dtypes=(FLOAT,), input_shapes=((1,),), output_names=("r:0", "input0/_0:0"),
        output_dtypes=(FLOAT, FLOAT), output_shapes=((1,), (1,)), executable=b"",
        input_batch_axis=(-1,), output_batch_axis=(-1, -1), model_config=(1, 1, 64, 10))
    # n2 is a second copy fed by n's pass-through output: n2:1 -> n:1 -> x:0
    g = build("x=Placeholder()", "n=NeuronOp(x)", "y=Tanh(n)", "n2=NeuronOp(n:1)",
              "z=AddV2(n2:1, n2:0)")
    g["n"].attrs = g["n2"].attrs = neuron_op.to_attrs(spec)
    expanded = expand_neuron_ops(g)
    expanded.validate()
    assert expanded["n/r"].inputs == ["x:0"]
    assert expanded["y"].inputs == ["n/r:0"]
    assert expanded["n2/r"].inputs == ["x:0"]
    assert expanded["z"].inputs == ["x:0", "n2/r:0"]
    assert expansion_map(g) == {"n:0": "n/r:0", "n:1": "x:0", "n2:0": "n2/r:0", "n2:1": "x:0"}
    assert "n" in g.nodes  # the input graph is untouched


def test_extracted_graph_def_imports_back() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "b=Relu(a)")
    ex = extract_segment(g, partition(g, POLICY, graph_outputs=["b:0"]).segments[0])
    inner = graph_from_graphdef(proto.GraphDef.FromString(
        ex.graph_def.SerializeToString(deterministic=True)))
    inner.validate()
    assert [n.op for n in inner] == ["Placeholder", "Relu", "Relu"]
