"""Which nodes may run on a NeuronCore: composable rules that always say why.

The default operator set is AWS's supported operator list, exactly
(:data:`AWS_DEFAULT_OPS`); :func:`resolve_op_set` reads the ``supported_op_types`` option
(``+Op`` adds to it, a bare list replaces it, ``+simulator`` adds the ops this project's
simulated backend can also run).  Constant-foldable nodes join segments whatever their type
(:mod:`neuroncli.partition.foldable`).

A rule is any object with ``decide(node) -> Decision``; a refusal carries the reason the
report prints next to the node.  Small rules (op type, name lists, a user callback) combine
with :func:`chain` (all must accept; the first refusal's reason wins) and :func:`any_chain`
(the first acceptance wins).  :func:`default_policy` builds the policy ``neuron-compile``
uses: ``force_fuse_ops`` overrides everything, then ``no_fuse_ops``, the op set and an
optional extra rule.

Rules look at one node at a time.  What depends on the neighbourhood (signature inputs,
tensors of string/int64/double/resource dtype at a segment boundary) is decided in
:mod:`neuroncli.partition.propose`, which asks :attr:`SupportPolicy.forced` which nodes
bypass those checks too.  No TensorFlow here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol

from neuroncli.errors import UsageError
from neuroncli.graph.convert import node_to_nodedef
from neuroncli.format.weights import READ_OP, VARIABLE_OPS
from neuroncli.graph.ir import Node

# Operators AWS's compiler accepts by default (AWS's documented list; docs/format.md).
AWS_DEFAULT_OPS: frozenset[str] = frozenset("""
Add AddN AddV2 Any AvgPool AvgPool3D BatchMatMul BatchMatMulV2 BatchToSpaceND BiasAdd Cast
Concat ConcatV2 Const Conv2D Conv2DBackpropInput Conv3D Conv3DBackpropInputV2 Cumsum
DepthwiseConv2dNative Einsum Elu Erf Exp ExpandDims FakeQuantWithMinMaxVars FusedBatchNorm
FusedBatchNormV2 FusedBatchNormV3 Greater Identity IdentityN LeakyRelu LogicalAnd LogicalNot
MatMul Max MaxPool MaxPool3D Maximum Minimum Mean Mul Neg NotEqual Pack Pad Pow RealDiv Relu
Relu6 Reshape Rsqrt Select SelectV2 Selu Sigmoid Slice Softmax Softplus Softsign SpaceToBatchND
Split SplitV Sqrt Square SquaredDifference Squeeze StridedSlice Sub Sum Tanh Tile Transpose
Unpack
""".split())

# Ops our simulated backend (TensorFlow on CPU, lowered through XLA) also handles and that
# Keras 3 or tf.function emit in inference graphs; AWS keeps them on CPU, so they are offered
# to the device only on request (``supported_op_types="+simulator"``).  Deliberately absent: grappler's runtime-only fused
# ops (_FusedConv2D, _FusedMatMul, ...), because we partition before grappler rewrites, and
# anything stateful or random.  TopKV2 is left out too: AWS does not list it and a sort is a
# poor fit for the device.
SIMULATOR_EXTRA_OPS: dict[str, str] = {
    "Erfc": "exact GELU in some exporters",
    "GatherV2": "embedding lookups and Keras slicing",
    "StopGradient": "a no-op at inference; Keras leaves it in losses/normalisation",
    "Prod": "reshape arithmetic (product of dims)",
    "Shape": "shape arithmetic folded into segments (static once shapes are fixed)",
    "Size": "shape arithmetic, as Shape",
    "Rank": "shape arithmetic, as Shape",
    "Fill": "zeros/ones of a computed shape",
    "Range": "position ids and iota-like index vectors",
    "ZerosLike": "Keras masks and initial states",
    "OnesLike": "Keras masks",
    "Log": "log-softmax and losses left in inference graphs",
    "Abs": "elementwise; XLA lowers it",
    "Floor": "elementwise; XLA lowers it",
    "FloorDiv": "integer shape arithmetic",
    "FloorMod": "integer shape arithmetic",
    "Equal": "masks",
    "Less": "masks",
    "LessEqual": "masks",
    "GreaterEqual": "masks",
    "LogicalOr": "masks",
    "Reciprocal": "normalisation layers",
    "Min": "reductions",
    "ArgMax": "classification heads (int64 output stays inside or the boundary rule applies)",
    "ArgMin": "as ArgMax",
    "BroadcastTo": "Keras broadcasting",
    "ClipByValue": "ReLU6-like clamps",
    "Sin": "positional encodings",
    "Cos": "positional encodings",
    "MirrorPad": "reflect padding in conv nets",
    "PadV2": "padding with a constant value",
    "ResizeBilinear": "upsampling layers",
    "ResizeNearestNeighbor": "upsampling layers",
    "LogSoftmax": "classification heads",
}

# The default: what AWS's partitioner offers the device.
DEFAULT_OP_SET: frozenset[str] = AWS_DEFAULT_OPS
# AWS's arithmetic-intensive op types: in ``trace``'s automatic mode, when several segments
# remain and some hold one of these, the segments holding none stay on CPU.
EXPENSIVE_OP_TYPES: frozenset[str] = frozenset("""
BatchMatMul BatchMatMulV2 BatchMatMulV3 Conv2D Conv2DBackpropFilter Conv2DBackpropInput Conv3D
Conv3DBackpropFilterV2 Conv3DBackpropInputV2 DepthwiseConv2dNative
DepthwiseConv2dNativeBackpropFilter DepthwiseConv2dNativeBackpropInput Einsum MatMul
""".split())
# Named sets a ``supported_op_types`` item may add (``+simulator``) or name (``simulator``).
NAMED_OP_SETS: dict[str, frozenset[str]] = {"simulator": frozenset(SIMULATOR_EXTRA_OPS)}
AWS_LIST_NAME = "AWS's supported operator list"
# TensorFlow op type names: CamelCase, or ``_Name`` for internal ops.
_OP_NAME = re.compile(r"_?[A-Z][A-Za-z0-9_]*")

# Op families that never run on the device, with a more useful reason than "unsupported".
_CPU_ONLY_FAMILIES: dict[str, str] = {
    "Placeholder": "signature input",
    **dict.fromkeys((*sorted(VARIABLE_OPS), READ_OP, "AssignVariableOp", "ResourceGather",
                     "VarIsInitializedOp", "Assign", "AssignAdd", "AssignSub",
                     "IsVariableInitialized"),
                    "variable/resource op {op} stays on CPU"),
    **dict.fromkeys(("SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename"),
                    "checkpoint op {op} stays on CPU"),
    **dict.fromkeys(("Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond",
                     "While", "StatelessWhile", "If", "StatelessIf", "Case"),
                    "control-flow op {op} stays on CPU"),
    **dict.fromkeys(("PartitionedCall", "StatefulPartitionedCall"),
                    "function call {op} stays on CPU"),
    "NoOp": "NoOp has nothing to compute",
}


def cpu_only_reason(op: str) -> str | None:
    """Why op type ``op`` never runs on the device whatever the op set, or None."""
    family = _CPU_ONLY_FAMILIES.get(op)
    return None if family is None else family.format(op=op)


def outside_op_set(op_counts: Mapping[str, int], op_set: OpSet | None = None) -> dict[str, int]:
    """The op types (with counts) a compile refuses as ``op type X is not in <list>``: not in
    the op set and not CPU-only by nature; sorted by type.  What ``neuron-inspect`` reports."""
    ops = (op_set or OpSet()).ops
    return {op: n for op, n in sorted(op_counts.items())
            if op not in ops and cpu_only_reason(op) is None}


@dataclass(frozen=True)
class Decision:
    """A rule's verdict on one node.

    ok: the node may be placed in a segment.
    reason: why not (for a refusal) or why (for a forced acceptance); may be empty when ok.
    """

    ok: bool
    reason: str = ""


ACCEPT = Decision(True)


class Rule(Protocol):
    """Anything with ``decide``: the unit policies are built from."""

    def decide(self, node: Node) -> Decision: ...


@dataclass(frozen=True)
class OpSet:
    """The operator types offered to the device, and how the report names them.

    ops: the op types.
    label: e.g. ``AWS's supported operator list`` or ``AWS's supported operator list +
        simulator``; refusals say ``op type X is not in <label>``.
    """

    ops: frozenset[str] = DEFAULT_OP_SET
    label: str = AWS_LIST_NAME


def resolve_op_set(spec: str | Iterable[str] | None) -> OpSet:
    """The op set a ``supported_op_types`` value asks for (None: AWS's list).

    ``spec`` is a comma/space-separated string or an iterable of items.  ``+Op`` adds to
    AWS's list, a bare ``Op`` builds a replacement list (then ``+`` items add to that), and a
    named set (``simulator``) stands for its ops either way.  Raises ``UsageError`` on an
    empty list, an unknown named set or a malformed name.
    """
    if spec is None:
        return OpSet()
    items = spec.replace(",", " ").split() if isinstance(spec, str) else \
        [str(item).strip() for item in spec]
    added: list[str] = []
    replaced: list[str] = []
    for item in items:
        if not item.lstrip("+"):
            raise UsageError(f"supported_op_types: empty operator name in {spec!r}")
        (added if item.startswith("+") else replaced).append(item.lstrip("+"))
    if not added and not replaced:
        raise UsageError("supported_op_types is empty: give operator types (e.g. "
                        "'MatMul,Relu'), '+Op' to add to AWS's list, or '+simulator'")
    ops = set() if replaced else set(AWS_DEFAULT_OPS)
    for name in replaced + added:
        ops |= _expand(name)
    label = "the supported operator list (supported_op_types)" if replaced else \
        " + ".join([AWS_LIST_NAME, *sorted(dict.fromkeys(added))])
    return OpSet(frozenset(ops), label)


def _expand(name: str) -> frozenset[str]:
    """One ``supported_op_types`` item: a named set or an operator type."""
    if name in NAMED_OP_SETS:
        return NAMED_OP_SETS[name]
    if not _OP_NAME.fullmatch(name):
        named = ", ".join(sorted(NAMED_OP_SETS))
        raise UsageError(f"supported_op_types: {name!r} is neither an operator type (CamelCase, "
                        f"e.g. GatherV2) nor a named set ({named})")
    return frozenset({name})


@dataclass(frozen=True)
class OpTypeRule:
    """Accept nodes whose op type is in ``op_set``; refusals name ``list_name``."""

    op_set: frozenset[str] = DEFAULT_OP_SET
    list_name: str = AWS_LIST_NAME
    _cache: dict[str, Decision] = field(default_factory=dict, compare=False, repr=False)

    def decide(self, node: Node) -> Decision:
        # One Decision object per op type: this runs once per node on million-node graphs.
        decision = self._cache.get(node.op)
        if decision is None:
            decision = self._cache[node.op] = self._decide_op(node.op)
        return decision

    def _decide_op(self, op: str) -> Decision:
        if op in self.op_set:
            return ACCEPT
        family = cpu_only_reason(op)
        if family is not None:
            return Decision(False, family)
        return Decision(False, f"op type {op} is not in {self.list_name}")


@dataclass(frozen=True)
class DenyNames:
    """Refuse the listed node names (``no_fuse_ops``)."""

    names: frozenset[str]
    reason: str = "listed in no_fuse_ops"

    def decide(self, node: Node) -> Decision:
        return Decision(False, self.reason) if node.name in self.names else ACCEPT


@dataclass(frozen=True)
class AllowNames:
    """Accept only the listed node names; meant as the first member of :func:`any_chain`."""

    names: frozenset[str]
    reason: str = "listed in force_fuse_ops"

    def decide(self, node: Node) -> Decision:
        if node.name in self.names:
            return Decision(True, self.reason)
        return Decision(False, f"not {self.reason}")


@dataclass(frozen=True)
class CallableRule:
    """A user callback ``fn(NodeDef) -> bool`` (TF-style ``subgraph_builder_function``)."""

    fn: Callable[[Any], bool]
    reason: str = "refused by the user's support function"

    def decide(self, node: Node) -> Decision:
        return ACCEPT if self.fn(node_to_nodedef(node)) else Decision(False, self.reason)


@dataclass(frozen=True)
class _Chain:
    rules: tuple[Rule, ...]

    def decide(self, node: Node) -> Decision:
        for rule in self.rules:
            decision = rule.decide(node)
            if not decision.ok:
                return decision
        return ACCEPT


@dataclass(frozen=True)
class _AnyChain:
    rules: tuple[Rule, ...]

    def decide(self, node: Node) -> Decision:
        refusal = Decision(False, "no rule accepts this node")
        for rule in self.rules:
            decision = rule.decide(node)
            if decision.ok:
                return decision
            refusal = decision
        return refusal


def chain(*rules: Rule) -> Rule:
    """All rules must accept; the first refusal (in argument order) is the verdict."""
    return _Chain(tuple(rules))


def any_chain(*rules: Rule) -> Rule:
    """The first acceptance wins; if all refuse, the *last* refusal is the verdict, so put
    the most general (most informative) rule last."""
    return _AnyChain(tuple(rules))


@dataclass(frozen=True)
class SupportPolicy:
    """The complete per-node policy the partitioner consults.

    rule: the combined rule (forced names already accepted by it).
    forced: names in ``force_fuse_ops``; they also bypass the boundary dtype checks, but a
        signature input or a node the caller protects never becomes a candidate.
    """

    rule: Rule
    forced: frozenset[str] = frozenset()

    def decide(self, node: Node) -> Decision:
        return self.rule.decide(node)


def default_policy(no_fuse_ops: Iterable[str] = (), force_fuse_ops: Iterable[str] = (),
                   op_set: OpSet | Iterable[str] | None = None,
                   extra_rule: Rule | None = None,
                   foldable: Iterable[str] = ()) -> SupportPolicy:
    """``force_fuse_ops`` > ``no_fuse_ops`` > (op set or ``foldable`` names) >
    ``extra_rule``.  ``op_set``: an :class:`OpSet`, plain op types, or None for AWS's list.

    A constant-foldable node joins a segment whatever its type, as in AWS's partitioner, but
    ``no_fuse_ops`` still keeps it on CPU (AWS's TF1 path never folds, so that is what its
    ``no_fuse_ops`` users get)."""
    if op_set is None:
        op_set = OpSet()
    elif not isinstance(op_set, OpSet):
        op_set = OpSet(frozenset(op_set), "the supported operator list")
    base: list[Rule] = []
    deny = frozenset(no_fuse_ops)
    if deny:
        base.append(DenyNames(deny))
    type_rule: Rule = OpTypeRule(op_set.ops, op_set.label)
    folded = frozenset(foldable)
    if folded:
        type_rule = any_chain(AllowNames(folded, "constant-foldable"), type_rule)
    base.append(type_rule)
    if extra_rule is not None:
        base.append(extra_rule)
    rule = base[0] if len(base) == 1 else chain(*base)
    forced = frozenset(force_fuse_ops)
    if forced:
        rule = any_chain(AllowNames(forced), rule)
    return SupportPolicy(rule=rule, forced=forced)


def builder_policy(accepted: Iterable[str]) -> SupportPolicy:
    """``trace`` with ``subgraph_builder_function``: as AWS does, the nodes it accepts are
    forced into segments (whatever their type, across any boundary dtype) and every other
    node stays on CPU."""
    names = frozenset(accepted)
    rule = any_chain(AllowNames(names, "accepted by subgraph_builder_function"),
                     RefuseAll("refused by subgraph_builder_function"))
    return SupportPolicy(rule=rule, forced=names)


@dataclass(frozen=True)
class RefuseAll:
    """Refuse every node with ``reason`` (the last member of an :func:`any_chain`)."""

    reason: str

    def decide(self, node: Node) -> Decision:
        return Decision(False, self.reason)
