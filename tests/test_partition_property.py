"""Properties on random DAGs (fixed seeds), checked by brute force.

Every segment is convex, the contracted graph is acyclic for the full plan and for random
subsets of its segments, the plan covers every node once, and no tensor of a boundary dtype
crosses a segment boundary.
"""

from __future__ import annotations

import random

import pytest
from test_partition_helpers import (
    INT64, contracted_is_acyclic, is_convex, random_dag, segment_sets,
)

from neuroncli.partition import default_policy, partition, propose_segments

POLICY = default_policy(op_set={"Relu", "Const"})


@pytest.mark.parametrize("seed", range(8))
def test_segments_convex_and_contraction_acyclic(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        g = random_dag(rng, 30, p_supported=rng.choice([0.5, 0.7, 0.9]),
                       p_control=rng.choice([0.0, 0.2]))
        plan = propose_segments(g, POLICY)
        segments = segment_sets(plan)
        for seg in segments:
            assert is_convex(g, seg), (seg, [(n.name, n.op, n.inputs) for n in g])
        assert contracted_is_acyclic(g, segments)
        for _ in range(3):  # dropping any segments (filter, compile failure) stays acyclic
            subset = [s for s in segments if rng.random() < 0.5]
            assert contracted_is_acyclic(g, subset)
        names = [n for s in segments for n in s] + [
            n for group in plan.cpu_nodes.values() for n in group]
        assert sorted(names) == sorted(g.nodes)


@pytest.mark.parametrize("seed", range(4))
def test_no_boundary_dtype_crosses(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(40):
        g = random_dag(rng, 30, p_supported=0.8, p_bad_dtype=0.3)
        plan = partition(g, POLICY, minimum_segment_size=1)
        where = plan.segment_of()
        for node in g:
            for ref in node.inputs:
                src = ref.split(":")[0]
                if g[src].output_dtypes == [INT64] and (src in where or node.name in where):
                    assert where.get(src) == where.get(node.name), (ref, node.name)
        for seg in segment_sets(plan):
            assert is_convex(g, seg)
        assert contracted_is_acyclic(g, segment_sets(plan))


def test_merges_happen() -> None:
    # a guard against a partitioner that is "correct" by never merging anything
    rng = random.Random(7)
    merged = 0
    for _ in range(50):
        plan = propose_segments(random_dag(rng, 30, p_supported=0.9), POLICY)
        merged += sum(len(s.nodes) for s in plan.segments if len(s.nodes) > 1)
    assert merged > 50 * 30 * 0.3
