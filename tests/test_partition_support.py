"""Support rules: composable, and every refusal says why."""

from __future__ import annotations

import dataclasses

import pytest

from neuroncli.graph import Node
from neuroncli.errors import UsageError
from neuroncli.partition import (
    AWS_DEFAULT_OPS, DEFAULT_OP_SET, NAMED_OP_SETS, SIMULATOR_EXTRA_OPS, AllowNames,
    CallableRule, Decision, DenyNames, OpSet, OpTypeRule, SupportPolicy, any_chain,
    builder_policy, chain, default_policy, resolve_op_set,
)


def node(name: str = "n", op: str = "Relu") -> Node:
    return Node(name, op, ["x:0"])


def test_decision_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Decision(True).ok = False  # type: ignore[misc]


def test_op_type_rule_reasons() -> None:
    rule = OpTypeRule()
    assert rule.decide(node(op="MatMul")).ok
    refused = rule.decide(node(op="Foo"))
    assert not refused.ok
    assert refused.reason == "op type Foo is not in AWS's supported operator list"
    assert rule.decide(node(op="GatherV2")).reason == \
        "op type GatherV2 is not in AWS's supported operator list"
    assert rule.decide(node(op="Placeholder")).reason == "signature input"
    assert "control-flow" in rule.decide(node(op="Switch")).reason
    assert "variable/resource" in rule.decide(node(op="ReadVariableOp")).reason
    assert "function call" in rule.decide(node(op="StatefulPartitionedCall")).reason


def test_op_sets() -> None:
    assert DEFAULT_OP_SET == AWS_DEFAULT_OPS  # the default is AWS's list, exactly
    assert len(AWS_DEFAULT_OPS) == 75
    assert NAMED_OP_SETS["simulator"] == frozenset(SIMULATOR_EXTRA_OPS)
    assert not set(SIMULATOR_EXTRA_OPS) & AWS_DEFAULT_OPS  # the two lists stay separate
    assert all(reason for reason in SIMULATOR_EXTRA_OPS.values())
    for op in ("_FusedConv2D", "_FusedMatMul", "TopKV2", "Placeholder", "VarHandleOp",
               "ReadVariableOp", "PartitionedCall", "StatefulPartitionedCall", "NoOp",
               "Switch", "Merge", "Enter", "While", "If", "StringToNumber",
               "GatherV2", "Sin", "Cos", "Log", "ResizeBilinear", "Shape", "Erfc"):
        assert op not in DEFAULT_OP_SET, op
    for op in ("Erfc", "GatherV2", "Shape", "ResizeBilinear", "LogSoftmax", "Sin", "Log"):
        assert op in NAMED_OP_SETS["simulator"], op
    for op in ("Rsqrt", "Einsum", "MatMul", "IdentityN", "FakeQuantWithMinMaxVars", "Unpack"):
        assert op in DEFAULT_OP_SET, op


def test_resolve_op_set_default_add_replace() -> None:
    assert resolve_op_set(None) == OpSet(AWS_DEFAULT_OPS, "AWS's supported operator list")
    sim = resolve_op_set("+simulator")
    assert sim.ops == AWS_DEFAULT_OPS | frozenset(SIMULATOR_EXTRA_OPS)
    assert sim.label == "AWS's supported operator list + simulator"
    added = resolve_op_set(["+GatherV2", "+Sin"])
    assert added.ops == AWS_DEFAULT_OPS | {"GatherV2", "Sin"}
    assert added.label == "AWS's supported operator list + GatherV2 + Sin"
    bare = resolve_op_set("MatMul, Relu")
    assert bare == OpSet(frozenset({"MatMul", "Relu"}),
                         "the supported operator list (supported_op_types)")
    assert resolve_op_set("Relu,+simulator").ops == {"Relu"} | set(SIMULATOR_EXTRA_OPS)
    assert resolve_op_set("simulator").ops == frozenset(SIMULATOR_EXTRA_OPS)


