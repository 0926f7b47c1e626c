"""Rules for ops that move data between axes: they keep rows only if axis 0 stays axis 0.

Checked on the compiled graph's static shapes and constant attributes: a ``Reshape`` keeps
rows when it keeps the leading dimension (row-major order then maps row ``i`` to row ``i``,
whatever its target shape was computed from); a ``Transpose`` when ``perm[0] == 0``; a
``Concat``, ``Pack``, ``Split``, ``Unpack`` or ``Gather`` when it works on another axis; a
``Slice``/``StridedSlice`` when it takes axis 0 whole, with stride 1.
"""

from __future__ import annotations

import math
import re

from neuroncli.dynbatch.rules import mixing_operand, each_output, keeps_rows
from neuroncli.dynbatch.state import (
    CONST, CONST_STATE, ROWS, SAME_ROWS, SIZE, OpView, TensorState, normalize_axes,
)

_KEEP_ROWS = "moves the batch axis"


def reshape(view: OpView) -> list[TensorState] | str:
    """Data must be batched; the target shape may depend on the batch size (it is read as
    a shape, and every shard runs at the compiled size).  Row-major order keeps each batch
    element's values contiguous: the output keeps rows apart when its rows tile them."""
    if view.kind(0) != ROWS:
        return mixing_operand(view, (0,), (1,)) or "reshapes a constant by a batched shape"
    reason = mixing_operand(view, (0,), (1,))
    if reason:
        return reason
    src, dst = view.in_shapes[0], view.out_shapes[0] if view.out_shapes else None
    if not src or not dst or None in src or None in dst:
        return f"reshapes {src} to {dst}, which leaves no batch axis"
    per_element = view.states[0].group * math.prod(src[1:])
    row = math.prod(dst[1:])
    if row == 0 or per_element % row:
        return f"merges rows of different batch elements: {src} -> {dst}"
    return each_output(view, TensorState(ROWS, group=per_element // row))


def squeeze(view: OpView) -> list[TensorState] | str:
    rank, shape = view.rank(0), view.in_shapes[0]
    dims = normalize_axes(view.attr_ints("squeeze_dims"), rank or 0)
    if rank is None or dims is None or shape is None:
        return "squeezes unknown axes"
    if 0 in dims or (not dims and shape[0] == 1):
        return "squeezes the batch axis 0"
    return each_output(view, SAME_ROWS) if keeps_rows(view, 0) else _KEEP_ROWS


def expand_dims(view: OpView) -> list[TensorState] | str:
    axis, rank = view.ints(1), view.rank(0)
    if axis is None or rank is None or len(axis) != 1:
        return "inserts an axis that is not constant"
    if normalize_axes(axis, rank + 1) in (None, [0]):
        return "inserts an axis before the batch axis"
    return mixing_operand(view, (0,)) or each_output(view, SAME_ROWS)


def transpose(view: OpView) -> list[TensorState] | str:
    perm = view.ints(1)
    if view.kind(0) != ROWS or not perm:
        return mixing_operand(view, (0,)) or "transposes by a permutation that is not constant"
    if perm[0] != 0:
        return f"transposes the batch axis away (perm {perm})"
    return each_output(view, SAME_ROWS)


def concat(view: OpView) -> list[TensorState] | str:
    """ConcatV2 (axis last) and Concat (axis first): every piece batched, axis not 0."""
    axis_at = 0 if view.node.op == "Concat" else len(view.states) - 1
    pieces = [i for i in range(len(view.states)) if i != axis_at]
    axis, rank = view.ints(axis_at), view.rank(pieces[0]) if pieces else None
    if axis is None or rank is None:
        return "concatenates along an axis that is not constant"
    if normalize_axes(axis, rank) in (None, [0]):
        return "concatenates along the batch axis 0"
    for i in pieces:
        if view.kind(i) != ROWS:
            return f"concatenates each row with operand {i}, which is not batched"
    return each_output(view, SAME_ROWS)


def pack(view: OpView) -> list[TensorState] | str:
    rank = view.rank(0)
    if rank is None or normalize_axes([view.attr_int("axis")], rank + 1) in (None, [0]):
        return "stacks along the batch axis 0"
    if any(view.kind(i) != ROWS for i in range(len(view.states))):
        return "stacks batched and unbatched tensors"
    return each_output(view, SAME_ROWS)


def unpack(view: OpView) -> list[TensorState] | str:
    rank = view.rank(0)
    if rank is None or normalize_axes([view.attr_int("axis")], rank) in (None, [0]):
        return "unstacks along the batch axis 0"
    return each_output(view, SAME_ROWS)


def split(view: OpView) -> list[TensorState] | str:
    """Split (axis first, data second) and SplitV (data, sizes, axis)."""
    data, axis_at = (1, 0) if view.node.op == "Split" else (0, 2)
    axis, rank = view.ints(axis_at), view.rank(data)
    if view.kind(data) != ROWS or axis is None or rank is None:
        return mixing_operand(view, (data,)) or "splits along an axis that is not constant"
    if normalize_axes(axis, rank) in (None, [0]):
        return "splits along the batch axis 0"
    return mixing_operand(view, (data,)) or each_output(view, SAME_ROWS)


def slice_(view: OpView) -> list[TensorState] | str:
    """A slice of the full leading dimension must start at 0: shapes say it all."""
    if view.kind(0) != ROWS:
        return mixing_operand(view, (0,), (1, 2)) or "slices a constant at batched offsets"
    if not keeps_rows(view, 0):
        return "slices the batch axis 0"
    return mixing_operand(view, (0,), (1, 2)) or each_output(view, SAME_ROWS)


def strided_slice(view: OpView) -> list[TensorState] | str:
    if view.kind(0) != ROWS:
        return mixing_operand(view, (0,), (1, 2)) or "slices a constant at batched offsets"
    spec = _axis0_spec(view)
    if isinstance(spec, str):
        return spec
    strides = view.ints(3)
    if spec >= 0 and (strides is None or spec >= len(strides) or strides[spec] != 1):
        return "slices the batch axis 0 with a stride that is not 1"
    if not keeps_rows(view, 0):
        return "slices the batch axis 0"
    return mixing_operand(view, (0,), (1, 2)) or each_output(view, SAME_ROWS)


def _axis0_spec(view: OpView) -> int | str:
    """The slice spec that applies to input axis 0 (-1: axis 0 is taken whole, by an
    ellipsis or by no spec at all), or a reason if output axis 0 is not input axis 0."""
    begin, rank = view.ints(1), view.rank(0)
    count = len(begin) if begin is not None else (view.in_shapes[1] or (None,))[0]
    if rank is None or count is None:
        return "slices with a spec of unknown length"
    new_axis, ellipsis, shrink = (view.attr_int(k) for k in
                                  ("new_axis_mask", "ellipsis_mask", "shrink_axis_mask"))
    real = sum(1 for i in range(count) if not (new_axis >> i) & 1 and not (ellipsis >> i) & 1)
    for i in range(count):
        if (ellipsis >> i) & 1:
            if rank - real >= 1:
                return -1
            continue
        if (new_axis >> i) & 1:
            return "inserts an axis before the batch axis"
        if (shrink >> i) & 1:
            return "takes a single row of the batch axis 0"
        return i
    return -1


def tile(view: OpView) -> list[TensorState] | str:
    multiples = view.ints(1)
    if view.kind(0) != ROWS or not multiples:
        return mixing_operand(view, (0,)) or "tiles by multiples that are not constant"
    if multiples[0] != 1:
        return "repeats the batch axis 0"
    return each_output(view, SAME_ROWS)


def broadcast_to(view: OpView) -> list[TensorState] | str:
    out = view.out_shapes[0] if view.out_shapes else None
    if view.kind(0) != ROWS or out is None or view.rank(0) != len(out):
        return mixing_operand(view, (0,), (1,)) or "broadcasts the batch axis"
    return (mixing_operand(view, (0,), (1,)) or each_output(view, SAME_ROWS)) if keeps_rows(view, 0) \
        else "broadcasts the batch axis"


def one_hot(view: OpView) -> list[TensorState] | str:
    rank = view.rank(0)
    axis = view.attr_int("axis", -1)
    if view.kind(0) != ROWS or rank is None or rank < 1 or axis == 0:
        return mixing_operand(view, (0,)) or "puts the one-hot axis first"
    return mixing_operand(view, (0,)) or each_output(view, SAME_ROWS)


def gather(view: OpView) -> list[TensorState] | str:
    """Gather/ResourceGather (axis 0) and GatherV2: batched indices into constant params
    along axis 0 (an embedding lookup), or batched params along another axis."""
    if view.node.op == "GatherV2":  # Gather and ResourceGather (a rank-0 handle): axis 0
        axis, params_rank = view.ints(2), view.rank(0)
        if axis is None or params_rank is None or len(axis) != 1:
            return "gathers along an axis that is not constant"
        axis = normalize_axes(axis, params_rank) or [-1]
    else:
        axis = [0]
    batch_dims = view.attr_int("batch_dims")
    if view.kind(0) == ROWS:
        if axis[0] == 0:
            return "gathers along the batch axis 0"
        if view.kind(1) == ROWS and batch_dims < 1:
            return "gathers rows with batched indices across the batch"
        if view.kind(1) == SIZE:
            return "gathers with batch-size-dependent indices"
        if view.kind(1) == CONST and batch_dims >= 1:
            return "gathers each row by a row of constant indices (batch_dims)"
        return each_output(view, SAME_ROWS)
    if view.kind(1) == ROWS and view.kind(0) == CONST and axis[0] == 0 and batch_dims == 0:
        return each_output(view, SAME_ROWS)
    return "gathers batched indices along an inner axis"


def shape_of(view: OpView) -> list[TensorState] | str:
    """Shape, ShapeN, Size of a batched tensor: its value is the batch size, not row data."""
    cause = f"{view.node.op} {view.node.name!r} reads the batch size"
    return each_output(view, TensorState(SIZE, cause))


def rank_of(view: OpView) -> list[TensorState] | str:
    return each_output(view, CONST_STATE)


_EINSUM = re.compile(r"^([a-zA-Z.,]+)->([a-zA-Z.]*)$")


def einsum(view: OpView) -> list[TensorState] | str:
    """The batched operands' first subscript must lead the output and appear in no
    constant operand (no ellipsis at the front)."""
    match = _EINSUM.match(view.node.attrs["equation"].s.decode().replace(" ", "")) \
        if "equation" in view.node.attrs else None
    if match is None:
        return "has an equation this analysis does not read"
    terms, result = match.group(1).split(","), match.group(2)
    if len(terms) != len(view.states):
        return "has an equation that does not match its operands"
    batched = {t[:1] for t, s in zip(terms, view.states) if s.kind == ROWS}
    if len(batched) != 1 or not result or result[0] not in batched or "." in batched:
        return "contracts or moves the batch subscript"
    letter = result[0]
    for term, state in zip(terms, view.states):
        if state.kind == ROWS and term.count(letter) != 1:
            return "takes a diagonal over the batch subscript"
        if state.kind == SIZE or (state.kind == CONST and letter in term):
            return "pairs the batch subscript with an operand that is not batched"
    return each_output(view, SAME_ROWS)
