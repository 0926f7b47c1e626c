"""The row-independence analysis on small hand-built graphs (protobuf only, no TensorFlow).

Each case: a signature input ``x`` (batch 2 unless said otherwise), a few ops, and the
verdict for a segment holding every op: dynamic, or static naming the op that mixed rows.

    x[2,6,4] --op--> ... --> out
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroncli import proto
from neuroncli.dynbatch import analyze_rows, segment_verdict
from neuroncli.graph import Graph, Node

F32, I32 = 1, 3


def _const(name: str, values: list | np.ndarray, dtype: int = I32) -> Node:
    array = np.asarray(values)
    tensor = proto.TensorProto(dtype=dtype)
    for dim in array.shape:
        tensor.tensor_shape.dim.add(size=dim)
    tensor.tensor_content = array.astype(np.int32 if dtype == I32 else np.float32).tobytes()
    return Node(name, "Const", attrs={"value": proto.AttrValue(tensor=tensor)},
                output_dtypes=[dtype], output_shapes=[array.shape])


def _op(name: str, op: str, inputs: list[str], shape: tuple | list, **attrs: object) -> Node:
    values = {}
    for key, value in attrs.items():
        if isinstance(value, bool):
            values[key] = proto.AttrValue(b=value)
        elif isinstance(value, int):
            values[key] = proto.AttrValue(i=value)
        elif isinstance(value, bytes):
            values[key] = proto.AttrValue(s=value)
        else:
            values[key] = proto.AttrValue(list=proto.AttrValue.ListValue(i=list(value)))
    shapes = shape if isinstance(shape, list) else [shape]
    return Node(name, op, [i if ":" in i else f"{i}:0" for i in inputs], attrs=values,
                output_dtypes=[F32] * len(shapes), output_shapes=[tuple(s) for s in shapes])


def _verdict(nodes: list[Node], x: tuple = (2, 6, 4), out: str | None = None) -> tuple:
    """The verdict for one segment with every node, its output the last non-Const node."""
    graph = Graph([Node("x", "Placeholder", output_dtypes=[F32], output_shapes=[x]), *nodes])
    states = analyze_rows(graph, ["x:0"])
    last = [n for n in nodes if n.op != "Const"][-1]
    result = out or f"{last.name}:0"
    verdict = segment_verdict(states, ["x:0"], [result],
                              [x, graph.tensor_shape(result)], batch_size=x[0])
    return verdict.dynamic, verdict.reason


def test_elementwise_and_weights_keep_rows() -> None:
    nodes = [_const("w", np.ones((4, 5)), F32),
             _op("r", "Reshape", ["x", "rs"], (12, 4)), _const("rs", [12, 4]),
             _op("mm", "MatMul", ["r", "w"], (12, 5)),
             _op("back", "Reshape", ["mm", "bs"], (2, 6, 5)), _const("bs", [2, 6, 5]),
             _const("b", np.ones(5), F32), _op("add", "BiasAdd", ["back", "b"], (2, 6, 5)),
             _op("sm", "Softmax", ["add"], (2, 6, 5)),
             _op("s", "Sum", ["sm", "ax"], (2, 5)), _const("ax", [1])]
    assert _verdict(nodes) == (True, "")


@pytest.mark.parametrize("nodes, reason", [
    ([_op("s", "Sum", ["x", "a"], (6, 4)), _const("a", [0])],
     "Sum 's' reduces over the batch axis 0"),
    ([_op("s", "Mean", ["x", "a"], (4,)), _const("a", [-3, 1])],
     "Mean 's' reduces over the batch axis 0"),
    ([_op("t", "Transpose", ["x", "p"], (6, 2, 4)), _const("p", [1, 0, 2])],
     "Transpose 't' transposes the batch axis away (perm [1, 0, 2])"),
    ([_op("r", "Reshape", ["x", "s"], (3, 16)), _const("s", [3, 16])],
     "Reshape 'r' merges rows of different batch elements: (2, 6, 4) -> (3, 16)"),
    ([_op("g", "GatherV2", ["x", "i", "a"], (1, 6, 4)), _const("i", [1]), _const("a", 0)],
     "GatherV2 'g' gathers along the batch axis 0"),
    ([_op("c", "ConcatV2", ["x", "x", "a"], (4, 6, 4)), _const("a", 0)],
     "ConcatV2 'c' concatenates along the batch axis 0"),
    ([_op("m", "BatchMatMulV2", ["x", "x"], (2, 6, 6), adj_y=True),
      _op("r", "Reshape", ["m", "s"], (2, 36)), _const("s", [2, 36]),
      _op("mm", "MatMul", ["r", "r"], (36, 36), transpose_a=True)],
     "MatMul 'mm' transposes its first operand (transpose_a): the batch becomes the "
     "contraction"),
    ([_op("sh", "Shape", ["x"], (3,)), _op("n", "StridedSlice", ["sh", "b", "e", "s"], (),
                                            shrink_axis_mask=1),
      _const("b", [0]), _const("e", [1]), _const("s", [1]),
      _op("rg", "Range", ["z", "n", "o"], (2,)), _const("z", 0), _const("o", 1),
      _op("c", "Cast", ["rg"], (2,)), _op("e2", "Reshape", ["c", "t"], (2, 1, 1)),
      _const("t", [2, 1, 1]), _op("add", "AddV2", ["x", "e2"], (2, 6, 4))],
     "AddV2 'add' uses a batch-size-dependent value as data (operand 1: Shape 'sh' reads "
     "the batch size)"),
    ([_op("u", "Unique", ["x"], (None,))],
     "Unique 'u' is not known to keep batch rows independent"),
])
def test_batch_mixing_ops_keep_it_static(nodes: list[Node], reason: str) -> None:
    assert _verdict(nodes) == (False, reason)


def test_computed_shapes_and_permutations_are_folded() -> None:
    """Keras' Dense on a sequence traced with an open batch: Tensordot computes its
    permutation and reshape targets from Shape; with the compiled shapes they are known."""
    nodes = [_op("sh", "Shape", ["x"], (3,)),
             _op("free", "GatherV2", ["sh", "fi", "ax0"], (2,)), _const("fi", [0, 1]),
             _const("ax0", 0), _op("pf", "Prod", ["free", "ax0v"], ()), _const("ax0v", [0]),
             _op("perm", "ConcatV2", ["p1", "p2", "ax0"], (3,)), _const("p1", [0, 1]),
             _const("p2", [2]), _op("t", "Transpose", ["x", "perm"], (2, 6, 4)),
             _op("tgt", "Pack", ["pf", "four"], (2,), axis=0), _const("four", 4),
             _op("r", "Reshape", ["t", "tgt"], (12, 4)),
             _const("w", np.ones((4, 3)), F32), _op("mm", "MatMul", ["r", "w"], (12, 3)),
             _op("o", "Reshape", ["mm", "os"], (2, 6, 3)), _const("os", [2, 6, 3])]
    assert _verdict(nodes) == (True, "")


def test_merged_rows_at_the_boundary_stay_static() -> None:
    nodes = [_op("r", "Reshape", ["x", "s"], (12, 4)), _const("s", [12, 4]),
             _op("relu", "Relu", ["r"], (12, 4))]
    assert _verdict(nodes) == (False, "tensor relu:0 holds 6 rows per batch element (a "
                                      "reshape merged the batch axis)")


def test_constant_with_a_batch_sized_leading_axis_is_not_broadcast_per_row() -> None:
    nodes = [_const("c", np.ones((2, 6, 4)), F32), _op("m", "Mul", ["x", "c"], (2, 6, 4))]
    dynamic, reason = _verdict(nodes)
    assert not dynamic and reason.startswith("Mul 'm' combines each row with row i of "
                                             "constant operand 1 (2, 6, 4)")
    ok = [_const("c", np.ones((1, 6, 4)), F32), _op("m", "Mul", ["x", "c"], (2, 6, 4))]
    assert _verdict(ok) == (True, "")


def test_weights_never_get_a_batch_axis_and_unbatched_inputs_stay_fixed() -> None:
    graph = Graph([Node("x", "Placeholder", output_dtypes=[F32], output_shapes=[(2, 4)]),
                   Node("h", "VarHandleOp"), _op("w", "ReadVariableOp", ["h"], (4, 3)),
                   Node("k", "Placeholder", output_dtypes=[F32], output_shapes=[(3,)]),
                   _op("mm", "MatMul", ["x", "w"], (2, 3)),
                   _op("add", "AddV2", ["mm", "k"], (2, 3))])
    states = analyze_rows(graph, ["x:0"])
    verdict = segment_verdict(states, ["x:0", "w:0", "k:0"], ["add:0"],
                              [(2, 4), (4, 3), (3,), (2, 3)], batch_size=2)
    assert verdict.dynamic
    assert (verdict.input_batch_axis, verdict.output_batch_axis) == ((0, -1, -1), (0,))


def test_segment_fed_from_a_mixing_cpu_op_is_static() -> None:
    graph = Graph([Node("x", "Placeholder", output_dtypes=[F32], output_shapes=[(2, 4)]),
                   _op("cum", "Cumsum", ["x", "a"], (2, 4)), _const("a", 0),
                   _op("relu", "Relu", ["cum"], (2, 4))])
    states = analyze_rows(graph, ["x:0"])
    verdict = segment_verdict(states, ["cum:0"], ["relu:0"], [(2, 4), (2, 4)], 2)
    assert (verdict.dynamic, verdict.reason) == (
        False, "Cumsum 'cum' accumulates over the batch axis 0")


def test_embedding_lookups_keep_rows() -> None:
    """Batched token ids gathered from a constant table (GatherV2 axis 0), or from a weight
    kept as a variable (ResourceGather on its handle, --extract-weights)."""
    table = [_const("table", np.ones((10, 3)), F32),
             _op("g", "GatherV2", ["table", "x", "a"], (2, 6, 3)), _const("a", 0)]
    assert _verdict(table, x=(2, 6)) == (True, "")
    handle = [Node("h", "VarHandleOp", output_shapes=[()]),
              _op("g", "ResourceGather", ["h", "x"], (2, 6, 3))]
    assert _verdict(handle, x=(2, 6)) == (True, "")
    rows = [_const("i", [[0], [1]]),
            _op("g", "GatherV2", ["x", "i", "a"], (2, 1), batch_dims=1), _const("a", 1)]
    assert _verdict(rows, x=(2, 6)) == (
        False, "GatherV2 'g' gathers each row by a row of constant indices (batch_dims)")
