"""propose_segments on small hand-drawn graphs: shapes, boundary dtypes, names, control edges.

``*`` marks an unsupported node in the drawings (op ``CpuOnly``).
"""

from __future__ import annotations

import pytest
from test_partition_helpers import (
    DOUBLE, FLOAT, INT64, RESOURCE, STRING, build, contracted_is_acyclic, reason_of,
    segment_sets,
)

from neuroncli.graph import GraphError
from neuroncli.partition import (
    PROTECTED, SIGNATURE_INPUT, OpTypeRule, default_policy, propose_segments,
)

POLICY = default_policy()


def propose(graph, policy=POLICY, **kwargs):
    return propose_segments(graph, policy, **kwargs)


def test_diamond_through_unsupported_node_is_split() -> None:
    #     x
    #     |
    #     a
    #    / \
    #  b*   c        {a, c, d} would be a cycle through b
    #    \ /
    #     d
    g = build("x=Placeholder()", "a=Relu(x)", "b=CpuOnly(a)", "c=Relu(a)", "d=AddV2(b, c)")
    plan = propose(g)
    assert segment_sets(plan) == [{"a"}, {"c", "d"}]
    assert contracted_is_acyclic(g, segment_sets(plan))
    assert reason_of(plan, "b") == "op type CpuOnly is not in AWS's supported operator list"
    assert reason_of(plan, "x") == SIGNATURE_INPUT


def test_ladder_rung_through_unsupported_node() -> None:
    # x -> a1 -> a2 -> a3
    #       |          ^
    #       u* -> b1 --+      a1 cannot join a3's segment (path a1 -> u -> b1 -> a3)
    g = build("x=Placeholder()", "a1=Relu(x)", "a2=Relu(a1)", "u=CpuOnly(a1)", "b1=Relu(u)",
              "a3=AddV2(a2, b1)")
    plan = propose(g)
    assert segment_sets(plan) == [{"a1"}, {"a2", "b1", "a3"}]
    assert contracted_is_acyclic(g, segment_sets(plan))


def test_two_chains_without_paths_through_the_blocker_stay_whole() -> None:
    # x -> a -> b -> u* -> c -> d
    g = build("x=Placeholder()", "a=Relu(x)", "b=Relu(a)", "u=CpuOnly(b)", "c=Relu(u)",
              "d=Relu(c)")
    assert segment_sets(propose(g)) == [{"a", "b"}, {"c", "d"}]


def test_weights_join_the_segment_that_reads_them() -> None:
    # w (Const) and bias (Const) sit at level 0, MatMul at level 1 behind the placeholder.
    # x ---> m=MatMul(x, w) ---> y=BiasAdd(m, bias)
    g = build("x=Placeholder()", "w=Const()", "bias=Const()", "m=MatMul(x, w)",
              "y=BiasAdd(m, bias)")
    plan = propose(g, graph_outputs=["y:0"])
    assert segment_sets(plan) == [{"w", "bias", "m", "y"}]
    assert plan.segments[0].inputs == ("x:0",)
    assert plan.segments[0].outputs == ("y:0",)


def test_weights_join_despite_tf_function_control_noops() -> None:
    # tf.function makes a NoOp wait on every variable read, and the output Identity wait on
    # the NoOp.  Weights and output Identity cannot share a segment (w -> nop -> out); the
    # weights win, the trailing Identity goes to a later level.
    #   w=Const -> rv=Identity -> m=MatMul(x, rv) -> out=Identity(m, ^nop)
    #                  rv ..^..> nop=NoOp ..^..> out
    g = build("x=Placeholder()", "w=Const()", "rv=Identity(w)", "m=MatMul(x, rv)",
              "nop=NoOp(^rv)", "out=Identity(m, ^nop)")
    plan = propose(g, graph_outputs=["out:0"])
    assert segment_sets(plan) == [{"w", "rv", "m"}, {"out"}]
    assert contracted_is_acyclic(g, segment_sets(plan))


def test_constant_shape_arithmetic_is_folded_in() -> None:
    # s=Const -> p=Pack(s, s) -> r=Reshape(h, p), h=Relu(x)
    g = build("x=Placeholder()", "s=Const()", "p=Pack(s, s)", "h=Relu(x)", "r=Reshape(h, p)",
              dtypes={"s": [3], "p": [3]})
    assert segment_sets(propose(g)) == [{"s", "p", "h", "r"}]


