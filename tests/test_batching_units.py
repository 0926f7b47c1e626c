"""``neuroncli.runtime.batching`` in process: the exact shard plans, padding, merging and
messages (``make mutate`` sees these; the end-to-end numerics live in test_runtime_dynamic)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neuroncli.errors import UserError
from neuroncli.format.executable import BATCH_NOTE
from neuroncli.runtime import batching
from neuroncli.runtime.batching import Batching
from tests.test_runtime_units import program

DYNAMIC = program(shapes=((2, 3), (4,)), axes=(0, -1))  # batch 2 on input 0; input 1 fixed


def _static(reason: str, mode: str = "static") -> object:
    fixed = program(shapes=((2, 3),), axes=(-1,))
    header = dataclasses.replace(fixed.header, extra={BATCH_NOTE: {"mode": mode,
                                                                   "reason": reason}})
    return dataclasses.replace(fixed, header=header)


def _message(prog: object, arrays: list, names: dict | None = None) -> str:
    with pytest.raises(UserError) as caught:
        batching.check(prog, arrays, names or {})
    return str(caught.value)


def test_fmt_shape() -> None:
    assert [batching.fmt_shape(s) for s in (None, (3,), (None, 4), ())] == \
        ["(unknown rank)", "(3,)", "(?, 4)", "()"]


@pytest.mark.parametrize("rows, expected", [(5, Batching(5, 3, 2)), (2, Batching(2, 1, 2)),
                                            (1, Batching(1, 1, 2)), (0, Batching(0, 1, 2))])
def test_shard_plans(rows: int, expected: Batching) -> None:
    assert batching.check(DYNAMIC, [np.zeros((rows, 3)), np.zeros(4)], {}) == expected


def test_no_batch_axis_or_no_compiled_batch_is_one_whole_run() -> None:
    fixed = program(shapes=((2, 3),), axes=(-1,))
    assert batching.check(fixed, [np.zeros((2, 3))], {}) == Batching(None, 1, None)
    unbatched = program(shapes=((0, 3),), axes=(0,))  # batch axis, compiled batch 0
    assert batching.check(unbatched, [np.zeros((5, 3))], {}) == Batching(None, 1, 0)


def test_shape_messages_name_the_input() -> None:
    assert _message(DYNAMIC, [np.zeros((5, 2)), np.zeros(4)], {"x0:0": "images"}) == (
        "input 'images' (NeuronOp op input 0) has shape (5, 2) but the program expects "
        "(?, 3) (any batch): reshape the input")
    assert _message(DYNAMIC, [np.zeros((5, 3)), np.zeros(5)]) == (
        "NeuronOp op input 1 has shape (5,) but the program was compiled for exactly (4,): "
        "pass that shape, or recompile with NEURON_CC_FLAGS=--dynamic-batch-size to accept "
        "other batch sizes")
    two = program(shapes=((2, 3), (2, 1)), axes=(0, 0))
    assert _message(two, [np.zeros((5, 3)), np.zeros((4, 1))]) == (
        "inputs disagree on the batch size: NeuronOp op input 0 has 5 rows but NeuronOp op "
        "input 1 has 4: pass the same number of rows to every input")


@pytest.mark.parametrize("mode, reason, why", [
    ("static", "Reshape r", " (NeuronOp op has a static batch: Reshape r)"),
    ("static", "", ""), ("auto", "Reshape r", ""), ("forced", "", "")])
def test_a_fixed_shape_says_why_the_batch_is_static(mode: str, reason: str, why: str) -> None:
    assert _message(_static(reason, mode), [np.zeros((5, 3))]) == (
        f"NeuronOp op input 0 has shape (5, 3) but the program was compiled for exactly "
        f"(2, 3){why}: pass that shape, or recompile with NEURON_CC_FLAGS=--dynamic-batch-size "
        "to accept other batch sizes")


def test_split_pads_the_last_shard_and_passes_fixed_inputs_whole() -> None:
    rows = np.arange(15, dtype=np.float32).reshape(5, 3)
    fixed = np.ones(4, dtype=np.float32)
    plan = batching.check(DYNAMIC, [rows, fixed], {})
    shards = batching.split(DYNAMIC, [rows, fixed], plan)
    assert len(shards) == 3
    for i, (part, whole) in enumerate(shards):
        assert whole is fixed
        assert part.shape == (2, 3) and part.dtype == np.float32
        padded = np.vstack([rows, np.zeros((1, 3))])
        np.testing.assert_array_equal(part, padded[2 * i:2 * i + 2])
    exact_plan = batching.check(DYNAMIC, [rows[:2], fixed], {})
    exact = batching.split(DYNAMIC, [rows[:2], fixed], exact_plan)
    assert len(exact) == 1 and exact[0][0].shape == (2, 3)
    two = rows[:2].copy()
    whole = batching.split(DYNAMIC, [two, fixed], Batching(2, 1, 2))
    assert whole[0][0] is two and whole[0][1] is fixed  # the exact batch: passed as given
    five = np.zeros((5, 3))
    unbatched = program(shapes=((0, 3),), axes=(0,))
    assert batching.split(unbatched, [five], Batching(None, 1, 0))[0][0] is five
    one_row = batching.split(DYNAMIC, [rows[:1], fixed], Batching(1, 1, 2))
    assert one_row[0][0].shape == (2, 3)  # one shard but fewer rows: still padded


def test_string_rows_are_padded_with_empty_strings() -> None:
    strings = program(shapes=((2,),), axes=(0,))
    data = np.array([b"a", b"b", b"c"], dtype=object)
    shards = batching.split(strings, [data], Batching(3, 2, 2))
    assert [list(s[0]) for s in shards] == [[b"a", b"b"], [b"c", b""]]
    assert shards[1][0].dtype == object


def test_merge_concatenates_cuts_and_takes_fixed_outputs_from_the_first_shard() -> None:
    two_out = dataclasses.replace(DYNAMIC, output_batch_axis=(0, -1),
                                  output_shapes=((2, 1), (4,)))
    results = [[np.full((2, 1), i), np.full(4, 10 + i)] for i in range(3)]
    merged = batching.merge(two_out, results, Batching(5, 3, 2))
    np.testing.assert_array_equal(merged[0], [[0], [0], [1], [1], [2]])
    np.testing.assert_array_equal(merged[1], np.full(4, 10))
    assert batching.merge(two_out, results[:1], Batching(2, 1, 2))[0] is results[0][0]
    assert batching.merge(two_out, results[:1], Batching(None, 1, 0))[0] is results[0][0]
    fixed_first = dataclasses.replace(DYNAMIC, output_batch_axis=(-1, 0),
                                      output_shapes=((4,), (2, 1)))
    swapped = [[r[1], r[0]] for r in results]
    merged = batching.merge(fixed_first, swapped, Batching(5, 3, 2))
    np.testing.assert_array_equal(merged[0], np.full(4, 10))
    np.testing.assert_array_equal(merged[1], [[0], [0], [1], [1], [2]])
    padded = batching.merge(two_out, [results[1]], Batching(1, 1, 2))
    assert padded[0].shape == (1, 1)
    assert batching.merge(two_out, [results[2]], Batching(None, 1, None))[0] is results[2][0]


def test_empty_outputs_have_zero_rows() -> None:
    prog = dataclasses.replace(DYNAMIC, output_shapes=((None, 3), (2, 5), None, (), (2, None),
                                                       (4, 3)),
                               output_batch_axis=(0, -1, 0, 0, -1, 0))
    outs = batching.empty_outputs(prog, [np.float32, np.int32, np.float64, np.int64, np.int8,
                                         np.uint8])
    assert [(o.shape, o.dtype) for o in outs] == [
        ((0, 3), np.float32), ((2, 5), np.int32), ((), np.float64), ((), np.int64),
        ((2, 0), np.int8), ((0, 3), np.uint8)]
