"""Helpers shared by the runtime and verify tests (this module holds no tests).

* :func:`compile_model` compiles a SavedModel with the real compiler.
* :func:`edit_neuron_ops` copies a compiled model and edits its NeuronOp nodes in place
  (placement attributes, a tampered executable), writing a new ``saved_model.pb``.
* :func:`tamper_weight` changes the largest floating-point constant the compiled model's
  programs compute with: inside the executable payload when the compiler put one there, else
  the largest constant of the compiled graph (weights the partitioner left on the CPU side).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from neuroncli import proto
from neuroncli.format import executable as exe
from neuroncli.format.neuron_op import NEURON_OP
from neuroncli.savedmodel import read_saved_model, write_saved_model


def compile_model(src: Path, dst: Path, batch_size: int = 2,
                  compiler_args: str | None = None) -> Path:
    import neuroncli.saved_model
    neuroncli.saved_model.compile(src, dst, batch_size=batch_size,
                                  compiler_args=compiler_args)
    return dst


def _rewrite(src: Path, dst: Path, edit: Callable[[Any], None]) -> Path:
    shutil.copytree(src, dst)
    saved_model = read_saved_model(dst).saved_model
    edit(saved_model.meta_graphs[0].graph_def)
    write_saved_model(str(dst), saved_model)
    return dst


def edit_neuron_ops(src: Path, dst: Path, edit: Callable[[Any], None]) -> Path:
    """Copy ``src`` to ``dst`` with ``edit(node)`` applied to every NeuronOp node."""
    def apply(graph_def: Any) -> None:
        for node in graph_def.node:
            if node.op == NEURON_OP:
                edit(node)
    return _rewrite(src, dst, apply)


def set_int_attrs(src: Path, dst: Path, **attrs: int) -> Path:
    """E.g. ``_automatic_multicore=3``: keys are attribute names without the leading ``_``
    replaced, so pass ``{"_automatic_multicore": 3}`` through ``**``."""
    def edit(node: Any) -> None:
        for key, value in attrs.items():
            node.attr[key].i = value
    return edit_neuron_ops(src, dst, edit)


def _largest_float_const(graph_def: Any) -> Any:
    best = None
    for node in graph_def.node:
        if node.op != "Const" or node.attr["dtype"].type != 1:
            continue
        size = len(node.attr["value"].tensor.tensor_content)
        if size and (best is None or size > len(best.attr["value"].tensor.tensor_content)):
            best = node
    return best


def _bump(node: Any) -> None:
    # Random noise, not a constant shift: softmax ignores a shift shared by all logits.
    tensor = node.attr["value"].tensor
    values = np.frombuffer(tensor.tensor_content, np.float32)
    noise = np.random.default_rng(0).standard_normal(values.shape)
    tensor.tensor_content = (values + noise).astype(np.float32).tobytes()


def tamper_weight(src: Path, dst: Path) -> Path:
    """Add noise to every element of one weight, re-packing the executable with a matching
    digest: only the numbers can tell."""
    def apply(graph_def: Any) -> None:
        for node in graph_def.node:
            if node.op != NEURON_OP:
                continue
            header, payload = exe.unpack(node.attr["executable"].s)
            inner = proto.GraphDef.FromString(payload)
            weight = _largest_float_const(inner)
            if weight is None:
                continue
            _bump(weight)
            node.attr["executable"].s = exe.pack(header,
                                                 inner.SerializeToString(deterministic=True))
            return
        outer = _largest_float_const(graph_def)  # weights left on the CPU side
        assert outer is not None, "no weight to tamper with"
        _bump(outer)
    return _rewrite(src, dst, apply)


def payload_has_weights(model_dir: Path) -> bool:
    graph_def = read_saved_model(model_dir).saved_model.meta_graphs[0].graph_def
    for node in graph_def.node:
        if node.op == NEURON_OP:
            _, payload = exe.unpack(node.attr["executable"].s)
            if _largest_float_const(proto.GraphDef.FromString(payload)) is not None:
                return True
    return False


def corrupt_checksum(src: Path, dst: Path) -> Path:
    """Flip one payload byte of every executable, leaving the recorded digest alone."""
    def edit(node: Any) -> None:
        blob = bytearray(node.attr["executable"].s)
        blob[-1] ^= 0xFF
        node.attr["executable"].s = bytes(blob)
    return edit_neuron_ops(src, dst, edit)