def test_multiple_outputs_from_inside_a_segment() -> None:
    #  x -> s=Split -> :0 -> u1*     outputs in topological order of producers, then port
    #             \--> :1 -> u2*
    #  s -> t=Relu(s:1) -> u3*
    g = build("x=Placeholder()", "s=Split(x)", "t=Relu(s:1)", "u3=CpuOnly(t)",
              "u2=CpuOnly(s:1)", "u1=CpuOnly(s:0)", dtypes={"s": [FLOAT, FLOAT]})
    plan = propose(g)
    assert segment_sets(plan) == [{"s", "t"}]
    assert plan.segments[0].outputs == ("s:0", "s:1", "t:0")


def test_inputs_in_order_of_first_use() -> None:
    g = build("x=Placeholder()", "y=Placeholder()", "a=Relu(y)", "b=AddV2(a, x)",
              "c=AddV2(b, y)")
    assert propose(g).segments[0].inputs == ("y:0", "x:0")


def test_graph_outputs_leave_the_segment() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "b=Relu(a)")
    assert propose(g).segments[0].outputs == ()
    assert propose(g, graph_outputs=["a", "b:0"]).segments[0].outputs == ("a:0", "b:0")
    with pytest.raises(GraphError, match="nope"):
        propose(g, graph_outputs=["nope:0"])


# -- boundary dtypes --------------------------------------------------------------------------
def test_int64_input_keeps_its_reader_on_cpu() -> None:
    # ids(int64) -> c=Cast -> r=Relu
    g = build("ids=Placeholder()", "c=Cast(ids)", "r=Relu(c)", dtypes={"ids": [INT64]})
    plan = propose(g)
    assert segment_sets(plan) == [{"r"}]
    assert reason_of(plan, "c") == "int64 tensor ids:0 would cross the segment boundary"


def test_int64_inside_a_segment_is_fine() -> None:
    g = build("x=Placeholder()", "a=Cast(x)", "b=Cast(a)", "r=Relu(b)", dtypes={"a": [INT64]})
    assert segment_sets(propose(g)) == [{"a", "b", "r"}]


@pytest.mark.parametrize("dtype,kind", [(INT64, "int64"), (STRING, "string"),
                                        (DOUBLE, "double"), (RESOURCE, "resource"),
                                        (21, "variant"), (101, "reference")])
def test_bad_dtype_output_to_cpu_consumer(dtype: int, kind: str) -> None:
    # x -> a -> p=Cast(bad dtype) -> u*        p cannot hand its tensor to u
    g = build("x=Placeholder()", "a=Relu(x)", "p=Cast(a)", "u=CpuOnly(p)", dtypes={"p": [dtype]})
    plan = propose(g)
    assert segment_sets(plan) == [{"a"}]
    assert reason_of(plan, "p") == f"{kind} tensor p:0 would cross the segment boundary"


def test_bad_dtype_graph_output() -> None:
    g = build("x=Placeholder()", "m=MatMul(x, x)", "am=Cast(m)", dtypes={"am": [INT64]})
    plan = propose(g, graph_outputs=["am:0"])
    assert segment_sets(plan) == [{"m"}]
    assert reason_of(plan, "am") == "int64 tensor am:0 would cross the segment boundary"


def test_removal_cascades_along_bad_tensors() -> None:
    # ids(int64) -> a=Identity -> b=Identity -> c=Cast -> r=Relu, all int64 until c
    g = build("ids=Placeholder()", "a=Identity(ids)", "b=Identity(a)", "c=Cast(b)", "r=Relu(c)",
              dtypes={"ids": [INT64], "a": [INT64], "b": [INT64]})
    plan = propose(g)
    assert segment_sets(plan) == [{"r"}]
    assert reason_of(plan, "b") == "int64 tensor a:0 would cross the segment boundary"
    assert reason_of(plan, "c") == "int64 tensor b:0 would cross the segment boundary"


def test_removal_splits_and_re_proposes() -> None:
    # x -> a -> s=Cast(string) -> u*        s goes to CPU; a stays.
    #      a -> b -> c                      b, c stay with a
    g = build("x=Placeholder()", "a=Relu(x)", "s=Cast(a)", "u=CpuOnly(s)", "b=Relu(a)",
              "c=AddV2(b, a)", dtypes={"s": [STRING]})
    assert segment_sets(propose(g)) == [{"a", "b", "c"}]


