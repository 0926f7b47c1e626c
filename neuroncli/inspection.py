"""``neuron-inspect``: what a (compiled) SavedModel holds, from its protobuf alone.

Tag sets, signatures, operator counts and ``OnNeuronRatio``, and one row per NeuronOp (inputs
and outputs with dtypes and shapes, executable size, ``model_config``, replicas, placement,
batch axes).  Reads this project's models and AWS-style ones (NeuronOps in library functions).
Works on a memory-mapped view (:mod:`neuroncli.format.view`): the weights are never parsed.
Never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from neuroncli.errors import UserError, stage
from neuroncli.format import executable as exe
from neuroncli.format.counts import count_view
from neuroncli.format.placement import DEFAULT_MAX_COPIES
from neuroncli.format.neuron_op import (
    ATTR_AUTO_MULTICORE, ATTR_NC_COUNT, ATTR_START_NC, TensorDesc, check_attr_sizes, from_attrs,
    shape_from_proto,
)
from neuroncli.partition.support import outside_op_set
from neuroncli.proto.dtypes import dtype_name
from neuroncli.savedmodel import open_saved_model_view
from neuroncli.tracing.structure import traced_call



@dataclass(frozen=True)
class NeuronOpDesc:
    """One NeuronOp.  ``replicas`` is what the runtime will load: a number or a rule."""

    name: str
    location: str
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]
    executable_bytes: int
    compiled: bool
    model_config: tuple[int, ...]
    replicas: str
    placement: str
    input_batch_axis: tuple[int, ...]
    output_batch_axis: tuple[int, ...]
    program: dict


@dataclass(frozen=True)
class MetaGraphDesc:
    tags: tuple[str, ...]
    signatures: dict
    ops_total: int
    ops_on_neuron: int
    graph_nodes: int
    on_neuron_ratio: float
    neuron_ops: tuple[NeuronOpDesc, ...]
    # CPU operations whose type is outside AWS's supported operator list (the list compile
    # partitions with), op type -> count; CPU-only kinds (NoOp, variables, ...) not listed.
    outside_aws_op_list: dict[str, int] = field(default_factory=dict)
    # A saved trace's call and output structure (``model([input_0, input_1]) -> output_0``),
    # else None (neuroncli.tracing.structure).
    traced_call: str | None = None


@dataclass(frozen=True)
class InspectReport:
    """model_dir; saved_model_bytes; variables_bytes: the files in ``variables/`` (the
    weights of an ``--extract-weights`` compile, or an original's checkpoint); meta graphs."""

    model_dir: str
    saved_model_bytes: int
    meta_graphs: tuple[MetaGraphDesc, ...]
    variables_bytes: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _signatures(meta_graph: Any) -> dict:
    out = {}
    for key in sorted(meta_graph.signature_def):
        sig = meta_graph.signature_def[key]
        out[key] = {kind: {k: asdict(TensorDesc(getattr(sig, kind)[k].name,
                                                dtype_name(getattr(sig, kind)[k].dtype),
                                                shape_from_proto(getattr(sig, kind)[k].tensor_shape)))
                           for k in sorted(getattr(sig, kind))}
                    for kind in ("inputs", "outputs")}
        out[key]["method_name"] = sig.method_name
    return out


def _replicas(node: Any, op_count: int, model_config: tuple[int, ...]) -> str:
    """How many copies the runtime makes, by its rules (``runtime/placement.py``): a
    placement first, then ``_automatic_multicore``, then the default; a pipeline program
    spans several cores and is never replicated."""
    pipeline = model_config[1] if len(model_config) > 1 and model_config[1] > 1 else 1
    if pipeline > 1:
        return f"1 (pipeline program over {pipeline} cores: not replicated)"
    if ATTR_NC_COUNT in node.attr:
        count = node.attr[ATTR_NC_COUNT].i
        if count == 0:
            return "one per visible core (placed)"
        return f"{max(1, count)} (placed)"
    if ATTR_AUTO_MULTICORE in node.attr:
        return str(node.attr[ATTR_AUTO_MULTICORE].i)
    if op_count == 1:
        cap = model_config[2] if len(model_config) > 2 and model_config[2] > 0 else None
        return f"default (up to {min(DEFAULT_MAX_COPIES, cap or DEFAULT_MAX_COPIES)})"
    return "1"


def _placement(node: Any) -> str:
    if ATTR_START_NC not in node.attr and ATTR_NC_COUNT not in node.attr:
        return "default"
    start = node.attr[ATTR_START_NC].i if ATTR_START_NC in node.attr else -1
    count = node.attr[ATTR_NC_COUNT].i if ATTR_NC_COUNT in node.attr else -1
    where = "least-used" if start == -1 else f"nc {start}"
    if count == 0:
        return "all visible cores"
    return f"{where}, {1 if count == -1 else count} core(s)"


def _program(data: Any) -> dict:
    if not len(data):
        return {}
    try:
        header, _ = exe.read_header(data)
    except exe.ExecutableError as exc:
        return {"error": str(exc)}
    numbers = (header.batch_size, header.pipeline_cores, header.parameter_bytes, header.flops)
    if not all(type(n) is int for n in numbers) or not isinstance(header.compiler, str):
        # read_header checks the layout, not the types: JSON's 1e999 would print Infinity
        return {"error": "executable header is corrupt: sizes must be integers"}
    program = {"batch_size": header.batch_size, "pipeline_cores": header.pipeline_cores,
               "parameter_bytes": header.parameter_bytes, "flops": header.flops,
               "compiler": header.compiler}
    note = exe.batch_note(header)
    if note is not None:
        program.update(dynamic_batch=note.mode, batch_reason=note.reason)
    return program


def _describe_op(op: Any, op_count: int) -> NeuronOpDesc:
    node = op.node
    try:
        check_attr_sizes(node.attr)
        spec = from_attrs(node.attr)
    except ValueError:  # includes UnicodeDecodeError from a corrupt name list
        raise UserError(f"NeuronOp {node.name!r} ({op.where}) has corrupt attributes: "
                        "recompile the model") from None
    executable = op.heavy.get("executable", memoryview(b""))
    data_inputs = [i for i in node.input if not i.startswith("^")]
    inputs = tuple(TensorDesc(name, dtype_name(d), s) for name, d, s in
                   zip(data_inputs, spec.input_dtypes, spec.input_shapes))
    outputs = tuple(TensorDesc(f"{node.name}:{k}", dtype_name(d), s) for k, (d, s) in
                    enumerate(zip(spec.output_dtypes, spec.output_shapes)))
    return NeuronOpDesc(
        name=node.name, location=op.where, inputs=inputs, outputs=outputs,
        executable_bytes=len(executable), compiled=bool(len(executable)),
        model_config=spec.model_config, replicas=_replicas(node, op_count, spec.model_config),
        placement=_placement(node), input_batch_axis=spec.input_batch_axis,
        output_batch_axis=spec.output_batch_axis, program=_program(executable))


def _variables_bytes(model_dir: str) -> int:
    folder = os.path.join(model_dir, "variables")
    if os.path.islink(folder) or not os.path.isdir(folder):
        return 0
    return sum(entry.stat(follow_symlinks=False).st_size for entry in os.scandir(folder)
               if entry.is_file(follow_symlinks=False))


def inspect_saved_model(model_dir: str | os.PathLike) -> InspectReport:
    """Describe the SavedModel at ``model_dir`` (a memory-mapped view: no full parse)."""
    with stage("load"):
        view = open_saved_model_view(model_dir)
    try:
        metas = []
        for meta in view.meta_graphs:
            counts = count_view(meta)
            metas.append(MetaGraphDesc(
                tags=meta.tags, signatures=_signatures(meta.meta), ops_total=counts.total,
                ops_on_neuron=counts.on_neuron, graph_nodes=counts.graph_nodes,
                on_neuron_ratio=counts.ratio,
                neuron_ops=tuple(_describe_op(op, len(meta.neuron_ops))
                                 for op in meta.neuron_ops),
                outside_aws_op_list=outside_op_set(meta.cpu_op_types),
                traced_call=traced_call(meta.meta.meta_info_def)))
        return InspectReport(view.path, view.size, tuple(metas), _variables_bytes(view.path))
    except (ValueError, KeyError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{view.path}: saved_model.pb is corrupt ({exc}): re-export the "
                        "model") from None
    finally:
        view.close()
