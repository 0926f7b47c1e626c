"""A program the compiler accepts always runs: channels-first layers, execute-once, inlining.

TensorFlow's CPU convolutions and pools accept NCHW only through oneDNN's graph rewrite, which
a host without it (``TF_ENABLE_ONEDNN_OPTS=0``), or the C++ NeuronOp kernel, does not have: the
compiler rewrites them channels-last inside the program.  Every segment runs once at compile
time; one that cannot run falls back to CPU with the reason (an error under --must-compile).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli.compiler import inline, layout
from neuroncli.format import executable as exe
from neuroncli.format import neuron_op
from neuroncli.savedmodel import read_saved_model
from tests.conftest import script

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

NO_ONEDNN = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _const(shape: tuple, seed: int) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


class _Nchw(tf.Module):
    """Every channels-first op of the issue on one image, and the 3-D ones on a volume."""

    @tf.function(input_signature=[tf.TensorSpec([None, 3, 8, 8], tf.float32),
                                  tf.TensorSpec([None, 2, 6, 6, 6], tf.float32)])
    def __call__(self, image: tf.Tensor, volume: tf.Tensor) -> dict:
        raw = tf.raw_ops
        x = raw.Conv2D(input=image, filter=_const((3, 3, 3, 4), 1), strides=[1, 1, 1, 1],
                       padding="SAME", data_format="NCHW", dilations=[1, 1, 1, 1])
        x = raw.BiasAdd(value=x, bias=_const((4,), 2), data_format="NCHW")
        x = raw.FusedBatchNormV3(x=x, scale=_const((4,), 3), offset=_const((4,), 4),
                                 mean=_const((4,), 5), variance=tf.ones([4]) * 2.0,
                                 data_format="NCHW", is_training=False)[0]
        x = raw.DepthwiseConv2dNative(input=tf.nn.relu(x), filter=_const((3, 3, 4, 1), 6),
                                      strides=[1, 1, 2, 2], padding="VALID",
                                      data_format="NCHW")
        x = raw.MaxPool(input=x, ksize=[1, 1, 2, 2], strides=[1, 1, 1, 1], padding="SAME",
                        data_format="NCHW")
        x = raw.AvgPool(value=x, ksize=[1, 1, 2, 2], strides=[1, 1, 1, 1], padding="VALID",
                        data_format="NCHW")
        up = raw.Conv2DBackpropInput(input_sizes=tf.stack([tf.shape(x)[0], 2, 4, 4]),
                                     filter=_const((2, 2, 2, 4), 7), out_backprop=x,
                                     strides=[1, 1, 2, 2], padding="SAME", data_format="NCHW")
        v = raw.Conv3D(input=volume, filter=_const((3, 3, 3, 2, 4), 8),
                       strides=[1, 1, 1, 1, 1], padding="VALID", data_format="NCDHW")
        v = raw.MaxPool3D(input=tf.nn.relu(v), ksize=[1, 1, 2, 2, 2],
                          strides=[1, 1, 2, 2, 2], padding="VALID", data_format="NCDHW")
        v = raw.AvgPool3D(input=v, ksize=[1, 1, 2, 2, 2], strides=[1, 1, 1, 1, 1],
                          padding="SAME", data_format="NCDHW")
        return {"image": tf.tanh(up), "volume": tf.sigmoid(v)}


@pytest.fixture(scope="module")
def nchw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nchw")
    module = _Nchw()
    tf.saved_model.save(module, str(root / "model"),
                        signatures=module.__call__.get_concrete_function())
    feeds = {"image": np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32),
             "volume": np.random.default_rng(1).normal(size=(2, 2, 6, 6, 6)).astype(np.float32)}
    np.savez(root / "inputs.npz", **feeds)
    return root


def _payloads(model_dir: Path) -> list:
    from neuroncli import proto
    meta_graph = read_saved_model(str(model_dir)).saved_model.meta_graphs[0]
    graphs = []
    for _, node in neuron_op.iter_neuron_op_nodes(meta_graph):
        _, payload = exe.unpack(node.attr["executable"].s)
        graphs.append(proto.GraphDef.FromString(payload))
    return graphs


def test_channels_first_ops_run_channels_last_inside_the_program(nchw: Path) -> None:
    out = nchw / "compiled"
    neuroncli.saved_model.compile(nchw / "model", out, batch_size=2, force=True)
    nodes = [n for payload in _payloads(out) for n in payload.node]
    formats = {(n.op, n.attr["data_format"].s.decode()) for n in nodes
               if n.op in layout.DATA_INPUT}
    assert formats == {("Conv2D", "NHWC"), ("DepthwiseConv2dNative", "NHWC"),
                       ("MaxPool", "NHWC"), ("AvgPool", "NHWC"),
                       ("Conv2DBackpropInput", "NHWC"), ("Conv3D", "NDHWC"),
                       ("MaxPool3D", "NDHWC"), ("AvgPool3D", "NDHWC")}
    # BiasAdd and FusedBatchNorm have channels-first CPU kernels: left alone.
    assert {n.attr["data_format"].s for n in nodes
            if n.op in ("BiasAdd", "FusedBatchNormV3")} <= {b"NCHW"}
    feeds = dict(np.load(nchw / "inputs.npz"))
    want = tf.saved_model.load(str(nchw / "model")).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in feeds.items()})
    got = neuroncli.load(out)(**feeds)
    for key in ("image", "volume"):
        np.testing.assert_allclose(got[key], want[key].numpy(), rtol=1e-4, atol=1e-5)


def test_compiled_nchw_model_runs_without_onednn(nchw: Path) -> None:
    """The CPU kernels alone, as the C++ NeuronOp kernel may have them: still runs."""
    out = nchw / "compiled_plain"
    neuroncli.saved_model.compile(nchw / "model", out, batch_size=2, force=True)
    feeds = dict(np.load(nchw / "inputs.npz"))
    expected = neuroncli.load(out)(**feeds)
    code = ("import sys, numpy as np, neuroncli\n"
            "m = neuroncli.load(sys.argv[1])\n"
            "np.savez(sys.argv[3], **m(**dict(np.load(sys.argv[2]))))\n")
    result = nchw / "plain.npz"
    subprocess.run([sys.executable, "-c", code, str(out), str(nchw / "inputs.npz"),
                    str(result)], env=NO_ONEDNN, check=True, capture_output=True)
    got = np.load(result)
    for key in ("image", "volume"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, atol=1e-5)


def _maxpool_v2_model(root: Path) -> Path:
    """An NCHW MaxPoolV2 (ksize as a tensor): XLA lowers it, no CPU kernel runs it."""
    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 2, 4, 4], tf.float32)])
        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            y = tf.raw_ops.MaxPoolV2(input=x * 2.0, ksize=[1, 1, 2, 2], strides=[1, 1, 2, 2],
                                     padding="VALID", data_format="NCHW")
            return tf.nn.relu(y)
    model = Model()
    tf.saved_model.save(model, str(root / "mpv2"),
                        signatures=model.__call__.get_concrete_function())
    return root / "mpv2"


def test_a_segment_that_cannot_run_falls_back_at_compile_time(tmp_path: Path) -> None:
    model = _maxpool_v2_model(tmp_path)
    pool = "PartitionedCall/MaxPoolV2"  # not a default Neuron op: forced in
    args = [script("neuron-compile"), str(model), str(tmp_path / "out"), "--json",
            "--force_fuse_ops", pool]
    done = subprocess.run(args, capture_output=True, text=True, env=NO_ONEDNN)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (segment,) = [s for s in report["segments"] if "MaxPoolV2" in s["op_histogram"]]
    assert not segment["compiled"]
    assert segment["reason"].startswith("the program does not run: ")
    assert "MaxPoolV2" in segment["reason"] or "NHWC" in segment["reason"]
    failed = [r for r in report["cpu_nodes"] if r.startswith("segment ")]
    assert failed == [f"segment {segment['index']} failed to compile: {segment['reason']}"]
    strict = subprocess.run([*args[:2], str(tmp_path / "strict"), "--force_fuse_ops", pool,
                             "--must-compile"],
                            capture_output=True, text=True, env=NO_ONEDNN)
    assert strict.returncode == 1
    assert strict.stderr.startswith("error: --must-compile: 1 segment(s) failed to compile: "
                                    f"segment {segment['index']} (the program does not run: ")
    assert not (tmp_path / "strict").exists()


def _keras_channels_first() -> keras.Model:
    keras.utils.set_random_seed(3)
    image, volume = keras.Input((3, 8, 8)), keras.Input((2, 6, 6, 6))
    x = keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first")(image)
    x = keras.layers.BatchNormalization(axis=1)(x)
    x = keras.layers.MaxPooling2D(2, data_format="channels_first")(x)
    x = keras.layers.Conv2DTranspose(2, 2, strides=2, data_format="channels_first")(x)
    x = keras.layers.AveragePooling2D(2, data_format="channels_first")(x)
    v = keras.layers.Conv3D(4, 3, data_format="channels_first", activation="relu")(volume)
    v = keras.layers.MaxPooling3D(2, data_format="channels_first")(v)
    v = keras.layers.GlobalAveragePooling3D(data_format="channels_first")(v)
    return keras.Model([image, volume], [keras.layers.Flatten()(x), v])


def test_keras_channels_first_layers_trace_onto_neuron_and_run() -> None:
    model = _keras_channels_first()
    rng = np.random.default_rng(4)
    inputs = [rng.normal(size=(2, 3, 8, 8)).astype(np.float32),
              rng.normal(size=(2, 2, 6, 6, 6)).astype(np.float32)]
    traced = neuroncli.trace(model, inputs)
    # Keras 3's Conv3D runs in a jit-compiled no-inline function: inlined, it is on Neuron.
    assert not any(r.startswith("function call") for r in traced.report.cpu_nodes)
    ops = {op for s in traced.report.segments if s.compiled for op in s.op_histogram}
    assert {"Conv2D", "Conv3D", "MaxPool", "MaxPool3D", "Conv2DBackpropInput"} <= ops
    got = traced(inputs)
    want = model(inputs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=1e-4, atol=1e-5)


def test_marked_calls_are_found_and_inlined() -> None:
    @tf.function(jit_compile=True)
    def inner(x):
        return tf.nn.relu(x) * 3.0

    @tf.function(input_signature=[tf.TensorSpec([2], tf.float32)])
    def outer(x):
        return inner(x + 1.0)

    graph_def = outer.get_concrete_function().graph.as_graph_def()
    from neuroncli import proto
    graph_def = proto.GraphDef.FromString(graph_def.SerializeToString())
    (call,) = inline.marked_calls(graph_def)
    inlined = inline.inline_marked_calls(graph_def, ["x:0", "Identity:0"])
    assert inline.marked_calls(inlined) == []
    assert not any(n.op in inline.CALL_OPS for n in inlined.node)
    assert {"Relu", "Mul", "AddV2"} <= {n.op for n in inlined.node}
    untouched = proto.GraphDef()
    untouched.node.add(name="x", op="Placeholder")
    assert inline.inline_marked_calls(untouched, ["x:0"]) is untouched
