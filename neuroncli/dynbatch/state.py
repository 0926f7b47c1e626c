"""What the row-independence analysis knows about one tensor, and what a rule sees of one op.

Every tensor of the graph gets a :class:`TensorState`, one of four kinds:

``const``
    Independent of the batch: weights, constants, shape arithmetic on them, signature inputs
    without a batch axis.  Passed whole to every shard of a dynamic-batch call.
``size``
    Depends on the batch *size* only (``Shape`` of a batched tensor and arithmetic on it).
    Harmless where an op reads it as a shape (a ``Reshape`` target: every shard runs at the
    compiled size), unsafe as data (``Range(batch)`` added to rows would number rows per
    shard).
``rows``
    Axis 0 is the batch and row ``i`` depends only on row ``i`` of the batched inputs: the
    tensor can be computed shard by shard.  ``group`` rows per batch element: a ``Reshape``
    of ``[k, 6, 4]`` to ``[k*6, 4]`` (Keras' Dense on a sequence) keeps each element's rows
    contiguous, 6 per element, and the reshape back to ``[k, 6, 5]`` restores ``group`` 1.
``mixed``
    Anything else.  ``cause`` names the op that first mixed rows and why.

Protobuf only (no TensorFlow): constants are decoded with numpy from their ``TensorProto``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from neuroncli.graph import Graph, Node, split_tensor
from neuroncli.proto.dtypes import dtype_enum

CONST, SIZE, ROWS, MIXED = "const", "size", "rows", "mixed"

_INT_DTYPES = {dtype_enum(f"DT_{n.upper()}"): np.dtype(n)
               for n in ("int32", "int64", "uint8", "int8", "int16")}
_DT_INT64 = dtype_enum("DT_INT64")
MAX_CONST_ELEMENTS = 64  # axes, permutations, paddings: small; never decode weights


@dataclass(frozen=True)
class TensorState:
    """kind: one of CONST, SIZE, ROWS, MIXED; cause: for SIZE/MIXED, where and why;
    group: for ROWS, rows per batch element along axis 0 (0 in a rule's result: as many as
    the op's batched input has)."""

    kind: str
    cause: str = ""
    group: int = 1


CONST_STATE = TensorState(CONST)
ROWS_STATE = TensorState(ROWS)
SAME_ROWS = TensorState(ROWS, group=0)


@dataclass(frozen=True)
class OpView:
    """One op as a rule sees it.

    node: the IR node (attributes as ``AttrValue``).
    states: per data input.  in_shapes / out_shapes: static shapes (None: unknown).
    ints: ``ints(i)`` -> the values of data input ``i`` when it is a small integer constant.
    """

    node: Node
    states: tuple[TensorState, ...]
    in_shapes: tuple[tuple | None, ...]
    out_shapes: tuple[tuple | None, ...]
    ints: Callable[[int], list[int] | None]

    def kind(self, index: int) -> str:
        return self.states[index].kind if index < len(self.states) else CONST

    def attr_int(self, key: str, default: int = 0) -> int:
        return int(self.node.attrs[key].i) if key in self.node.attrs else default

    def attr_bool(self, key: str) -> bool:
        return bool(self.node.attrs[key].b) if key in self.node.attrs else False

    def attr_ints(self, key: str) -> list[int]:
        return list(self.node.attrs[key].list.i) if key in self.node.attrs else []

    def rank(self, index: int) -> int | None:
        shape = self.in_shapes[index] if index < len(self.in_shapes) else None
        return None if shape is None else len(shape)


def normalize_axes(axes: Sequence[int], rank: int) -> list[int] | None:
    """Negative axes made positive; None if one is out of range."""
    out = [a + rank if a < 0 else a for a in axes]
    return out if all(0 <= a < rank for a in out) else None


def const_ints(graph: Graph, ref: str) -> list[int] | None:
    """The flattened values of a small integer ``Const`` (through Identity), else None."""
    name, port = split_tensor(ref)
    node = graph.nodes.get(name)
    seen = 0
    while node is not None and node.op == "Identity" and node.inputs and seen < 16:
        node, seen = graph.nodes.get(split_tensor(node.inputs[0])[0]), seen + 1
    if node is None or node.op != "Const" or port != 0 or "value" not in node.attrs:
        return None
    return _decode(node.attrs["value"].tensor)


def _decode(tensor: Any) -> list[int] | None:
    dtype = _INT_DTYPES.get(tensor.dtype)
    if dtype is None:
        return None
    count = 1
    for dim in tensor.tensor_shape.dim:
        count *= max(0, int(dim.size))
    if count > MAX_CONST_ELEMENTS:
        return None
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype=dtype)
    else:
        field = tensor.int64_val if tensor.dtype == _DT_INT64 else tensor.int_val
        values = np.asarray(list(field), dtype=np.int64)
        if len(values) == 0:  # no values stored: all zeros
            values = np.zeros(count, dtype=np.int64)
        elif len(values) == 1 and count > 1:  # a splat
            values = np.repeat(values, count)
    if len(values) != count:
        return None
    return [int(v) for v in values]


def describe(node: Node, reason: str) -> str:
    """The cause text of a state: op type, node name and the reason."""
    return f"{node.op} {node.name!r} {reason}"
