"""Expand ``NeuronOp`` nodes back into the nodes of their ``graph_def`` (the inverse of fusing).

Used for CPU fallback and numerical checks.  Each NeuronOp ``n`` becomes its inner nodes,
renamed ``n/<inner name>`` so they cannot clash with the rest of the graph; inner placeholders
(named by ``input_names``) are replaced by the NeuronOp's inputs, and readers of ``n:k`` read
the inner tensor ``output_names[k]`` instead.  The NeuronOp's control inputs go to the inner
nodes that have no inner producer; a node that waited on ``n`` waits on every inner node that
has no inner consumer.  Works on NeuronOps made by :func:`~neuroncli.partition.fuse
.fuse_segment` and on AWS's (``input0/_0:0``-style placeholder names).

:func:`expansion_map` says where each ``n:k`` went (for signature outputs).

The inner nodes come from the program when the NeuronOp was compiled by neuroncli (its
``graph_def`` keeps only the shapes of large constants: :mod:`neuroncli.format.subgraph`),
else from its ``graph_def``.

Requires: every NeuronOp has a parseable ``graph_def`` or program.  Ensures: a new, valid graph; the input
graph is left untouched.  No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass

from neuroncli.format import neuron_op
from neuroncli.format.subgraph import SubgraphError, full_subgraph
from neuroncli.graph.convert import graph_from_graphdef
from neuroncli.graph.ir import Graph, GraphError, Node, split_tensor, tensor_ref


@dataclass(frozen=True)
class _Expansion:
    """One NeuronOp's replacement: renamed inner nodes and how to reach them from outside."""

    nodes: list[Node]
    outputs: list[str]  # ref for ``name:k``
    waits: list[str]    # inner sinks, for control edges on the NeuronOp


def expand_neuron_ops(graph: Graph) -> Graph:
    """A copy of ``graph`` with every ``NeuronOp`` replaced by its inner nodes."""
    expansions = {node.name: _expand(node) for node in graph
                  if node.op == neuron_op.NEURON_OP}
    data = _output_map(expansions)
    out = Graph(library=graph.library, versions=graph.versions)
    for node in graph:
        if node.name in expansions:
            for inner in expansions[node.name].nodes:
                out.add(_relinked(inner, data, expansions))
        else:
            out.add(_relinked(node, data, expansions))
    return out


def expansion_map(graph: Graph) -> dict[str, str]:
    """``{"<neuron op>:k": tensor in the expanded graph}`` for every NeuronOp output.

    What a caller needs to keep signature outputs addressable after :func:`expand_neuron_ops`
    (a NeuronOp output may be fed straight from one of its inputs: then it maps to that).
    """
    return _output_map({node.name: _expand(node) for node in graph
                        if node.op == neuron_op.NEURON_OP})


def _output_map(expansions: dict[str, _Expansion]) -> dict[str, str]:
    direct = {tensor_ref(name, k): ref for name, exp in expansions.items()
              for k, ref in enumerate(exp.outputs)}
    resolved = {}
    for ref in direct:
        target = direct[ref]
        while target in direct:  # an output fed straight from another NeuronOp's output
            target = direct[target]
        resolved[ref] = target
    return resolved


def _relinked(node: Node, data: dict[str, str], expansions: dict[str, _Expansion]) -> Node:
    """A copy of ``node`` whose references to NeuronOps point into their expansions."""
    controls: dict[str, None] = {}
    for src in node.control_inputs:
        for wait in (expansions[src].waits if src in expansions else (src,)):
            controls.setdefault(wait)
    return Node(name=node.name, op=node.op, inputs=[data.get(r, r) for r in node.inputs],
                control_inputs=list(controls), attrs=dict(node.attrs), device=node.device,
                output_dtypes=None if node.output_dtypes is None else list(node.output_dtypes),
                output_shapes=None if node.output_shapes is None else list(node.output_shapes))


def _expand(op_node: Node) -> _Expansion:
    try:
        segment = full_subgraph(neuron_op.from_attrs(op_node.attrs), op_node.name)
    except SubgraphError as exc:
        raise GraphError(str(exc)) from None
    inner = graph_from_graphdef(segment.graph_def)
    if len(segment.input_names) != len(op_node.inputs):
        raise GraphError(f"NeuronOp {op_node.name!r} has {len(op_node.inputs)} inputs but "
                         f"{len(segment.input_names)} input_names")
    prefix = op_node.name + "/"
    # Placeholder tensor -> the outer tensor it stands for.
    fed = {tensor_ref(*split_tensor(n)): ref
           for n, ref in zip(segment.input_names, op_node.inputs)}
    fed_nodes = {split_tensor(n)[0] for n in fed}

    def outer(ref: str) -> str:
        return fed[ref] if ref in fed else prefix + ref

    nodes: list[Node] = []
    has_consumer: set[str] = set()
    for node in inner:
        if node.name in fed_nodes:
            continue
        if node.op == "Placeholder":
            raise GraphError(f"NeuronOp {op_node.name!r}: placeholder {node.name!r} is not "
                             "one of its input_names")
        producers = [split_tensor(r)[0] for r in node.inputs] + node.control_inputs
        inner_producers = [p for p in producers if p not in fed_nodes]
        has_consumer.update(inner_producers)
        controls = [prefix + c for c in node.control_inputs if c not in fed_nodes]
        if not inner_producers:  # a root: it must still wait for what the NeuronOp waited on
            controls += op_node.control_inputs
        nodes.append(Node(name=prefix + node.name, op=node.op,
                          inputs=[outer(r) for r in node.inputs], control_inputs=controls,
                          attrs=dict(node.attrs), device=node.device))
    outputs = [outer(tensor_ref(*split_tensor(n))) for n in segment.output_names]
    waits = [n.name for n in nodes if n.name[len(prefix):] not in has_consumer]
    return _Expansion(nodes, outputs, waits)

