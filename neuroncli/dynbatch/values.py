"""Fold the small integer tensors the rules read (axes, permutations, paddings) (no TF).

A graph traced with an open batch computes many of them instead of storing constants:
``Tensordot``'s permutation is a ``ConcatV2`` of two constants, a ``Reshape`` target is a
``Pack`` of a ``StridedSlice`` of a ``Shape``.  With the compiled shapes known, their values
are fixed; :class:`IntFolder` evaluates the usual shape arithmetic on them (results memoized,
at most 64 elements, anything else unknown: a rule then keeps the batch static).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from neuroncli.dynbatch.state import MAX_CONST_ELEMENTS, const_ints
from neuroncli.graph import Graph, Node, split_tensor



class IntFolder:
    """``ints(ref)``: the flattened values of an integer tensor, or None if unknown."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._memo: dict[str, np.ndarray | None] = {}

    def ints(self, ref: str) -> list[int] | None:
        value = self.value(ref)
        return None if value is None else [int(v) for v in value.reshape(-1)]

    def value(self, ref: str, depth: int = 0) -> np.ndarray | None:
        name, port = split_tensor(ref)
        key = f"{name}:{port}"
        if key not in self._memo:
            self._memo[key] = self._fold(key, depth) if depth < 32 else None
        return self._memo[key]

    def _fold(self, ref: str, depth: int) -> np.ndarray | None:
        name, port = split_tensor(ref)
        node = self.graph.nodes.get(name)
        if node is None:
            return None
        if node.op == "Const":
            values = const_ints(self.graph, ref)
            shape = node.output_shape(0)
            if values is None:
                return None
            return np.asarray(values, np.int64).reshape(shape if shape is not None and
                                                        None not in shape else (-1,))
        fold = _FOLDS.get(node.op)
        if fold is None:
            return None
        args = [self.value(r, depth + 1) for r in node.inputs]
        try:
            result = fold(self, node, port, args)
        except (ValueError, IndexError, TypeError, OverflowError):
            return None
        if result is None or result.size > MAX_CONST_ELEMENTS:
            return None
        return np.asarray(result, np.int64)


def _shape(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    shape = folder.graph.tensor_shape(node.inputs[min(port, len(node.inputs) - 1)])
    if shape is None or None in shape:
        return None
    if node.op == "Size":
        return np.asarray(math.prod(shape))
    return np.asarray(shape) if node.op != "Rank" else np.asarray(len(shape))


def _known(args: list) -> bool:
    return all(a is not None for a in args)


def _concat(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    pieces = args[:-1] if node.op == "ConcatV2" else args[1:]
    return np.concatenate([p.reshape(-1) for p in pieces]) if _known(pieces) else None


def _pack(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    return np.stack(args, axis=int(node.attrs["axis"].i)) if _known(args) else None


def _gather(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    if not _known(args[:2]) or (len(args) > 2 and (args[2] is None or int(args[2]) != 0)):
        return None
    return np.take(args[0], args[1], axis=0)


def _reduce(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    if not _known(args) or args[0].ndim != 1:
        return None
    return np.asarray(np.prod(args[0]) if node.op == "Prod" else np.sum(args[0]))


def _strided_slice(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    """1-D input, one spec, no ellipsis or new axis: what shape code produces."""
    masks = {k: int(node.attrs[k].i) if k in node.attrs else 0 for k in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    if not _known(args) or args[0].ndim != 1 or args[1].size != 1:
        return None
    if masks["ellipsis_mask"] or masks["new_axis_mask"]:
        return None
    begin = None if masks["begin_mask"] & 1 else int(args[1].reshape(-1)[0])
    end = None if masks["end_mask"] & 1 else int(args[2].reshape(-1)[0])
    stride = int(args[3].reshape(-1)[0])
    if masks["shrink_axis_mask"] & 1:
        return np.asarray(args[0][begin or 0])
    return args[0][begin:end:stride]


def _arith(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    if not _known(args):
        return None
    ops: dict[str, Callable] = {"Add": np.add, "AddV2": np.add, "Sub": np.subtract,
                                "Mul": np.multiply, "FloorDiv": np.floor_divide,
                                "Maximum": np.maximum, "Minimum": np.minimum}
    return ops[node.op](args[0], args[1])


def _passthrough(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    return args[0] if args and args[0] is not None else None


def _reshape(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    return args[0].reshape([int(d) for d in args[1].reshape(-1)]) if _known(args) else None


def _range(folder: IntFolder, node: Node, port: int, args: list) -> np.ndarray | None:
    return np.arange(int(args[0]), int(args[1]), int(args[2])) if _known(args) else None


_FOLDS = {
    "Shape": _shape, "Size": _shape, "Rank": _shape, "ConcatV2": _concat, "Concat": _concat,
    "Pack": _pack, "GatherV2": _gather, "Gather": _gather, "Prod": _reduce, "Sum": _reduce,
    "StridedSlice": _strided_slice, "Add": _arith, "AddV2": _arith, "Sub": _arith,
    "Mul": _arith, "FloorDiv": _arith, "Maximum": _arith, "Minimum": _arith,
    "Identity": _passthrough, "Cast": _passthrough, "Reshape": _reshape, "Range": _range,
}
