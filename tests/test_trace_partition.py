"""trace partitions with AWS's TF2 defaults; neuron-compile keeps AWS's TF1 minimum segment size.

trace: segments of one op compile, constant-foldable nodes join segments, and a segment that
holds more than 80% of the segmented nodes is compiled alone.  neuron-compile:
``min(2, max(1, #non-Placeholder ops))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neuroncli
import neuroncli.tracing
from neuroncli.savedmodel import read_saved_model

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

# (layer factory, input shape(s), the compute op that must run on the NeuronCore)
SINGLE_LAYER_MODELS = {
    "MaxPool2D": (lambda: keras.layers.MaxPool2D(), [(1, 8, 8, 3)], "MaxPool"),
    "AveragePooling2D": (lambda: keras.layers.AveragePooling2D(2), [(1, 8, 8, 3)], "AvgPool"),
    "AveragePooling3D": (lambda: keras.layers.AveragePooling3D(2), [(1, 4, 6, 6, 2)],
                         "AvgPool3D"),
    "MaxPool3D": (lambda: keras.layers.MaxPool3D(2), [(1, 4, 6, 6, 2)], "MaxPool3D"),
    "Softmax": (lambda: keras.layers.Softmax(), [(2, 7)], "Softmax"),
    "relu": (lambda: keras.layers.Activation("relu"), [(2, 7)], "Relu"),
    "sigmoid": (lambda: keras.layers.Activation("sigmoid"), [(2, 7)], "Sigmoid"),
    "softmax": (lambda: keras.layers.Activation("softmax"), [(2, 7)], "Softmax"),
    "softsign": (lambda: keras.layers.Activation("softsign"), [(2, 7)], "Softsign"),
    "tanh": (lambda: keras.layers.Activation("tanh"), [(2, 7)], "Tanh"),
    "LeakyReLU": (lambda: keras.layers.LeakyReLU(negative_slope=0.2), [(2, 7)], "LeakyRelu"),
    "Subtract": (lambda: keras.layers.Subtract(), [(2, 7), (2, 7)], "Sub"),
}


def _single_layer_model(name: str) -> tuple[keras.Model, list[np.ndarray], str]:
    factory, shapes, op = SINGLE_LAYER_MODELS[name]
    inputs = [keras.Input(shape[1:], batch_size=shape[0]) for shape in shapes]
    layer = factory()
    out = layer(inputs if len(inputs) > 1 else inputs[0])
    rng = np.random.default_rng(3)
    values = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], out), values, op


def _ops_on_neuron(traced: object) -> set[str]:
    return {op for s in traced.report.segments if s.compiled for op in s.op_histogram}


@pytest.mark.parametrize("builder", [None, lambda node: True], ids=["default", "builder-all"])
@pytest.mark.parametrize("name", sorted(SINGLE_LAYER_MODELS))
def test_single_layer_model_runs_its_op_on_neuron(name: str, builder) -> None:
    model, values, op = _single_layer_model(name)
    example = values if len(values) > 1 else values[0]
    traced = neuroncli.trace(model, example, subgraph_builder_function=builder)
    assert traced.report.counts.neuron_ops == 1
    assert op in _ops_on_neuron(traced)
    expected = model(example)
    np.testing.assert_allclose(np.asarray(traced(example)), np.asarray(expected),
                               rtol=1e-5, atol=1e-6)


def test_relu_chain_keeps_only_the_dominant_segment(monkeypatch) -> None:
    # x -> Relu x100 -> Tanh -> Relu x3, with Relu the only supported op: two segments of
    # 100 and 3 Relu; 100/103 > 80%, so only the first compiles.  Compiled graph: input,
    # NeuronOp, Tanh, 3 Relu, output Identity = 7 operations.
    monkeypatch.setattr(neuroncli.tracing, "list_operators", lambda: frozenset({"Relu"}))

    def func(tensor):
        for _ in range(100):
            tensor = tf.nn.relu(tensor)
        tensor = tf.nn.tanh(tensor)
        for _ in range(3):
            tensor = tf.nn.relu(tensor)
        return tensor

    x = tf.constant([[0.5, -1.0, 2.0]])
    traced = neuroncli.trace(func, x)
    counts = traced.report.counts
    assert (counts.graph_nodes, counts.neuron_ops, counts.on_neuron) == (7, 1, 100)
    reason = ("a smaller segment: the largest holds 97.1% of the segmented nodes "
              "(more than 80%), so only it is kept")
    assert len(traced.report.cpu_nodes[reason]) == 3
    assert "op type Tanh is not in the supported operator list" in traced.report.cpu_nodes
    np.testing.assert_allclose(np.asarray(traced(x)), func(x).numpy(), rtol=1e-6)


def test_trace_folds_shape_arithmetic_into_the_segment() -> None:
    # Reshape to a shape computed from the input's Shape: Shape, StridedSlice, Pack are
    # foldable once the input shape is fixed, so the whole function is one NeuronOp.
    # (tf.shape would give a Const already: the raw op keeps a Shape node in the graph.)
    def func(x):
        n = tf.raw_ops.Shape(input=x)[0]
        return tf.nn.relu(tf.reshape(x, tf.stack([n, -1])) * 2.0)

    x = tf.reshape(tf.range(24, dtype=tf.float32) - 12.0, [2, 3, 4])
    traced = neuroncli.trace(func, x)
    assert traced.report.counts.neuron_ops == 1
    assert {"Shape", "StridedSlice", "Pack", "Reshape", "Relu"} <= _ops_on_neuron(traced)
    assert not any("not in AWS's" in r for r in traced.report.cpu_nodes)
    np.testing.assert_allclose(np.asarray(traced(x)), func(x).numpy())


def test_trace_drops_segments_without_an_expensive_op() -> None:
    # x -> MatMul(w) -> Sin* -> Relu -> out: {MatMul, w} and {Relu, out} remain; the second
    # has no MatMul/Conv-like op, so (AWS's automatic mode) it stays on CPU.  With a
    # subgraph_builder_function the rule is off and both compile.
    w = tf.constant(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))

    def func(x):
        return tf.nn.relu(tf.sin(tf.matmul(x, w)))

    x = tf.constant([[0.5, -1.0, 2.0]])
    traced = neuroncli.trace(func, x)
    assert traced.report.counts.neuron_ops == 1
    assert _ops_on_neuron(traced) == {"MatMul", "Const"}
    reason = ("a segment without an arithmetic-intensive op (MatMul, Conv2D, ...) while "
              "another segment has one")
    assert [n.rsplit("/", 1)[-1] for n in traced.report.cpu_nodes[reason]] == ["Identity",
                                                                             "Relu"]
    np.testing.assert_allclose(np.asarray(traced(x)), func(x).numpy(), rtol=1e-6)
    manual = neuroncli.trace(func, x, subgraph_builder_function=lambda n: n.op != "Sin")
    assert manual.report.counts.neuron_ops == 2


def _tf1_model(path: Path, with_identity: bool) -> Path:
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 4], name="x")
        y = tf.nn.relu(x, name="relu")
        if with_identity:
            y = tf.identity(y, name="out")
        with tf.compat.v1.Session(graph=graph) as sess:
            builder = tf.compat.v1.saved_model.Builder(str(path))
            sig = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(sess, ["serve"],
                                                 signature_def_map={"serving_default": sig})
            builder.save()
    return path


@pytest.mark.parametrize("with_identity, neuron_ops", [(False, 1), (True, 0)])
def test_compile_minimum_segment_size_is_awss_tf1_default(tmp_path: Path, with_identity: bool,
                                                         neuron_ops: int) -> None:
    # One non-Placeholder op: minimum 1, the Relu compiles.  Relu + Identity: minimum 2, and
    # the segment {Relu, Identity} counts 1 (Identity is not counted): it stays on CPU.
    src = _tf1_model(tmp_path / "m", with_identity)
    report = neuroncli.saved_model.compile_with_report(src, tmp_path / "out",
                                                       neuroncli.saved_model.make_options())
    assert report.counts.neuron_ops == neuron_ops
    if neuron_ops == 0:
        assert report.cpu_nodes["segment of 1 ops is below minimum_segment_size 2"] == (
            "out", "relu")
    meta_graph = read_saved_model(str(tmp_path / "out")).saved_model.meta_graphs[0]
    assert sum(n.op == "NeuronOp" for n in meta_graph.graph_def.node) == neuron_ops
