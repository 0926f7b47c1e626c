"""Inline the function calls freezing leaves behind because they are marked no-inline (TF).

Keras 3 runs some layers (a ``channels_first`` ``Conv3D``, for one) through a
``tf.function(jit_compile=True)``: the frozen graph keeps a ``StatefulPartitionedCall`` of a
library function marked ``_noinline`` and ``_XlaMustCompile``, which grappler's inliner
refuses.  The call is an op the partitioner cannot fuse, so the layer's convolution would stay
on the CPU.  AWS's compiler inlines such functions while freezing; so do we: the marks are
removed (they ask TensorFlow to compile the function with XLA, which the Neuron compiler
does for every segment anyway) and grappler's function optimizer inlines the calls.

Graphs without such calls are returned untouched (no grappler run).
"""

from __future__ import annotations

from typing import Any, Iterable

from neuroncli import proto
from neuroncli.graph import split_tensor
from neuroncli.lazy_tf import import_tensorflow

CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
NO_INLINE_MARKS = ("_noinline", "_XlaMustCompile")


def _marked(function: Any) -> bool:
    return any(key in function.attr and function.attr[key].b for key in NO_INLINE_MARKS)


def marked_calls(graph_def: Any) -> list[str]:
    """Names of top-level call nodes whose function is marked no-inline or must-compile."""
    marked = {f.signature.name for f in graph_def.library.function if _marked(f)}
    return [node.name for node in graph_def.node
            if node.op in CALL_OPS and node.attr["f"].func.name in marked]


def inline_marked_calls(graph_def: Any, keep: Iterable[str]) -> Any:
    """``graph_def`` with its marked calls inlined; ``keep``: tensors whose nodes must stay
    (the signature's inputs and outputs)."""
    if not marked_calls(graph_def):
        return graph_def
    tf = import_tensorflow()
    from tensorflow.python.grappler import tf_optimizer
    meta = tf.compat.v1.MetaGraphDef()
    meta.graph_def.ParseFromString(graph_def.SerializeToString())
    for function in meta.graph_def.library.function:
        for key in NO_INLINE_MARKS:
            if key in function.attr:
                del function.attr[key]
    for node in meta.graph_def.node:
        for key in NO_INLINE_MARKS:
            if key in node.attr:
                del node.attr[key]
    nodes = sorted({split_tensor(ref)[0] for ref in keep})
    meta.collection_def["train_op"].node_list.value.extend(nodes)
    config = tf.compat.v1.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    # "dependency" drops the NoOps and control edges the inlined bodies bring along: left
    # in, they are CPU nodes between the call's ops and its consumers, splitting segments.
    rewrite.optimizers.extend(["function", "dependency"])
    rewrite.min_graph_nodes = -1
    inlined = tf_optimizer.OptimizeGraph(config, meta, graph_id=b"neuroncli_inline")
    return proto.as_graph_def(inlined)
