"""Shapes at a NeuronOp's boundary: the fixed-shape check, and dynamic-batch sharding.

A program is compiled for fixed shapes.  For inputs with batch axis 0 (the compiler's
``--dynamic-batch-size``), a client batch B against a compiled batch k runs as ceil(B/k)
shards of k rows, the last zero-padded; the outputs with batch axis 0 are concatenated and cut
back to B rows.  Every batch-axis input must agree on B, and everything past axis 0 must match
the compiled shape exactly.  Inputs with batch axis -1 must match exactly and are passed whole
to every shard; their outputs are taken from the first shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from neuroncli.errors import UserError
from neuroncli.format.executable import batch_note
from neuroncli.runtime.program import Program


@dataclass(frozen=True)
class Batching:
    """How one call of a program is split.

    batch: the client batch B (None when the program has no batch-axis input).
    shards: how many executions run.
    compiled: the compiled batch k.
    """

    batch: int | None
    shards: int
    compiled: int | None


def fmt_shape(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "(unknown rank)"
    dims = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def _describe(program: Program, index: int, names: Mapping[str, str]) -> str:
    key = names.get(program.inputs[index])
    where = f"NeuronOp {program.name} input {index}"
    return f"input {key!r} ({where})" if key else where


def _why_static(program: Program) -> str:
    """Why the compiler kept this program's batch fixed, when it recorded it."""
    note = batch_note(program.header)
    if note is None or note.mode != "static" or not note.reason:
        return ""
    return f" (NeuronOp {program.name} has a static batch: {note.reason})"


def check(program: Program, arrays: Sequence[np.ndarray],
          names: Mapping[str, str]) -> Batching:
    """Validate the shapes of ``arrays`` against the program; ``names`` maps tensors to
    signature keys for messages."""
    batch: int | None = None
    first: str = ""
    for index, (array, want, axis) in enumerate(zip(arrays, program.input_shapes,
                                                    program.input_batch_axis)):
        got = tuple(array.shape)
        if axis == 0:
            if len(got) != len(want) or got[1:] != tuple(want[1:]):
                expected = fmt_shape((None, *want[1:]))
                raise UserError(f"{_describe(program, index, names)} has shape "
                                f"{fmt_shape(got)} but the program expects {expected} "
                                f"(any batch): reshape the input")
            if batch is None:
                batch, first = got[0], _describe(program, index, names)
            elif got[0] != batch:
                raise UserError(f"inputs disagree on the batch size: {first} has {batch} "
                                f"rows but {_describe(program, index, names)} has {got[0]}: "
                                "pass the same number of rows to every input")
        elif got != tuple(want):
            raise UserError(f"{_describe(program, index, names)} has shape {fmt_shape(got)} "
                            f"but the program was compiled for exactly {fmt_shape(want)}"
                            f"{_why_static(program)}: pass that shape, or recompile with "
                            "NEURON_CC_FLAGS=--dynamic-batch-size to accept other batch sizes")
    compiled = program.batch_size
    if batch is None or not compiled:
        return Batching(None, 1, compiled)
    return Batching(batch, max(1, -(-batch // compiled)), compiled)


def split(program: Program, arrays: Sequence[np.ndarray],
          plan: Batching) -> list[list[np.ndarray]]:
    """The per-shard inputs: k rows each, the last padded with zeros."""
    if plan.batch is None or (plan.shards == 1 and plan.batch == plan.compiled):
        return [list(arrays)]
    k = int(plan.compiled or 1)
    shards: list[list[np.ndarray]] = []
    for shard in range(plan.shards):
        rows = slice(shard * k, (shard + 1) * k)
        shards.append([_rows(a, rows, k) if axis == 0 else a
                       for a, axis in zip(arrays, program.input_batch_axis)])
    return shards


def _rows(array: np.ndarray, rows: slice, k: int) -> np.ndarray:
    part = array[rows]
    if part.shape[0] == k:
        return np.ascontiguousarray(part)
    padded = np.zeros((k, *array.shape[1:]), dtype=array.dtype)
    if array.dtype == object:
        padded[...] = b""
    padded[:part.shape[0]] = part
    return padded


def merge(program: Program, results: Sequence[Sequence[np.ndarray]],
          plan: Batching) -> list[np.ndarray]:
    """Join the shards' outputs and drop the padding rows."""
    if plan.batch is None or (plan.shards == 1 and plan.batch == plan.compiled):
        return list(results[0])
    merged: list[np.ndarray] = []
    for index, axis in enumerate(program.output_batch_axis):
        if axis != 0:
            merged.append(results[0][index])
            continue
        parts = [shard[index] for shard in results]
        merged.append(np.concatenate(parts, axis=0)[:plan.batch])
    return merged


def empty_outputs(program: Program, host_dtype: Sequence[np.dtype]) -> list[np.ndarray]:
    """Outputs of a zero-row batch, without running anything."""
    outs = []
    for shape, axis, dtype in zip(program.output_shapes, program.output_batch_axis, host_dtype):
        dims = tuple(0 if d is None else d for d in (shape or ()))
        if axis == 0 and dims:
            dims = (0, *dims[1:])
        outs.append(np.zeros(dims, dtype=dtype))
    return outs
