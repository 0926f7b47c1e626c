"""Plans: filtering by minimum_segment_size, reasons for every CPU node, printing, JSON."""

from __future__ import annotations

import json

import pytest
from test_partition_helpers import build, reason_of, segment_sets

from neuroncli.errors import UserError
from neuroncli.partition import (
    NOTHING_TO_COMPUTE_REASON, SegmentPlan, Segment, default_policy, filter_segments, partition,
    propose_segments,
)

POLICY = default_policy()


def test_identity_is_not_counted() -> None:
    # x -> i1=Identity -> r=Relu -> i2=Identity    (1 counted op)
    # x -> a -> u* -> b -> c                         ({a}: 1, {b, c}: 2)
    g = build("x=Placeholder()", "i1=Identity(x)", "r=Relu(i1)", "i2=Identity(r)",
              "a=Tanh(x)", "u=CpuOnly(a)", "b=Relu(u)", "c=Relu(b)")
    proposed = propose_segments(g, POLICY)
    assert segment_sets(proposed) == [{"i1", "r", "i2"}, {"a"}, {"b", "c"}]
    assert [s.size for s in proposed.segments] == [1, 1, 2]
    plan = filter_segments(proposed, 2)
    assert segment_sets(plan) == [{"b", "c"}]
    assert plan.segments[0].index == 0
    reason = "segment of 1 ops is below minimum_segment_size 2"
    assert plan.cpu_nodes[reason] == ("a", "i1", "i2", "r")
    assert reason_of(plan, "u") == "op type CpuOnly is not in AWS's supported operator list"
    assert segment_sets(filter_segments(proposed, 1)) == segment_sets(proposed)


def test_identity_n_is_not_counted() -> None:
    g = build("x=Placeholder()", "i=IdentityN(x)", "r=Relu(i)")
    assert partition(g, POLICY, minimum_segment_size=2).segments == ()


def test_constant_only_segment_goes_back_to_cpu() -> None:
    # c=Const -> u*      a segment of one Const computes nothing, whatever the minimum
    g = build("x=Placeholder()", "c=Const()", "u=CpuOnly(c, x)", "k=Const()", "i=Identity(k)",
              "v=CpuOnly(i)")
    plan = partition(g, POLICY, minimum_segment_size=1)
    assert plan.segments == ()
    assert plan.cpu_nodes[NOTHING_TO_COMPUTE_REASON] == ("c", "i", "k")


def test_const_read_by_cpu_and_segment_nodes_joins_the_lowest_reader() -> None:
    # k=Const feeds u* and r=AddV2(x, k): u is a CPU sink, so k may rise to r and join it
    g = build("x=Placeholder()", "k=Const()", "u=CpuOnly(k)", "r=AddV2(x, k)")
    plan = partition(g, POLICY, minimum_segment_size=1)
    assert segment_sets(plan) == [{"k", "r"}]
    assert plan.segments[0].outputs == ("k:0",)


def test_filter_accepts_a_list_of_segments() -> None:
    segs = [Segment(0, ("a",), (), (), {"Relu": 1}),
            Segment(1, ("b", "c"), (), (), {"Relu": 2})]
    plan = filter_segments(segs, 2)
    assert [s.nodes for s in plan.segments] == [("b", "c")]
    assert plan.segments[0].index == 0
    assert plan.cpu_nodes == {"segment of 1 ops is below minimum_segment_size 2": ("a",)}


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_minimum_segment_size_is_rejected_up_front(bad) -> None:
    g = build("x=Placeholder()")
    with pytest.raises(UserError, match="minimum_segment_size must be an integer of at least 1"):
        partition(g, POLICY, minimum_segment_size=bad)


def test_str_and_json() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "b=Relu(a)", "u=CpuOnly(b)")
    plan = partition(g, POLICY, minimum_segment_size=1, graph_outputs=["u:0"])
    text = str(plan)
    assert "1 segment(s) hold 2 of 4 nodes (50.0%)" in text
    assert "segment 0: 2 nodes (2 counted), inputs [x:0], outputs [b:0]; Relu×2" in text
    assert "signature input (1): x" in text
    doc = json.loads(plan.to_json())
    assert doc["segments"][0]["nodes"] == ["a", "b"]
    assert doc["cpu_nodes"]["signature input"] == ["x"]
    assert doc["node_count"] == 4 and doc["nodes_in_segments"] == 2
    assert plan.to_json() == partition(g, POLICY, graph_outputs=["u:0"]).to_json()


def test_plan_is_frozen_and_segment_of() -> None:
    g = build("x=Placeholder()", "a=Relu(x)", "u=CpuOnly(a)", "b=Relu(u)")
    plan = partition(g, POLICY)
    assert isinstance(plan, SegmentPlan)
    assert plan.segment_of() == {"a": 0, "b": 1}
    with pytest.raises(AttributeError):
        plan.segments = ()  # type: ignore[misc]


def test_op_histogram_most_frequent_first() -> None:
    g = build("x=Placeholder()", "a=Tanh(x)", "b=Relu(a)", "c=Relu(b)", "d=AddV2(c, a)")
    hist = partition(g, POLICY).segments[0].op_histogram
    assert list(hist.items()) == [("Relu", 2), ("AddV2", 1), ("Tanh", 1)]
