"""Cut a segment out as its own ``GraphDef``, replace it by a ``NeuronOp``, and undo that.

* :func:`extract_segment` builds the segment's ``GraphDef``: each entering tensor becomes a
  ``Placeholder`` named ``input{i}``; inner nodes keep their names, so output names are the
  original tensor refs.  It is what the backend compiles and what the NeuronOp carries.
* :func:`fuse_segment` replaces the segment's nodes in the graph by one ``NeuronOp`` node and
  rewires consumers; it works on a graph where other segments were fused already (inputs are
  re-read from the graph, so they follow earlier rewiring).
* :func:`~neuroncli.partition.expand.expand_neuron_ops` is the inverse, for CPU fallback and
  numerical checks.

Control edges: a control input from outside the segment is dropped inside and carried by the
NeuronOp; a node outside that waited on a segment node waits on the NeuronOp.  Requires a
valid graph; ensures a valid one (``graph.validate()``).  No TensorFlow here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable

from neuroncli import proto
from neuroncli.format import neuron_op
from neuroncli.graph.convert import node_to_nodedef
from neuroncli.graph.ir import Graph, GraphError, Node, Shape, split_tensor, tensor_ref
from neuroncli.partition.plan import Segment
from neuroncli.proto.dtypes import DT_FLOAT

# DT_FLOAT is the dtype recorded for a boundary tensor whose dtype shape inference did not give.


@dataclass(frozen=True)
class SegmentGraph:
    """A segment as a standalone graph.

    graph_def: the segment's ``GraphDef`` (placeholders first, then nodes in topological order).
    input_names: placeholder tensors inside ``graph_def`` (``input0:0``, ...).
    input_refs: the outer tensors they stand for, same order.
    input_dtypes/input_shapes: from the producers' annotations (float / unknown if missing).
    output_names: inner tensor refs that leave the segment (= the outer refs: names are kept).
    output_refs: the outer tensor refs, same order as ``segment.outputs``.
    output_dtypes/output_shapes: from the producing nodes' annotations.
    control_inputs: outer nodes the segment waited on (the NeuronOp's control inputs).
    """

    graph_def: Any
    input_names: tuple[str, ...]
    input_refs: tuple[str, ...]
    input_dtypes: tuple[int, ...]
    input_shapes: tuple[Shape | None, ...]
    output_names: tuple[str, ...]
    output_refs: tuple[str, ...]
    output_dtypes: tuple[int, ...]
    output_shapes: tuple[Shape | None, ...]
    control_inputs: tuple[str, ...]


def segment_digest_name(content: bytes) -> str:
    """``neuron_op_<16 hex digits of sha256(content)>``: stable across runs and machines."""
    return "neuron_op_" + hashlib.sha256(content).hexdigest()[:16]


def _boundary(graph: Graph, names: Iterable[str],
              inside: set[str]) -> tuple[list[str], list[str]]:
    """Entering tensor refs (by first use) and outer control predecessors (by first use)."""
    inputs: dict[str, None] = {}
    controls: dict[str, None] = {}
    for name in names:
        node = graph[name]
        for ref in node.inputs:
            if split_tensor(ref)[0] not in inside:
                inputs.setdefault(ref)
        for src in node.control_inputs:
            if src not in inside:
                controls.setdefault(src)
    return list(inputs), list(controls)


def _dtype(graph: Graph, ref: str) -> int:
    dtype = graph.tensor_dtype(ref)
    return DT_FLOAT if dtype is None else int(dtype)


def _shape(graph: Graph, ref: str) -> Shape | None:
    shape = graph.tensor_shape(ref)
    return None if shape is None else tuple(shape)


def _placeholder_names(count: int, taken: set[str]) -> list[str]:
    names = []
    for i in range(count):
        name, k = f"input{i}", 0
        while name in taken:  # an inner node already has that name
            k += 1
            name = f"input{i}_{k}"
        names.append(name)
    return names


def extract_segment(graph: Graph, segment: Segment) -> SegmentGraph:
    """The segment's ``GraphDef`` and its boundary; ``graph`` is not modified."""
    inside = set(segment.nodes)
    input_refs, controls = _boundary(graph, segment.nodes, inside)
    placeholders = _placeholder_names(len(input_refs), inside)
    inner_ref = {ref: tensor_ref(ph) for ref, ph in zip(input_refs, placeholders)}
    dtypes = tuple(_dtype(graph, ref) for ref in input_refs)
    shapes = tuple(_shape(graph, ref) for ref in input_refs)
    graph_def = proto.GraphDef()
    for ph, dtype, shape in zip(placeholders, dtypes, shapes):
        nd = graph_def.node.add(name=ph, op="Placeholder")
        nd.attr["dtype"].type = dtype
        nd.attr["shape"].shape.CopyFrom(neuron_op.shape_proto(shape))
    for name in segment.nodes:
        node = graph[name]
        copy = Node(name=node.name, op=node.op,
                    inputs=[inner_ref.get(ref, ref) for ref in node.inputs],
                    control_inputs=[c for c in node.control_inputs if c in inside],
                    attrs=node.attrs, device=node.device)
        node_to_nodedef(copy, graph_def.node.add())
    if graph.versions is not None:
        graph_def.versions.CopyFrom(graph.versions)
    outputs = tuple(segment.outputs)
    return SegmentGraph(
        graph_def=graph_def, input_names=tuple(tensor_ref(ph) for ph in placeholders),
        input_refs=tuple(input_refs), input_dtypes=dtypes, input_shapes=shapes,
        output_names=outputs, output_refs=outputs,
        output_dtypes=tuple(_dtype(graph, ref) for ref in outputs),
        output_shapes=tuple(_shape(graph, ref) for ref in outputs),
        control_inputs=tuple(controls))


def fuse_segment(graph: Graph, segment: Segment, spec: neuron_op.NeuronOpSpec,
                 name: str) -> dict[str, str]:
    """Replace the segment's nodes by NeuronOp ``name``; returns {old output ref: new ref}."""
    if name in graph:
        raise GraphError(f"cannot fuse segment {segment.index}: a node named {name!r} exists")
    missing = [n for n in segment.nodes if n not in graph]
    if missing:
        raise GraphError(f"cannot fuse segment {segment.index}: node {missing[0]!r} is not "
                         "in the graph (fused twice?)")
    inside = set(segment.nodes)
    inputs, controls = _boundary(graph, segment.nodes, inside)
    if len(inputs) != len(spec.input_names) or len(segment.outputs) != len(spec.output_names):
        raise GraphError(f"cannot fuse segment {segment.index}: it has {len(inputs)} inputs and "
                         f"{len(segment.outputs)} outputs, the NeuronOp spec "
                         f"{len(spec.input_names)} and {len(spec.output_names)}")
    mapping = {ref: tensor_ref(name, k) for k, ref in enumerate(segment.outputs)}
    _rewire_consumers(graph, segment, inside, mapping, name)
    for inner in segment.nodes:
        graph.remove(inner)
    graph.add(Node(name=name, op=neuron_op.NEURON_OP, inputs=inputs, control_inputs=controls,
                   attrs=neuron_op.to_attrs(spec), output_dtypes=list(spec.output_dtypes),
                   output_shapes=[None if s is None else tuple(s)
                                  for s in spec.output_shapes]))
    return mapping


def _rewire_consumers(graph: Graph, segment: Segment, inside: set[str],
                      mapping: dict[str, str], name: str) -> None:
    """Point outside readers of segment tensors at ``name:k``, control waiters at ``name``.

    Every new input list is computed before any is applied, so an error leaves the graph as
    it was.
    """
    consumers: dict[str, None] = {}
    for inner in segment.nodes:
        for consumer, _ in graph.consumers(inner):
            if consumer not in inside:
                consumers.setdefault(consumer)
    rewired = []
    for consumer in consumers:
        node = graph[consumer]
        new_inputs = []
        for ref in node.inputs:
            if split_tensor(ref)[0] in inside:
                if ref not in mapping:
                    raise GraphError(f"cannot fuse segment {segment.index}: {consumer!r} reads "
                                     f"{ref}, which is not one of the segment's outputs")
                ref = mapping[ref]
            new_inputs.append(ref)
        controls = dict.fromkeys(name if src in inside else src for src in node.control_inputs)
        rewired.append((node, new_inputs, list(controls)))
    for node, new_inputs, controls in rewired:
        graph.set_inputs(node, new_inputs, controls)