@pytest.mark.parametrize("bad, message", [
    ("", "supported_op_types is empty"),
    ([], "supported_op_types is empty"),
    ("+", "empty operator name"),
    ("+simulater", "'simulater' is neither an operator type"),
    ("MatMul,relu", "'relu' is neither an operator type"),
])
def test_resolve_op_set_rejects(bad, message) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_op_set(bad)


def test_default_policy_takes_an_op_set_and_foldable_names() -> None:
    policy = default_policy(op_set=resolve_op_set("+simulator"))
    assert policy.decide(node(op="GatherV2")).ok
    assert policy.decide(node(op="Foo")).reason == \
        "op type Foo is not in AWS's supported operator list + simulator"
    folded = default_policy(foldable=["s"], no_fuse_ops=["t"])
    assert folded.decide(node("s", "Shape")).ok
    assert folded.decide(node("u", "Shape")).reason == \
        "op type Shape is not in AWS's supported operator list"
    assert default_policy(foldable=["t"], no_fuse_ops=["t"]).decide(node("t", "Shape")).reason \
        == "listed in no_fuse_ops"  # no_fuse_ops beats folding
    assert folded.forced == frozenset()  # folded nodes still obey the boundary dtype rule


def test_builder_policy_forces_exactly_the_accepted_nodes() -> None:
    policy = builder_policy(["a", "b"])
    assert policy.forced == frozenset({"a", "b"})
    assert policy.decide(node("a", "StringToNumber")) == \
        Decision(True, "accepted by subgraph_builder_function")
    assert policy.decide(node("c", "MatMul")) == \
        Decision(False, "refused by subgraph_builder_function")


def test_chain_first_refusal_wins() -> None:
    rule = chain(DenyNames(frozenset({"n"})), OpTypeRule(frozenset({"Relu"})))
    assert rule.decide(node("n", "Foo")).reason == "listed in no_fuse_ops"
    assert rule.decide(node("m", "Foo")).reason.startswith("op type Foo")
    assert rule.decide(node("m", "Relu")).ok


def test_any_chain_first_acceptance_wins_last_refusal_reported() -> None:
    rule = any_chain(AllowNames(frozenset({"n"})), OpTypeRule(frozenset({"Relu"})))
    assert rule.decide(node("n", "Foo")) == Decision(True, "listed in force_fuse_ops")
    assert rule.decide(node("m", "Relu")).ok
    assert rule.decide(node("m", "Foo")).reason.startswith("op type Foo")


def test_callable_rule_gets_a_nodedef() -> None:
    seen = []

    def fn(nd) -> bool:
        seen.append((nd.name, nd.op, list(nd.input)))
        return nd.op != "Relu"

    rule = CallableRule(fn, reason="user says no")
    assert rule.decide(Node("a", "Tanh", ["x:0", "y:1"], ["c"])).ok
    assert rule.decide(node("b", "Relu")) == Decision(False, "user says no")
    assert seen[0] == ("a", "Tanh", ["x", "y:1", "^c"])


def test_default_policy_precedence() -> None:
    policy = default_policy(no_fuse_ops=["r", "both"], force_fuse_ops=["f", "both"])
    assert isinstance(policy, SupportPolicy)
    assert policy.forced == frozenset({"f", "both"})
    assert policy.decide(node("r", "Relu")).reason == "listed in no_fuse_ops"
    assert policy.decide(node("f", "Foo")).ok           # force beats the op set
    assert policy.decide(node("both", "Foo")).ok        # ... and no_fuse_ops
    assert policy.decide(node("z", "Foo")).reason.startswith("op type Foo")
    assert policy.decide(node("z", "Relu")).ok


def test_default_policy_op_set_and_extra_rule() -> None:
    extra = CallableRule(lambda nd: nd.name != "veto", reason="vetoed")
    policy = default_policy(op_set=["Relu"], extra_rule=extra)
    assert policy.decide(node("a", "Relu")).ok
    assert not policy.decide(node("a", "MatMul")).ok
    assert policy.decide(node("veto", "Relu")).reason == "vetoed"
    assert policy.forced == frozenset()
