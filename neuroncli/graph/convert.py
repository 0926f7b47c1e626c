"""The only place where ``GraphDef`` protobufs become IR graphs and back.

Import normalises data inputs to ``node:port`` and splits off control inputs; export writes
them back in TensorFlow's canonical spelling (``node`` for port 0, ``^node`` for control), so a
GraphDef that went through import and export unchanged is semantically identical.
Shape/dtype annotations are IR-only and are not exported (they would change the bytes).
"""

from __future__ import annotations

from typing import Any

from neuroncli import proto
from neuroncli.graph.ir import Graph, Node, split_tensor


def graph_from_graphdef(graph_def: Any) -> Graph:
    """Build a :class:`Graph` from a ``tensorflow.GraphDef`` message."""
    nodes = []
    for nd in graph_def.node:
        data, control = [], []
        for ref in nd.input:
            if ref.startswith("^"):
                control.append(ref[1:])
            else:
                name, port = split_tensor(ref)
                data.append(f"{name}:{port}")
        nodes.append(Node(name=nd.name, op=nd.op, inputs=data, control_inputs=control,
                          attrs={k: nd.attr[k] for k in nd.attr}, device=nd.device))
    library = graph_def.library if graph_def.HasField("library") else None
    versions = graph_def.versions if graph_def.HasField("versions") else None
    return Graph(nodes, library=library, versions=versions)


def export_input(ref: str) -> str:
    name, port = split_tensor(ref)
    return name if port == 0 else f"{name}:{port}"


def node_to_nodedef(node: Node, nd: Any = None) -> Any:
    """``node`` as a ``NodeDef``, written into ``nd`` when given (e.g. ``graph_def.node.add()``:
    extending a repeated field with built messages would copy them, weights and all)."""
    nd = proto.NodeDef() if nd is None else nd
    nd.name, nd.op, nd.device = node.name, node.op, node.device
    nd.input.extend(export_input(ref) for ref in node.inputs)
    nd.input.extend(f"^{src}" for src in node.control_inputs)
    for key in sorted(node.attrs):  # map order does not matter to protobuf; sort anyway
        nd.attr[key].CopyFrom(node.attrs[key])
    return nd


def graph_to_graphdef(graph: Graph, *, order: str = "topological") -> Any:
    """Export ``graph``; nodes in topological order (default) or insertion order."""
    graph_def = proto.GraphDef()
    nodes = graph.topological_order() if order == "topological" else list(graph)
    for node in nodes:
        node_to_nodedef(node, graph_def.node.add())
    if graph.versions is not None:
        graph_def.versions.CopyFrom(graph.versions)
    if graph.library is not None:
        graph_def.library.CopyFrom(graph.library)
    return graph_def
