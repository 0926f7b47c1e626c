"""Keep the original graph's output tensor names after fusing, as AWS's fuse pass does.

When a node that produces a signature output (``relu0``) is fused into a NeuronOp, the tensor
``relu0:0`` no longer exists: a TF1 client that fetches it by name from the compiled graph
would fail.  AWS's fuse pass (``grappler/convert/convert_graph.cc``) adds, for every such
node, an ``IdentityN`` node with the original name whose port ``i`` is the NeuronOp output
that replaced ``relu0:i``, for every port up to the highest one the signature reads.  We do
the same, so the compiled graph has AWS's operations: the placeholders, the NeuronOps and one
node per fused output node (the runtime resolves ``IdentityN`` in Python, at no cost).

Requires: a graph after :func:`~neuroncli.partition.fuse.fuse_segment`, with its
``{old tensor: NeuronOp tensor}`` mapping.  Ensures: a valid graph in which every output
tensor name of ``outputs`` exists again, and the mapping without the renamed tensors.  A port
below the highest output port that left no NeuronOp output (nothing outside read it) cannot
be rebuilt: that node keeps today's NeuronOp tensor name (the signature still works).
No TensorFlow here.
"""

from __future__ import annotations

from typing import Iterable

from neuroncli import proto
from neuroncli.graph.ir import Graph, Node, split_tensor, tensor_ref

IDENTITY_N = "IdentityN"


def restore_output_names(graph: Graph, outputs: Iterable[str],
                         mapping: dict[str, str]) -> dict[str, str]:
    """Add an ``IdentityN`` named like each fused output node; returns the remaining mapping."""
    highest: dict[str, int] = {}
    for ref in outputs:
        name, port = split_tensor(ref)
        if name not in graph and tensor_ref(name, port) in mapping:
            highest[name] = max(highest.get(name, 0), port)
    remaining = dict(mapping)
    for name in sorted(highest):
        refs = [tensor_ref(name, port) for port in range(highest[name] + 1)]
        if not all(ref in mapping for ref in refs):
            continue
        sources = [mapping[ref] for ref in refs]
        dtypes = [graph.tensor_dtype(src) for src in sources]
        if any(dtype is None for dtype in dtypes):
            continue  # a NeuronOp always records its output dtypes; be safe anyway
        attrs = {"T": proto.AttrValue(list=proto.AttrValue.ListValue(type=dtypes))}
        graph.add(Node(name=name, op=IDENTITY_N, inputs=sources, attrs=attrs,
                       output_dtypes=list(dtypes),
                       output_shapes=[graph.tensor_shape(src) for src in sources]))
        for ref in refs:
            remaining[ref] = ref
    return remaining
