"""The graph IR: :class:`Graph` and :class:`Node`, converted from and to ``GraphDef`` in
:mod:`neuroncli.graph.convert` only."""

from neuroncli.graph.convert import graph_from_graphdef, graph_to_graphdef, node_to_nodedef
from neuroncli.graph.ir import Graph, GraphError, Node, split_tensor, tensor_ref

__all__ = ["Graph", "GraphError", "Node", "split_tensor", "tensor_ref",
           "graph_from_graphdef", "graph_to_graphdef", "node_to_nodedef"]
