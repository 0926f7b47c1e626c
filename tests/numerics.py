"""Test helpers: run a compiled model with every NeuronOp expanded back into its subgraph.

This checks the *rewrite* (partition + fuse + signature remapping) independently of the
simulator: the expanded graph is plain TensorFlow, fed and fetched by the signature's names.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from neuroncli.graph import Node, graph_from_graphdef, graph_to_graphdef
from neuroncli.partition import expand_neuron_ops
from neuroncli.savedmodel import read_saved_model, select_signature


def run_expanded(compiled_dir: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    meta_graph = read_saved_model(compiled_dir).saved_model.meta_graphs[0]
    _, signature = select_signature(meta_graph)
    graph = graph_from_graphdef(meta_graph.graph_def)
    fetch = {}
    for key in sorted(signature.outputs):
        # An Identity per output survives the expansion, which rewires its input.
        name = f"fetch_{key}_"
        graph.add(Node(name=name, op="Identity", inputs=[signature.outputs[key].name],
                       attrs={"T": _attr_type(signature.outputs[key].dtype)}))
        fetch[key] = f"{name}:0"
    expanded = expand_neuron_ops(graph)
    expanded.validate()
    assert not any(n.op == "NeuronOp" for n in expanded)
    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.graph_util.import_graph_def(graph_to_graphdef(expanded), name="")
    feeds = {signature.inputs[k].name: v for k, v in inputs.items()}
    with tf.compat.v1.Session(graph=tf_graph) as sess:
        values = sess.run(fetch, feed_dict=feeds)
    return {k: np.asarray(v) for k, v in values.items()}


def _attr_type(dtype: int) -> Any:
    from neuroncli import proto
    return proto.AttrValue(type=dtype)


def assert_outputs_close(expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray],
                         rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert sorted(expected) == sorted(actual)
    for key in expected:
        want, got = np.asarray(expected[key]), np.asarray(actual[key])
        assert want.shape == got.shape, (key, want.shape, got.shape)
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=key)
        else:
            np.testing.assert_array_equal(got, want, err_msg=key)
