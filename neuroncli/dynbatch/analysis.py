"""Propagate row-independence through a shaped graph and decide each segment's batch axes.

:func:`analyze_rows` walks the graph once in topological order.  Signature inputs chosen as
batch sources start as ``rows``; ops without inputs are ``const``.  For every other op:

1. a ``mixed`` input makes every output ``mixed``, with the same cause (the first op that
   mixed rows is what the report names);
2. only ``const`` inputs: ``const``; only ``const``/``size`` inputs: ``size``;
3. otherwise the op's rule (:mod:`~neuroncli.dynbatch.rules`,
   :mod:`~neuroncli.dynbatch.reshaping`) decides; an op without a rule mixes rows.

:func:`segment_verdict` turns the states at a segment's boundary into its batch axes: dynamic
when every input and output is ``rows`` or ``const``, at least one input is ``rows``, and every
``rows`` tensor has the compiled batch as its leading dimension.  Protobuf only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from neuroncli.dynbatch import reshaping as rs
from neuroncli.dynbatch import rules as r
from neuroncli.dynbatch.state import (
    CONST, CONST_STATE, MIXED, ROWS, ROWS_STATE, SIZE, OpView, TensorState, describe,
)
from neuroncli.dynbatch.values import IntFolder
from neuroncli.graph import Graph, Node, split_tensor

RULES: dict[str, r.Rule] = {
    **{op: r.unary for op in r.UNARY}, **{op: r.elementwise for op in r.BROADCASTING},
    **{op: r.reduction for op in r.REDUCTIONS}, **{op: r.spatial for op in r.SPATIAL},
    **{op: r.batch_norm for op in r.BATCH_NORMS},
    "Select": r.elementwise, "IdentityN": r.identity_n, "Softmax": r.last_axis,
    "LogSoftmax": r.last_axis, "TopKV2": r.last_axis, "Cumsum": r.cumulative,
    "Cumprod": r.cumulative, "Pad": r.pad, "PadV2": r.pad, "MirrorPad": r.pad,
    "MatMul": r.matmul, "BatchMatMul": r.batch_matmul, "BatchMatMulV2": r.batch_matmul,
    "BatchMatMulV3": r.batch_matmul, "Einsum": rs.einsum, "Reshape": rs.reshape,
    "Squeeze": rs.squeeze, "ExpandDims": rs.expand_dims, "Transpose": rs.transpose,
    "ConcatV2": rs.concat, "Concat": rs.concat, "Pack": rs.pack, "Unpack": rs.unpack,
    "Split": rs.split, "SplitV": rs.split, "Slice": rs.slice_,
    "StridedSlice": rs.strided_slice, "Tile": rs.tile, "BroadcastTo": rs.broadcast_to,
    "OneHot": rs.one_hot, "Gather": rs.gather, "GatherV2": rs.gather,
    "ResourceGather": rs.gather, "Shape": rs.shape_of, "ShapeN": rs.shape_of,
    "Size": rs.shape_of, "Rank": rs.rank_of,
}


@dataclass(frozen=True)
class RowStates:
    """The state of every tensor of a graph (by node, one per output port)."""

    by_node: dict[str, list[TensorState]]

    def of(self, ref: str) -> TensorState:
        name, port = split_tensor(ref)
        states = self.by_node.get(name)
        if not states:
            return CONST_STATE
        return states[port] if port < len(states) else states[-1]


@dataclass(frozen=True)
class BatchVerdict:
    """A segment's batch axes: 0 (batch along axis 0) or -1 (fixed) per input and output.

    dynamic: any batch runs, as shards of the compiled batch.  reason: why not, when static.
    """

    dynamic: bool
    input_batch_axis: tuple[int, ...]
    output_batch_axis: tuple[int, ...]
    reason: str = ""


def analyze_rows(graph: Graph, batch_sources: Iterable[str]) -> RowStates:
    """States of every tensor; ``batch_sources``: refs (``node:port``) of batched inputs."""
    sources = {f"{name}:{port}" for name, port in map(split_tensor, batch_sources)}
    states = RowStates({})
    folder = IntFolder(graph)
    for node in graph.topological_order():
        states.by_node[node.name] = _node_states(graph, node, states, sources, folder)
    return states


def _node_states(graph: Graph, node: Node, states: RowStates, sources: set[str],
                 folder: IntFolder) -> list[TensorState]:
    count = max(1, len(node.output_shapes or ()))
    if not node.inputs:
        return [ROWS_STATE if f"{node.name}:{p}" in sources else CONST_STATE
                for p in range(count)]
    inputs = tuple(states.of(ref) for ref in node.inputs)
    mixed = next((s for s in inputs if s.kind == MIXED), None)
    if mixed is not None:
        return [mixed] * count
    if all(s.kind == CONST for s in inputs):
        return [CONST_STATE] * count
    if not any(s.kind == ROWS for s in inputs):
        return [next(s for s in inputs if s.kind == SIZE)] * count
    rule = RULES.get(node.op)
    if rule is None:
        return [TensorState(MIXED, describe(node, "is not known to keep batch rows "
                                                  "independent"))] * count
    view = OpView(node=node, states=inputs,
                  in_shapes=tuple(graph.tensor_shape(ref) for ref in node.inputs),
                  out_shapes=tuple(node.output_shapes or ()),
                  ints=lambda i: folder.ints(node.inputs[i]) if i < len(node.inputs)
                  else None)
    result = rule(view)
    if isinstance(result, str):
        return [TensorState(MIXED, describe(node, result))] * count
    group = next(s.group for s in inputs if s.kind == ROWS)
    result = [TensorState(ROWS, group=group) if s.kind == ROWS and s.group == 0 else s
              for s in result]
    return (result + [result[-1]] * count)[:count] if result else [CONST_STATE] * count


def segment_verdict(states: RowStates, input_refs: Sequence[str],
                    output_refs: Sequence[str], shapes: Sequence[tuple | None],
                    batch_size: int) -> BatchVerdict:
    """The batch axes of one segment.  ``shapes``: of the inputs then the outputs."""
    ins = [states.of(ref) for ref in input_refs]
    outs = [states.of(ref) for ref in output_refs]
    static = BatchVerdict(False, (-1,) * len(ins), (-1,) * len(outs))
    refs = [*input_refs, *output_refs]
    for kind, ref, state in [("input", x, s) for x, s in zip(input_refs, ins)] + \
            [("output", x, s) for x, s in zip(output_refs, outs)]:
        if state.kind == MIXED:
            return _static(static, state.cause)
        if state.kind == SIZE:
            return _static(static, f"its {kind} {ref} depends on the batch size "
                                   f"({state.cause})")
    if not any(s.kind == ROWS for s in ins):
        return _static(static, "no input carries a batch axis (a signature input with an "
                               "unknown leading dimension)")
    for ref, state, shape in zip(refs, [*ins, *outs], shapes):
        if state.kind == ROWS and state.group != 1:
            return _static(static, f"tensor {ref} holds {state.group} rows per batch "
                                   "element (a reshape merged the batch axis)")
        if state.kind == ROWS and (not shape or shape[0] != batch_size):
            return _static(static, f"tensor {ref} has leading dimension "
                                   f"{shape[0] if shape else None}, not the batch "
                                   f"{batch_size}")
    return BatchVerdict(True, tuple(0 if s.kind == ROWS else -1 for s in ins),
                        tuple(0 if s.kind == ROWS else -1 for s in outs))


def _static(verdict: BatchVerdict, reason: str) -> BatchVerdict:
    return BatchVerdict(False, verdict.input_batch_axis, verdict.output_batch_axis, reason)