def test_resource_reader_stays_on_cpu() -> None:
    # h=VarHandleOp(resource) -> i=Identity -> r=ReadVariableOp
    g = build("h=VarHandleOp()", "i=Identity(h)", "r=ReadVariableOp(i)",
              dtypes={"h": [RESOURCE], "i": [RESOURCE]})
    plan = propose(g)
    assert plan.segments == ()
    assert reason_of(plan, "i") == "resource tensor h:0 would cross the segment boundary"
    assert "variable/resource" in reason_of(plan, "h")


def test_unknown_dtype_counts_as_float() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "u=CpuOnly(a)", dtypes={"a": None})
    assert segment_sets(propose(g)) == [{"a"}]


# -- names ------------------------------------------------------------------------------------
def test_no_fuse_ops_splits_a_chain() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "b=Relu(a)", "c=Relu(b)")
    plan = propose(g, default_policy(no_fuse_ops=["b"]))
    assert segment_sets(plan) == [{"a"}, {"c"}]
    assert reason_of(plan, "b") == "listed in no_fuse_ops"


def test_force_fuse_ops_overrides_op_type_and_boundary_dtype() -> None:
    # ids(int64) -> c=Cast (forced) -> u=CpuOnly (forced) -> r=Relu
    g = build("ids=Placeholder()", "c=Cast(ids)", "u=CpuOnly(c)", "r=Relu(u)",
              dtypes={"ids": [INT64]})
    plan = propose(g, default_policy(force_fuse_ops=["c", "u", "ids"]))
    assert segment_sets(plan) == [{"c", "u", "r"}]
    assert reason_of(plan, "ids") == SIGNATURE_INPUT  # never a candidate, even if forced


def test_protected_nodes_stay_on_cpu() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "b=Relu(a)", "c=Relu(b)")
    plan = propose(g, protected=["b"])
    assert segment_sets(plan) == [{"a"}, {"c"}]
    assert reason_of(plan, "b") == PROTECTED


def test_policy_can_be_a_plain_rule() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "b=Tanh(a)")
    plan = propose(g, OpTypeRule(frozenset({"Relu"})))
    assert segment_sets(plan) == [{"a"}]


# -- control edges ----------------------------------------------------------------------------
def test_control_edges_count_for_convexity() -> None:
    # x -> a -> u* ..^..> c,  a -> c           c waits on u, which reads a: a and c apart
    g = build("x=Placeholder()", "a=Relu(x)", "u=CpuOnly(a)", "c=Relu(a, ^u)")
    plan = propose(g)
    assert segment_sets(plan) == [{"a"}, {"c"}]
    assert contracted_is_acyclic(g, segment_sets(plan))


def test_control_edges_are_not_segment_inputs() -> None:
    g = build("x=Placeholder()", "t=CpuOnly()", "a=Relu(x, ^t)", "b=Relu(a)", "w=CpuOnly(^b)")
    plan = propose(g)
    assert segment_sets(plan) == [{"a", "b"}]
    assert plan.segments[0].inputs == ("x:0",)
    assert plan.segments[0].outputs == ()


# -- the plan ---------------------------------------------------------------------------------
def test_plan_covers_every_node_once_and_is_deterministic() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "b=CpuOnly(a)", "c=Relu(a)", "d=AddV2(b, c)",
              "e=Unique(d)")
    plan = propose(g)
    names = [n for s in plan.segments for n in s.nodes]
    names += [n for group in plan.cpu_nodes.values() for n in group]
    assert sorted(names) == sorted(g.nodes)
    assert plan.node_count == len(g)
    assert plan.to_json() == propose(g).to_json()
    assert list(plan.cpu_nodes) == sorted(plan.cpu_nodes)
    assert [s.index for s in plan.segments] == list(range(len(plan.segments)))


def test_cycle_is_reported() -> None:
    g = build("a=Relu(b)", "b=Relu(a)")
    with pytest.raises(GraphError, match="cycle"):
        propose(g)


def test_graph_not_in_topological_insertion_order() -> None:
    g = build("d=AddV2(b, c)", "c=Relu(a)", "b=CpuOnly(a)", "a=Relu(x)", "x=Placeholder()")
    plan = propose(g)
    assert segment_sets(plan) == [{"a"}, {"c", "d"}]
    assert plan.segments[1].nodes == ("c", "d")
