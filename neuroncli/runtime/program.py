"""Read the ``NeuronOp`` nodes of a compiled graph into :class:`Program` records (no TF).

The runtime reads only what the compiler wrote, through :mod:`neuroncli.format`: the NeuronOp
attributes (shapes, dtypes, batch axes, ``model_config``, placement attributes) and the
executable, whose payload checksum is verified here so that a tampered or truncated program
fails loudly at load time.  The unoptimized ``graph_def`` attribute is never needed (and never
copied): the payload is what the simulated core executes.

A :class:`Program` keeps metadata only; the payloads are returned separately so the loader can
import them into TensorFlow once and drop the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from neuroncli.errors import UserError
from neuroncli.format import executable as exe
from neuroncli.format.neuron_op import (
    ATTR_AUTO_MULTICORE, ATTR_NC_COUNT, ATTR_START_NC, NEURON_OP, from_attrs,
)
from neuroncli.graph import split_tensor

Shape = tuple  # tuple[int | None, ...]


@dataclass(frozen=True)
class Program:
    """One NeuronOp of a compiled model.

    name: the NeuronOp node name.
    inputs: the outer tensors it reads (``node:port``), in order.
    input_dtypes / input_shapes / input_batch_axis: per input; shapes are the compiled
        (fixed) shapes; batch axis 0 means dynamic batch along axis 0, -1 a fixed shape.
    output_dtypes / output_shapes / output_batch_axis: the same per output.
    model_config: ``[global_cores, this_cores, max_duplicates, timeout_s(, engine)]``.
    header: the executable's header (batch size, pipeline cores, device bytes, names).
    auto_multicore / start_nc / nc_count: placement attributes, None when absent.
    """

    name: str
    inputs: tuple[str, ...]
    input_dtypes: tuple[int, ...]
    input_shapes: tuple[Shape, ...]
    input_batch_axis: tuple[int, ...]
    output_dtypes: tuple[int, ...]
    output_shapes: tuple[Shape, ...]
    output_batch_axis: tuple[int, ...]
    model_config: tuple[int, ...]
    header: exe.ExecutableHeader
    auto_multicore: int | None = None
    start_nc: int | None = None
    nc_count: int | None = None

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(f"{self.name}:{i}" for i in range(len(self.output_dtypes)))

    @property
    def digest(self) -> str:
        return self.header.payload_sha256

    @property
    def pipeline_cores(self) -> int:
        """Cores one copy spans: ``model_config[1]`` (the header's value as a fallback)."""
        if len(self.model_config) > 1 and self.model_config[1] > 0:
            return int(self.model_config[1])
        return max(1, int(self.header.pipeline_cores))

    @property
    def max_duplicates(self) -> int | None:
        if len(self.model_config) > 2 and self.model_config[2] > 0:
            return int(self.model_config[2])
        return None

    @property
    def device_bytes(self) -> int:
        return self.header.device_bytes

    @property
    def dynamic(self) -> bool:
        return any(axis == 0 for axis in self.input_batch_axis)

    @property
    def batch_size(self) -> int | None:
        """Compiled size of axis 0 of the batch-axis inputs (None without one)."""
        for shape, axis in zip(self.input_shapes, self.input_batch_axis):
            if axis == 0 and shape:
                return int(shape[0])
        return None


def _int_attr(attrs: Mapping[str, Any], key: str) -> int | None:
    return int(attrs[key].i) if key in attrs else None


def _axes(axes: tuple[int, ...], count: int, name: str, kind: str) -> tuple[int, ...]:
    if not axes:
        return (-1,) * count
    if len(axes) != count or any(a not in (-1, 0) for a in axes):
        raise UserError(f"NeuronOp {name}: {kind}_batch_axis {list(axes)} does not match its "
                        f"{count} {kind}s (each must be -1 or 0): recompile the model")
    return axes


def read_program(node: Any) -> tuple[Program, bytes]:
    """A NeuronOp ``NodeDef`` -> its :class:`Program` and verified payload bytes."""
    name = node.name
    attrs = {k: node.attr[k] for k in node.attr if k != "graph_def"}  # never copy the segment
    spec = from_attrs(attrs)
    if not spec.executable:
        raise UserError(f"NeuronOp {name} has no executable (it was never compiled): "
                        "recompile the model with neuron-compile")
    try:
        header, payload = exe.unpack(spec.executable)
    except exe.ExecutableError as exc:
        raise UserError(f"NeuronOp {name}: {exc}") from None
    inputs = tuple(_outer_ref(ref) for ref in node.input if not ref.startswith("^"))
    counts = {"inputs": len(inputs), "input_dtypes": len(spec.input_dtypes),
              "input_shapes": len(spec.input_shapes),
              "executable inputs": len(header.input_names)}
    outs = {"output_dtypes": len(spec.output_dtypes), "output_shapes": len(spec.output_shapes),
            "executable outputs": len(header.output_names)}
    for group in (counts, outs):
        if len(set(group.values())) != 1:
            detail = ", ".join(f"{k} {v}" for k, v in group.items())
            raise UserError(f"NeuronOp {name} is inconsistent ({detail}): recompile the model")
    for index, shape in enumerate(spec.input_shapes):
        if shape is None or any(d is None for d in shape):
            raise UserError(f"NeuronOp {name}: input {index} has no fixed compiled shape "
                            f"({shape}): recompile the model with a known batch size")
    return Program(
        name=name, inputs=inputs, input_dtypes=spec.input_dtypes,
        input_shapes=spec.input_shapes,
        input_batch_axis=_axes(spec.input_batch_axis, len(inputs), name, "input"),
        output_dtypes=spec.output_dtypes, output_shapes=spec.output_shapes,
        output_batch_axis=_axes(spec.output_batch_axis, len(spec.output_dtypes), name,
                                "output"),
        model_config=spec.model_config, header=header,
        auto_multicore=_int_attr(attrs, ATTR_AUTO_MULTICORE),
        start_nc=_int_attr(attrs, ATTR_START_NC), nc_count=_int_attr(attrs, ATTR_NC_COUNT),
    ), payload


def _outer_ref(ref: str) -> str:
    node, port = split_tensor(ref)
    return f"{node}:{port}"


def read_programs(graph_def: Any) -> tuple[list[Program], dict[str, bytes]]:
    """Every NeuronOp of the top-level graph, in graph order, and payloads by digest."""
    for function in graph_def.library.function:
        if any(node.op == NEURON_OP for node in function.node_def):
            raise UserError(f"NeuronOps inside library function {function.signature.name!r} "
                            "(AWS's TF2 layout) are not supported by the simulator: compile "
                            "the original model with neuron-compile")
    programs: list[Program] = []
    payloads: dict[str, bytes] = {}
    for node in graph_def.node:
        if node.op != NEURON_OP:
            continue
        program, payload = read_program(node)
        programs.append(program)
        payloads.setdefault(program.digest, payload)
    return programs, payloads
