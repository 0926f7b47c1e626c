"""Which ops keep the rows of a batch independent, and under which conditions.

A rule sees an op with at least one ``rows`` input and no ``mixed`` one (the analysis settles
the other cases) and returns the states of the op's outputs, or a reason (text) why the op
mixes rows.  The list is a whitelist: an op without a rule mixes rows.  Conditions are checked
on the static shapes and constant attributes of the compiled graph, which is what every shard
runs, so a rule can be exact where a shape-free analysis would have to guess (a ``Reshape``
keeps rows exactly when it keeps the leading dimension).

Conservative on purpose: a constant operand whose leading dimension equals the batch, a
batch-size-dependent value used as data, a slice, gather, reduction, transpose or concat that
touches axis 0, ``MatMul`` with ``transpose_a``, all keep a program at a static batch.
"""

from __future__ import annotations

from typing import Callable

from neuroncli.dynbatch.state import (
    CONST, CONST_STATE, ROWS, SAME_ROWS, SIZE, OpView, TensorState, normalize_axes,
)

Result = "list[TensorState] | str"
Rule = Callable[[OpView], "list[TensorState] | str"]

UNARY = frozenset("""
Identity Snapshot StopGradient PreventGradient CheckNumerics Abs Acos Acosh Asin Asinh Atan
Atanh Ceil Cos Cosh Digamma Erf Erfc Exp Expm1 Floor Inv Invert IsFinite IsInf IsNan Lgamma
Log Log1p Neg Reciprocal Rint Round Rsqrt Sigmoid Sign Sin Sinh Sqrt Square Tan Tanh Elu Relu
Relu6 Selu Softplus Softsign LeakyRelu Gelu Cast LogicalNot ZerosLike OnesLike
FakeQuantWithMinMaxArgs""".split())
BROADCASTING = frozenset("""
Add AddV2 Sub Mul Div RealDiv DivNoNan MulNoNan FloorDiv FloorMod Mod TruncateDiv TruncateMod
Maximum Minimum Pow SquaredDifference Atan2 Equal NotEqual Greater GreaterEqual Less LessEqual
LogicalAnd LogicalOr Xdivy Xlogy Xlog1py BiasAdd BiasAddV1 SelectV2 AddN ClipByValue""".split())
REDUCTIONS = frozenset("Sum Mean Max Min Prod All Any EuclideanNorm ArgMax ArgMin".split())
# op -> (data input, operands that may depend on the batch size: they are read as shapes)
SPATIAL = {
    "Conv2D": (0, ()), "Conv3D": (0, ()), "DepthwiseConv2dNative": (0, ()),
    "MaxPool": (0, ()), "AvgPool": (0, ()), "MaxPool3D": (0, ()), "AvgPool3D": (0, ()),
    "MaxPoolV2": (0, ()), "LRN": (0, ()), "SpaceToDepth": (0, ()), "DepthToSpace": (0, ()),
    "Dilation2D": (0, ()), "ResizeBilinear": (0, (1,)), "ResizeNearestNeighbor": (0, (1,)),
    "ResizeBicubic": (0, (1,)), "Conv2DBackpropInput": (2, (0,)),
    "Conv3DBackpropInputV2": (2, (0,)), "FakeQuantWithMinMaxVars": (0, ()),
    "FakeQuantWithMinMaxVarsPerChannel": (0, ()),
}
BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})


def each_output(view: OpView, *states: TensorState) -> list[TensorState]:
    count = max(1, len(view.out_shapes))
    return list(states) + [states[-1]] * (count - len(states)) if states else []


def keeps_rows(view: OpView, index: int, out: int = 0) -> bool:
    shape, result = view.in_shapes[index], view.out_shapes[out] if view.out_shapes else None
    return bool(shape and result and len(shape) >= 1 and len(result) >= 1
                and shape[0] is not None and shape[0] == result[0])


def mixing_operand(view: OpView, data: tuple[int, ...], shapes: tuple[int, ...] = ()) -> str:
    """A reason if an operand outside ``data`` carries the batch (or, unless it is read as a
    shape, its size)."""
    for i, state in enumerate(view.states):
        if i in data:
            continue
        if state.kind == ROWS:
            return f"mixes its operand {i} (which carries the batch) into every row"
        if state.kind == SIZE and i not in shapes:
            return f"uses a batch-size-dependent value as data (operand {i}: {state.cause})"
    return ""


