"""Support rules: composable, and every refusal says why."""

from __future__ import annotations

import dataclasses

import pytest

from neuroncli.graph import Node
from neuroncli.partition import (
    AWS_DEFAULT_OPS, DEFAULT_OP_SET, SIMULATOR_EXTRA_OPS, AllowNames, CallableRule, Decision,
    DenyNames, OpTypeRule, SupportPolicy, any_chain, chain, default_policy,
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
    assert refused.reason == "op type Foo is not supported by the Neuron compiler"
    assert rule.decide(node(op="Placeholder")).reason == "signature input"
    assert "control-flow" in rule.decide(node(op="Switch")).reason
    assert "variable/resource" in rule.decide(node(op="ReadVariableOp")).reason
    assert "function call" in rule.decide(node(op="StatefulPartitionedCall")).reason


def test_op_sets() -> None:
    assert AWS_DEFAULT_OPS <= DEFAULT_OP_SET
    assert set(SIMULATOR_EXTRA_OPS) <= DEFAULT_OP_SET
    assert not set(SIMULATOR_EXTRA_OPS) & AWS_DEFAULT_OPS  # the two lists stay separate
    assert all(reason for reason in SIMULATOR_EXTRA_OPS.values())
    for op in ("_FusedConv2D", "_FusedMatMul", "TopKV2", "Placeholder", "VarHandleOp",
               "ReadVariableOp", "PartitionedCall", "StatefulPartitionedCall", "NoOp",
               "Switch", "Merge", "Enter", "While", "If", "StringToNumber"):
        assert op not in DEFAULT_OP_SET, op
    for op in ("Erfc", "GatherV2", "Shape", "ResizeBilinear", "LogSoftmax", "Rsqrt", "Einsum"):
        assert op in DEFAULT_OP_SET, op


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
