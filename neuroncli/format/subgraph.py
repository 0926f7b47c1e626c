"""A compiled NeuronOp's two views of its segment: the light ``graph_def`` and the program.

AWS erases large constants from the ``graph_def`` attribute of every *compiled* NeuronOp
(``erase_large_constants``, after CPU fallback is settled), so a compiled model holds each
weight once, in the executable.  We do the same: :func:`erase_large_constants` keeps every node
of the segment, with its attributes, and every ``Const``'s ``dtype`` and ``tensor_shape``, but
clears the values of a ``Const`` whose ``NodeDef`` serializes to more than
:data:`LARGE_CONSTANT_BYTES` (AWS's test and threshold: shape constants, axes and scalars stay
readable).  ``neuron-inspect``, operator counts and the TensorBoard view need only the
structure.  An erased ``Const`` imported into TensorFlow would read as zeros, so whatever needs
the numbers (the runtime, expanding a NeuronOp back into its nodes, verification) reads the
segment from the program with :func:`full_subgraph`.  Protobuf only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuroncli import proto
from neuroncli.proto.dtypes import dtype_size
from neuroncli.format import executable as exe
from neuroncli.format.neuron_op import NeuronOpSpec

#: A ``Const`` whose ``NodeDef`` is larger than this loses its values (AWS's default).
LARGE_CONSTANT_BYTES = 1024
#: What an erased ``TensorProto`` keeps; every other field (the values) is dropped.
_KEPT_TENSOR_FIELDS = ("dtype", "tensor_shape", "version_number")


class SubgraphError(ValueError):
    """A NeuronOp whose full segment cannot be recovered."""


@dataclass(frozen=True)
class Subgraph:
    """A NeuronOp's segment with every value: the GraphDef and its boundary tensor names."""

    graph_def: Any
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


def is_large_constant(node: Any) -> bool:
    return node.op == "Const" and node.ByteSize() > LARGE_CONSTANT_BYTES


def erase_large_constants(graph_def: Any) -> Any:
    """A copy of ``graph_def`` whose large ``Const`` nodes keep dtype and shape, not values.

    Built node by node, so the weights are never copied (a ``CopyFrom`` of a ResNet50
    segment would copy 100 MB only to clear it)."""
    light = proto.GraphDef()
    for field in ("versions", "library"):
        if graph_def.HasField(field):
            getattr(light, field).CopyFrom(getattr(graph_def, field))
    for node in graph_def.node:
        if is_large_constant(node):
            _erased_copy(node, light.node.add())
        else:
            light.node.add().CopyFrom(node)
    return light


def _erased_copy(node: Any, out: Any) -> None:
    out.name, out.op, out.device = node.name, node.op, node.device
    out.input.extend(node.input)
    for field in ("experimental_debug_info", "experimental_type"):
        if node.HasField(field):
            getattr(out, field).CopyFrom(getattr(node, field))
    for key in node.attr:
        if key != "value":
            out.attr[key].CopyFrom(node.attr[key])
    tensor, value = node.attr["value"].tensor, out.attr["value"].tensor
    for field in _KEPT_TENSOR_FIELDS:
        if field == "tensor_shape":
            value.tensor_shape.CopyFrom(tensor.tensor_shape)
        else:
            setattr(value, field, getattr(tensor, field))


def _may_be_erased(graph_def: Any) -> bool:
    """Whether some large ``Const`` declares elements but carries no value.  Erased, or all
    zeros (TensorFlow may drop the values of an all-zero tensor): the two cannot be told
    apart, so a caller that needs the values must not trust such a graph."""
    for node in graph_def.node:
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        size = dtype_size(tensor.dtype) * _elements(tensor.tensor_shape)
        if size > LARGE_CONSTANT_BYTES and not any(
                f.name not in _KEPT_TENSOR_FIELDS for f, _ in tensor.ListFields()):
            return True
    return False


def _elements(shape: Any) -> int:
    if shape.unknown_rank:
        return 0
    count = 1
    for dim in shape.dim:
        count *= max(dim.size, 0)
    return count


def full_subgraph(spec: NeuronOpSpec, name: str = "NeuronOp") -> Subgraph:
    """The segment with all its values: the program's payload when the executable is one of
    ours (checksum verified), else the ``graph_def`` attribute: whole when nothing compiled
    it; when another toolchain did (an AWS NEFF cannot be read back into a graph), refused if
    its large constants may have been erased."""
    if spec.executable[:len(exe.MAGIC)] == exe.MAGIC:
        try:
            header, payload = exe.unpack(spec.executable)
        except exe.ExecutableError as exc:
            raise SubgraphError(f"NeuronOp {name}: {exc}") from None
        return Subgraph(proto.GraphDef.FromString(payload), header.input_names,
                        header.output_names)
    graph_def = proto.GraphDef.FromString(spec.graph_def)
    if spec.executable and _may_be_erased(graph_def):
        raise SubgraphError(f"NeuronOp {name}: its graph_def keeps only the shapes of its "
                            "large constants and its executable is not a neuroncli program, "
                            "so its segment cannot be rebuilt: recompile the model")
    return Subgraph(graph_def, spec.input_names, spec.output_names)
