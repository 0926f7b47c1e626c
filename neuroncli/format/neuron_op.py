"""The ``NeuronOp`` node: AWS's attribute schema, built and read in one place.

See docs/format.md ("The NeuronOp node").  ``NeuronOpSpec`` is the typed view; :func:`to_attrs` and
:func:`from_attrs` convert it to and from a ``{name: AttrValue}`` map, which is what both the
IR (:class:`neuroncli.graph.Node`) and a ``NodeDef`` hold.  Protobuf only, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from neuroncli import proto
from neuroncli.format.placement import MAX_CORES

NEURON_OP = "NeuronOp"
# Private attributes: AWS's replica tag, and this project's placement (see README).
ATTR_AUTO_MULTICORE = "_automatic_multicore"
ATTR_INFERRED_SHAPES = "_aws_neuron_inferred_shapes"
ATTR_START_NC = "_neuroncli_start_nc"
ATTR_NC_COUNT = "_neuroncli_nc_count"


@dataclass(frozen=True)
class TensorDesc:
    """A tensor at a NeuronOp's boundary, for reports: name, dtype name, shape."""

    name: str
    dtype: str
    shape: tuple | None


@dataclass(frozen=True)
class NeuronOpSpec:
    """Everything a ``NeuronOp`` node says.  Shapes use ``None`` for unknown dimensions."""

    graph_def: bytes
    input_names: tuple[str, ...]
    input_dtypes: tuple[int, ...]
    input_shapes: tuple[tuple, ...]
    output_names: tuple[str, ...]
    output_dtypes: tuple[int, ...]
    output_shapes: tuple[tuple, ...]
    executable: bytes
    input_batch_axis: tuple[int, ...]
    output_batch_axis: tuple[int, ...]
    model_config: tuple[int, ...]
    private: Mapping[str, Any] = field(default_factory=dict)  # other attrs, kept verbatim


def shape_proto(shape: Sequence[int | None] | None) -> Any:
    msg = proto.TensorShapeProto()
    if shape is None:
        msg.unknown_rank = True
        return msg
    for dim in shape:
        msg.dim.add(size=-1 if dim is None else int(dim))
    return msg


def shape_from_proto(msg: Any) -> tuple | None:
    if msg.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in msg.dim)


def _list_attr(**kwargs: Any) -> Any:
    value = proto.AttrValue()
    lst = value.list
    for key, items in kwargs.items():
        getattr(lst, key).extend(items)
    if not any(kwargs.values()):
        value.list.SetInParent()  # an empty list is still a list
    return value


def to_attrs(spec: NeuronOpSpec) -> dict[str, Any]:
    """The attribute map of a NeuronOp node."""
    attrs = {
        "graph_def": proto.AttrValue(s=spec.graph_def),
        "input_names": _list_attr(s=[n.encode() for n in spec.input_names]),
        "input_dtypes": _list_attr(type=list(spec.input_dtypes)),
        "input_shapes": _list_attr(shape=[shape_proto(s) for s in spec.input_shapes]),
        "output_names": _list_attr(s=[n.encode() for n in spec.output_names]),
        "output_dtypes": _list_attr(type=list(spec.output_dtypes)),
        "output_shapes": _list_attr(shape=[shape_proto(s) for s in spec.output_shapes]),
        "executable": proto.AttrValue(s=spec.executable),
        "input_batch_axis": _list_attr(i=list(spec.input_batch_axis)),
        "output_batch_axis": _list_attr(i=list(spec.output_batch_axis)),
        "model_config": _list_attr(i=list(spec.model_config)),
    }
    attrs.update(spec.private)
    return attrs


def from_attrs(attrs: Mapping[str, Any]) -> NeuronOpSpec:
    """Read a NeuronOp's attribute map (a protobuf map or a dict).  Missing lists read empty."""
    def lst(key: str) -> Any:
        return attrs[key].list if key in attrs else proto.AttrValue().list

    known = {"graph_def", "input_names", "input_dtypes", "input_shapes", "output_names",
             "output_dtypes", "output_shapes", "executable", "input_batch_axis",
             "output_batch_axis", "model_config"}
    return NeuronOpSpec(
        graph_def=attrs["graph_def"].s if "graph_def" in attrs else b"",
        input_names=tuple(s.decode() for s in lst("input_names").s),
        input_dtypes=tuple(lst("input_dtypes").type),
        input_shapes=tuple(shape_from_proto(s) for s in lst("input_shapes").shape),
        output_names=tuple(s.decode() for s in lst("output_names").s),
        output_dtypes=tuple(lst("output_dtypes").type),
        output_shapes=tuple(shape_from_proto(s) for s in lst("output_shapes").shape),
        executable=attrs["executable"].s if "executable" in attrs else b"",
        input_batch_axis=tuple(lst("input_batch_axis").i),
        output_batch_axis=tuple(lst("output_batch_axis").i),
        model_config=tuple(lst("model_config").i),
        private={k: attrs[k] for k in sorted(attrs) if k not in known},
    )


_PER_TENSOR = (("names", "s"), ("shapes", "shape"), ("batch_axis", "i"))
MAX_MODEL_CONFIG = 5  # four numbers and an optional engine index (docs/format.md)


def check_attr_sizes(attrs: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if a NeuronOp's lists cannot be what the compiler wrote.

    Names, shapes and batch axes come one per input (output), as the dtypes do; each is empty
    or as long as its dtypes list.  ``model_config`` holds at most 5 numbers.  Counting is
    O(1), so a corrupt node is refused before :func:`from_attrs` decodes (and a report
    prints) what may be millions of entries."""
    def size(key: str, kind: str) -> int:
        return len(getattr(attrs[key].list, kind)) if key in attrs else 0

    if size("model_config", "i") > MAX_MODEL_CONFIG:
        raise ValueError(f"model_config has {size('model_config', 'i')} entries "
                         f"(at most {MAX_MODEL_CONFIG})")
    for side in ("input", "output"):
        dtypes = size(f"{side}_dtypes", "type")
        for name, kind in _PER_TENSOR:
            n = size(f"{side}_{name}", kind)
            if n and n != dtypes:
                raise ValueError(f"{side}_{name} has {n} entries for {dtypes} {side} dtypes")


def model_config(*, global_cores: int, this_cores: int, neuron_op_count: int,
                 executable_bytes: int,
                 max_duplicates: int | None = None) -> tuple[int, int, int, int]:
    """``[global_opt_num_cores, this_opt_num_cores, max_num_duplicates, timeout_s]``.

    ``max_duplicates`` overrides AWS's default cap (MAX_CORES for one NeuronOp, else 1)."""
    duplicates = max_duplicates or (MAX_CORES if neuron_op_count == 1 else 1)
    timeout = max(10, int(executable_bytes / 1e8))
    return (global_cores, this_cores, duplicates, timeout)


def int_attr(value: int) -> Any:
    return proto.AttrValue(i=int(value))


def iter_neuron_op_nodes(meta_graph: Any) -> Iterator[tuple[str, Any]]:
    """Every NeuronOp ``NodeDef`` of a meta graph, with where it lives.

    ``("graph", node)`` for top-level nodes, ``("function:<name>", node)`` for nodes inside
    library functions (where AWS's TF2 models keep them).  Order: graph first, then functions
    sorted by name, nodes in stored order: deterministic.
    """
    for node in meta_graph.graph_def.node:
        if node.op == NEURON_OP:
            yield "graph", node
    functions = sorted(meta_graph.graph_def.library.function, key=lambda f: f.signature.name)
    for function in functions:
        for node in function.node_def:
            if node.op == NEURON_OP:
                yield f"function:{function.signature.name}", node