def elementwise(view: OpView) -> list[TensorState] | str:
    """Broadcasting must not stretch a batched operand along axis 0, nor spread a constant
    whose leading axis lines up with the batch."""
    out = view.out_shapes[0] if view.out_shapes else None
    if out is None or len(out) == 0:
        return "has an output of unknown or scalar shape"
    if view.node.op == "Select" and len({view.rank(i) for i in range(len(view.states))}) > 1:
        return "selects whole rows by a rank-1 condition"
    for i, state in enumerate(view.states):
        shape = view.in_shapes[i]
        if state.kind == SIZE:
            return f"uses a batch-size-dependent value as data (operand {i}: {state.cause})"
        if shape is None:
            return f"has operand {i} of unknown shape"
        if state.kind == ROWS and (len(shape) != len(out) or shape[0] != out[0]):
            return f"broadcasts its batched operand {i} {shape} along the batch axis"
        if state.kind == CONST and len(shape) == len(out) and shape[0] != 1:
            return (f"combines each row with row i of constant operand {i} {shape}: its "
                    "leading axis lines up with the batch")
    return each_output(view, SAME_ROWS)


def unary(view: OpView) -> list[TensorState] | str:
    return elementwise(view) if len(view.states) > 1 else each_output(view, SAME_ROWS)


def identity_n(view: OpView) -> list[TensorState] | str:
    return list(view.states)


def reduction(view: OpView) -> list[TensorState] | str:
    rank, axes = view.rank(0), view.ints(1)
    if view.kind(0) != ROWS or view.kind(1) != CONST:
        return mixing_operand(view, (0,)) or "reduces a constant with batched axes"
    if rank is None or axes is None:
        return "reduces over axes that are not constant"
    axes = normalize_axes(axes, rank) if rank else None
    if axes is None or 0 in axes:
        return "reduces over the batch axis 0"
    return each_output(view, SAME_ROWS)


def last_axis(view: OpView) -> list[TensorState] | str:
    """Softmax, LogSoftmax, TopKV2 (k constant): over the last axis, which must not be 0."""
    if view.kind(0) != ROWS or (view.rank(0) or 0) < 2:
        return "normalizes over the batch axis 0"
    return mixing_operand(view, (0,)) or each_output(view, SAME_ROWS)


def cumulative(view: OpView) -> list[TensorState] | str:
    axis, rank = view.ints(1), view.rank(0)
    if view.kind(0) != ROWS or axis is None or rank is None or rank < 1:
        return "accumulates over axes that are not constant"
    if normalize_axes(axis, rank) in (None, [0]):
        return "accumulates over the batch axis 0"
    return mixing_operand(view, (0,)) or each_output(view, SAME_ROWS)


def spatial(view: OpView) -> list[TensorState] | str:
    data, shapes = SPATIAL[view.node.op]
    if view.kind(data) != ROWS:
        return f"applies a batched operand as weights ({mixing_operand(view, (data,), shapes)})"
    reason = mixing_operand(view, (data,), shapes)
    if reason:
        return reason
    return each_output(view, SAME_ROWS) if keeps_rows(view, data) else "changes the batch axis"


def batch_norm(view: OpView) -> list[TensorState] | str:
    if view.attr_bool("is_training"):
        return "normalizes with statistics of the whole batch (is_training)"
    if view.kind(0) != ROWS:
        return mixing_operand(view, (0,)) or "normalizes a constant"
    return mixing_operand(view, (0,)) or each_output(view, SAME_ROWS, CONST_STATE)


def pad(view: OpView) -> list[TensorState] | str:
    paddings = view.ints(1)
    if view.kind(0) != ROWS or paddings is None or len(paddings) < 2:
        return mixing_operand(view, (0,)) or "pads by amounts that are not constant"
    if paddings[0] or paddings[1]:
        return "pads the batch axis 0"
    return mixing_operand(view, (0,)) or each_output(view, SAME_ROWS)


def matmul(view: OpView) -> list[TensorState] | str:
    if view.attr_bool("transpose_a"):
        return "transposes its first operand (transpose_a): the batch becomes the contraction"
    if view.kind(0) != ROWS:
        return "multiplies by a batched right-hand side: the batch becomes a column axis"
    return mixing_operand(view, (0,)) or each_output(view, SAME_ROWS)


def batch_matmul(view: OpView) -> list[TensorState] | str:
    """Axis 0 is a batch dimension of BatchMatMul when both operands have rank >= 3."""
    if any((view.rank(i) or 0) < 3 for i in (0, 1)):
        return "multiplies matrices whose rows are the batch"
    return elementwise_batch_dims(view)


def elementwise_batch_dims(view: OpView) -> list[TensorState] | str:
    out = view.out_shapes[0] if view.out_shapes else None
    for i in (0, 1):
        shape = view.in_shapes[i]
        if out is None or shape is None:
            return "has operands of unknown shape"
        if view.kind(i) == ROWS and (len(shape) != len(out) or shape[0] != out[0]):
            return f"broadcasts its batched operand {i} along the batch axis"
        if view.kind(i) == CONST and len(shape) == len(out) and shape[0] != 1:
            return f"pairs each row with row i of constant operand {i}"
        if view.kind(i) == SIZE:
            return f"uses a batch-size-dependent value as data (operand {i})"
    return each_output(view, SAME_ROWS)
