"""TF1 ``saved_model.compile`` keeps the original output tensor names (AWS's IdentityN nodes).

The model (TF1, float16)::

    input0 -> Conv2D(conv0) -> AddV2(add0) <- input1
                                  |-> Relu(relu0)       : signature output y0 = relu0:0
                                  '-> Sigmoid(sigmoid0) : signature output y1 = sigmoid0:0

AWS's compiled graph holds exactly 5 operations: the 2 placeholders, 1 NeuronOp and an
``IdentityN`` named like each original output node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli import proto
from neuroncli.format import counts
from neuroncli.graph import graph_from_graphdef
from neuroncli.partition.names import restore_output_names
from neuroncli.savedmodel import read_saved_model

tf = pytest.importorskip("tensorflow")


def _tf1_model(directory: Path) -> dict[str, np.ndarray]:
    tf1 = tf.compat.v1
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        a = tf1.placeholder(tf.float16, [1, 8, 8, 3], name="input0")
        b = tf1.placeholder(tf.float16, [1, 8, 8, 3], name="input1")
        kernel = tf.constant(rng.standard_normal((3, 3, 3, 3)).astype(np.float16))
        added = tf.add(tf.nn.conv2d(a, kernel, [1, 1, 1, 1], "SAME", name="conv0"), b,
                       name="add0")
        relu, sigmoid = tf.nn.relu(added, name="relu0"), tf.sigmoid(added, name="sigmoid0")
        feeds = {"input0:0": rng.standard_normal((1, 8, 8, 3)).astype(np.float16),
                 "input1:0": rng.standard_normal((1, 8, 8, 3)).astype(np.float16)}
        with tf1.Session(graph=graph) as sess:
            tf1.saved_model.simple_save(sess, str(directory), {"x0": a, "x1": b},
                                        {"y0": relu, "y1": sigmoid})
            fetched = sess.run({"relu0:0": relu, "sigmoid0:0": sigmoid}, feeds)
    return {**feeds, **fetched}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("names")
    values = _tf1_model(root / "original")
    result = neuroncli.saved_model.compile(str(root / "original"), str(root / "compiled"))
    return root / "compiled", {"values": values, "counts": result}


def test_compiled_graph_has_aws_operations(compiled: tuple[Path, dict]) -> None:
    directory, _ = compiled
    meta_graph = read_saved_model(str(directory)).saved_model.meta_graphs[0]
    ops = sorted((n.op, n.name) for n in meta_graph.graph_def.node)
    neuron = [name for op, name in ops if op == "NeuronOp"]
    assert len(neuron) == 1
    assert [(op, name) for op, name in ops if op != "NeuronOp"] == [
        ("IdentityN", "relu0"), ("IdentityN", "sigmoid0"),
        ("Placeholder", "input0"), ("Placeholder", "input1")]
    nodes = {n.name: n for n in meta_graph.graph_def.node}
    inner_names = [n.decode() for n in nodes[neuron[0]].attr["output_names"].list.s]
    for name in ("relu0", "sigmoid0"):
        port = inner_names.index(f"{name}:0")
        assert list(nodes[name].input) == [neuron[0] if port == 0 else f"{neuron[0]}:{port}"]
    assert list(nodes["relu0"].attr["T"].list.type) == [proto.DataType.values_by_name["DT_HALF"].number]
    signature = meta_graph.signature_def["serving_default"]
    assert {k: v.name for k, v in signature.outputs.items()} == {"y0": "relu0:0",
                                                                 "y1": "sigmoid0:0"}


def test_counts_include_the_identity_nodes_as_aws_does(compiled: tuple[Path, dict]) -> None:
    # on Neuron: Const, Conv2D, AddV2, Relu, Sigmoid = 5; total = 5 graph nodes + 5 - 1
    directory, info = compiled
    meta_graph = read_saved_model(str(directory)).saved_model.meta_graphs[0]
    c = counts.count_meta_graph(meta_graph)
    assert (c.graph_nodes, c.neuron_ops, c.on_neuron, c.total) == (5, 1, 5, 9)
    assert info["counts"]["OnNeuronRatio"] == pytest.approx(5 / 9)


def test_tf1_client_fetches_the_original_names(compiled: tuple[Path, dict],
                                               tmp_path: Path) -> None:
    # The client knows only tensor names: it feeds input0:0/input1:0 and fetches relu0:0 and
    # sigmoid0:0, finding their keys in the compiled signature by name.
    directory, info = compiled
    values = info["values"]
    model = neuroncli.load(directory)
    by_name_in = {spec.name: key for key, spec in model.signature.inputs.items()}
    by_name_out = {spec.name: key for key, spec in model.signature.outputs.items()}
    outputs = model(**{by_name_in[name]: values[name] for name in ("input0:0", "input1:0")})
    for name in ("relu0:0", "sigmoid0:0"):
        np.testing.assert_allclose(outputs[by_name_out[name]].astype(np.float32),
                                   values[name].astype(np.float32), rtol=1e-2, atol=1e-2)


def test_an_output_node_left_on_cpu_is_not_duplicated() -> None:
    # x -> Relu(r) [fused as n:0] ; x -> Tanh(t) [on CPU]; outputs r:0, t:0
    graph_def = proto.GraphDef()
    graph_def.node.add(name="x", op="Placeholder")
    graph_def.node.add(name="n", op="NeuronOp", input=["x"])
    graph_def.node.add(name="t", op="Tanh", input=["x"])
    graph = graph_from_graphdef(graph_def)
    graph["n"].output_dtypes = [1, 1]
    remaining = restore_output_names(graph, ["r:0", "t:0", "s:1"],
                                     {"r:0": "n:0", "s:1": "n:1"})
    # r is rebuilt; s:1 is not (its port 0 left no NeuronOp output): it keeps n:1
    assert sorted(node.name for node in graph) == ["n", "r", "t", "x"]
    assert graph["r"].inputs == ["n:0"] and graph["r"].op == "IdentityN"
    assert remaining == {"r:0": "r:0", "s:1": "n:1"}
    graph.validate()
