"""Constant-foldable nodes join segments; AWS trace's cheap-segment and dominant-segment rules.

``*`` marks a node outside AWS's supported operator list in the drawings.
"""

from __future__ import annotations

import pytest
from test_partition_helpers import build, reason_of, segment_sets

from neuroncli.errors import UsageError
from neuroncli.graph import Node
from neuroncli.partition import (
    EXPENSIVE_OP_TYPES, constant_foldable, default_policy, drop_cheap_segments,
    keep_dominant_segment, partition, propose_segments,
)


def _shaped(graph, shapes):
    for name, shape in shapes.items():
        graph[name].output_shapes = [shape]
    return graph


def test_shape_size_rank_of_static_shapes_fold() -> None:
    # x(1,4) -> s=Shape*, z=Size*, r=Rank*        y(?,4) -> t=Shape*, q=Rank*
    g = _shaped(build("x=Placeholder()", "y=Placeholder()", "s=Shape(x)", "z=Size(x)",
                      "r=Rank(x)", "t=Shape(y)", "q=Rank(y)"),
                {"x": (1, 4), "y": (None, 4)})
    assert constant_foldable(g) == {"s", "z", "r", "q"}  # Rank needs only a known rank


def test_nodes_fed_only_by_constants_or_foldables_fold() -> None:
    # c=Const -> p=Prod*(s, c), s=Shape*(x) -> g=GatherV2*(c, p, ^s);  m=Mul(x, c) reads x
    g = build("x=Placeholder()", "c=Const()", "s=Shape(x)", "p=Prod(s, c)",
              "g=GatherV2(c, p, ^s)", "m=Mul(x, c)", "n=Neg()", "w=Switch(c, c)",
              "k=Cast(c, ^x)")
    # n has no input at all; Switch never folds; k waits on the placeholder
    assert constant_foldable(g) == {"s", "p", "g"}


def test_folded_nodes_join_the_segment_they_feed() -> None:
    # x -> s=Shape* -> p=Prod*(s, c) -> r=Reshape(x, p) -> y=Relu
    g = build("x=Placeholder()", "c=Const()", "s=Shape(x)", "p=Prod(s, c)",
              "r=Reshape(x, p)", "y=Relu(r)")
    plain = propose_segments(g, default_policy())
    assert segment_sets(plain) == [{"c"}, {"r", "y"}]  # Const c joins no neighbour
    assert reason_of(plain, "s") == "op type Shape is not in AWS's supported operator list"
    folded = propose_segments(g, default_policy(foldable=constant_foldable(g)))
    assert segment_sets(folded) == [{"c", "s", "p", "r", "y"}]


def _chain_with_cut(long: int, short: int):
    """x -> Relu x long -> t=Tanh* -> Relu x short   (one NeuronOp-candidate each side)."""
    specs = ["x=Placeholder()"]
    prev = "x"
    for i in range(long):
        specs.append(f"a{i}=Relu({prev})")
        prev = f"a{i}"
    specs.append(f"t=CpuOnly({prev})")
    prev = "t"
    for i in range(short):
        specs.append(f"b{i}=Relu({prev})")
        prev = f"b{i}"
    return build(*specs)


@pytest.mark.parametrize("long, short, kept", [
    (100, 3, 1),   # 100/103 > 0.8: only the largest
    (9, 2, 1),     # 9/11 = 0.818 > 0.8
    (8, 2, 2),     # 8/10 = 0.8 is not more than 0.8: both stay
    (3, 3, 2),
])
def test_keep_dominant_segment(long: int, short: int, kept: int) -> None:
    g = _chain_with_cut(long, short)
    plan = partition(g, default_policy(), prune_small_subgraphs_ratio=0.8)
    assert len(plan.segments) == kept
    assert plan.segments[0].nodes[0] == "a0" and len(plan.segments[0].nodes) == long
    if kept == 1:
        share = 100 * long / (long + short)
        reason = (f"a smaller segment: the largest holds {share:.1f}% of the segmented nodes "
                  "(more than 80%), so only it is kept")
        assert plan.cpu_nodes[reason] == tuple(sorted(f"b{i}" for i in range(short)))
    assert sum(len(n) for n in plan.cpu_nodes.values()) + plan.nodes_in_segments == len(g)


def test_dominant_segment_picks_the_largest_even_when_later_and_disabled_at_zero() -> None:
    g = _chain_with_cut(1, 9)
    plan = partition(g, default_policy(), prune_small_subgraphs_ratio=0.8)
    assert segment_sets(plan) == [{f"b{i}" for i in range(9)}]
    assert plan.segments[0].index == 0
    assert len(partition(g, default_policy()).segments) == 2  # ratio 0: rule off
    whole = partition(g, default_policy())
    assert keep_dominant_segment(whole, 0.95) == whole


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.8", True])
def test_bad_prune_ratio_rejected(bad) -> None:
    with pytest.raises(UsageError, match="prune_small_subgraphs_ratio must be a number"):
        partition(build("x=Placeholder()", "a=Relu(x)"), default_policy(),
                  prune_small_subgraphs_ratio=bad)


def test_foldable_skips_unannotated_and_const_itself() -> None:
    g = build("x=Placeholder()", "c=Const()", "s=Shape(x)", dtypes={"x": None})
    assert constant_foldable(g) == frozenset()
    g.add(Node("i", "Identity", ["c:0"]))
    assert constant_foldable(g) == {"i"}


def test_cheap_segments_dropped_when_another_has_an_expensive_op() -> None:
    # x -> m=MatMul -> t* -> r=Relu -> u* -> v=Relu, w=Relu      ({m}, {r}, {v, w})
    g = build("x=Placeholder()", "m=MatMul(x, x)", "t=CpuOnly(m)", "r=Relu(t)",
              "u=CpuOnly(r)", "v=Relu(u)", "w=Relu(v)")
    plan = partition(g, default_policy(), expensive_op_types=EXPENSIVE_OP_TYPES)
    assert segment_sets(plan) == [{"m"}]
    reason = ("a segment without an arithmetic-intensive op (MatMul, Conv2D, ...) while "
              "another segment has one")
    assert plan.cpu_nodes[reason] == ("r", "v", "w")
    assert len(partition(g, default_policy()).segments) == 3  # off by default
    # then the 80% rule sees only what is left; with no expensive op at all nothing drops
    cheap = build("x=Placeholder()", "a=Relu(x)", "t=CpuOnly(a)", "b=Relu(t)")
    assert len(partition(cheap, default_policy(), expensive_op_types=EXPENSIVE_OP_TYPES)
               .segments) == 2
    assert drop_cheap_segments(partition(g, default_policy()), frozenset()).segments == \
        partition(g, default_policy()).segments
