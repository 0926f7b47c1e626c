"""Classify and Regress over gRPC with TF Serving's stubs: a TF1 model parsing serialized
``tf.Example``s (on CPU) into a matmul (on the NeuronCore), compiled once for its
classification signature and once for its regression signature."""

from __future__ import annotations

import os
import subprocess

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, regression_pb2

import neuroncli
from tests.conftest import script
from tests.serving_support import Server, grpc_stubs

WEIGHTS = np.random.default_rng(11).standard_normal((4, 3)).astype(np.float32)
COEFFS = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
ROWS = np.random.default_rng(12).standard_normal((3, 4)).astype(np.float32)
CONFIG = """model_config_list {
  config { name: "cls" base_path: "%s" }
  config { name: "reg" base_path: "%s" }
}
"""


def _build(path) -> None:
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        parsed = tf.io.parse_example(serialized, {
            "x": tf.io.FixedLenFeature([4], tf.float32),
            "bias": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        logits = tf.matmul(parsed["x"], tf.constant(WEIGHTS)) + 0.1 + parsed["bias"]
        scores = tf.nn.softmax(logits, name="scores")
        classes = tf.tile(tf.constant([[b"low", b"mid", b"high"]]),
                          tf.stack([tf.shape(serialized)[0], 1]), name="classes")
        value = tf.identity(tf.reduce_sum(parsed["x"] * COEFFS, axis=1)
                            + parsed["bias"][:, 0], name="value")
        with v1.Session(graph=graph) as session:
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
                "serving_default": v1.saved_model.classification_signature_def(
                    serialized, classes, scores),
                "regress": v1.saved_model.regression_signature_def(serialized, value)})
            builder.save()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    _build(root / "original")
    for name, signature in (("cls", "serving_default"), ("reg", "regress")):
        (root / name).mkdir()
        subprocess.run([script("neuron-compile"), "-q", f"--signature_def={signature}",
                        str(root / "original"), str(root / name / "1")], check=True,
                       timeout=300, capture_output=True,
                       env={**os.environ, "NEURON_CC_FLAGS": "--dynamic-batch-size"})
    (root / "models.config").write_text(CONFIG % (root / "cls", root / "reg"))
    with Server(f"--model_config_file={root / 'models.config'}", rest=False) as running:
        running.root = root
        yield running
        assert running.stop() == 0


def _examples(request, bias: float | None = None) -> None:
    for row in ROWS:
        example = request.input.example_list.examples.add()
        example.features.feature["x"].float_list.value.extend(row.tolist())
        if bias is not None:
            example.features.feature["bias"].float_list.value.append(bias)


def test_classify(server) -> None:
    channel, prediction, _ = grpc_stubs(server.grpc_address)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "cls"
    _examples(request, bias=0.5)
    response = prediction.Classify(request, timeout=60)
    channel.close()
    assert response.model_spec.version.value == 1
    logits = ROWS @ WEIGHTS + 0.6
    want = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = [[(c.label, c.score) for c in item.classes]
           for item in response.result.classifications]
    assert [[label for label, _ in row] for row in got] == [["low", "mid", "high"]] * 3
    np.testing.assert_allclose([[s for _, s in row] for row in got], want, rtol=1e-5)
    with neuroncli.load(server.root / "cls" / "1") as model:
        served = model(inputs=np.array([e.SerializeToString() for e in
                                        request.input.example_list.examples], dtype=object))
    np.testing.assert_array_equal(np.array([[s for _, s in row] for row in got], np.float32),
                                  served["scores"])


def test_regress_with_context(server) -> None:
    channel, prediction, _ = grpc_stubs(server.grpc_address)
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "reg"
    request.model_spec.signature_name = "regress"
    listed = request.input.example_list_with_context
    listed.context.features.feature["bias"].float_list.value.append(2.0)
    for row in ROWS:
        listed.examples.add().features.feature["x"].float_list.value.extend(row.tolist())
    response = prediction.Regress(request, timeout=60)
    np.testing.assert_allclose([r.value for r in response.result.regressions],
                               ROWS @ COEFFS + 2.0, rtol=1e-5)
    wrong = classification_pb2.ClassificationRequest()
    wrong.model_spec.CopyFrom(request.model_spec)
    wrong.input.CopyFrom(request.input)
    with pytest.raises(grpc.RpcError) as info:
        prediction.Classify(wrong, timeout=60)
    channel.close()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/regress (signature 'regress')")
