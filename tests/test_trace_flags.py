"""neuroncli.trace with NEURON_CC_FLAGS: dynamic batch, pipeline cores, workdir, must-compile,
and a Keras ResNet50 end to end (trace, save, load, tf-neuron-auto-multicore, load again).

tests/test_trace.py covers the calling conventions and the placement calls; here every test
sets ``NEURON_CC_FLAGS`` (which ``trace`` reads from the environment) and checks what the flag
changes: the NeuronOp's attributes, the cores the simulator uses, the files written, the errors.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import pytest
import tensorflow as tf

import neuroncli
from neuroncli import proto
from neuroncli.errors import UserError
from neuroncli.format import executable as exe
from neuroncli.format.neuron_op import from_attrs
from neuroncli.inspection import inspect_saved_model
from tests.conftest import script

SEED = 20240


@pytest.fixture(scope="module", autouse=True)
def runtime() -> Iterator[object]:
    """A 2-core inf2.xlarge, whatever the environment says, for every model of this module."""
    from neuroncli.runtime import NeuronRuntime, set_default_runtime
    sim = NeuronRuntime("inf2.xlarge", environ={})
    previous = set_default_runtime(sim)
    yield sim
    set_default_runtime(previous)


@pytest.fixture(autouse=True)
def no_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURON_CC_FLAGS", raising=False)


@pytest.fixture(scope="module")
def small_cnn() -> keras.Model:
    # image(8,8,3) -> Conv2D(4) -> BatchNorm -> ReLU -> GlobalAveragePooling -> Dense(5)
    keras.utils.set_random_seed(SEED)
    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", bias_initializer="random_normal")(image)
    x = keras.layers.BatchNormalization(beta_initializer="random_normal")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5, bias_initializer="random_normal")(x)
    return keras.Model(image, out)


def _images(batch: int, seed: int, side: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, side, side, 3)).astype(np.float32)


def _neuron_ops(model_dir: Path) -> list:
    (meta,) = inspect_saved_model(model_dir).meta_graphs
    return list(meta.neuron_ops)


def test_dynamic_batch_size_serves_any_batch(small_cnn: keras.Model,
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("NEURON_CC_FLAGS", "--dynamic-batch-size")
    traced = neuroncli.trace(small_cnn, tf.constant(_images(1, 0)))
    assert traced.report.counts.neuron_ops == 1
    for batch in (1, 5, 16):
        x = _images(batch, batch)
        got = traced(x).numpy()
        assert got.shape == (batch, 5)
        np.testing.assert_allclose(got, small_cnn(x).numpy(), rtol=1e-5)
    # Compiled for batch 1: a batch of B ran as B shards on the NeuronCores (none on the CPU).
    assert sum(traced.stats().core_calls.values()) == 1 + 5 + 16
    traced.save(tmp_path / "saved")
    (op,) = _neuron_ops(tmp_path / "saved")
    assert op.input_batch_axis == (0,) and op.output_batch_axis == (0,)
    assert op.program["batch_size"] == 1


def test_without_dynamic_batch_size_it_turns_itself_on(small_cnn: keras.Model,
                                                       tmp_path: Path) -> None:
    """Conv, BatchNorm, ReLU, pooling and Dense keep rows apart: the compiler proves it, as
    AWS's trace does, and the batch-1 trace serves a batch of 5 (tests/test_dynamic_batch.py
    has the models that stay static)."""
    traced = neuroncli.trace(small_cnn, tf.constant(_images(1, 0)))
    traced.save(tmp_path / "saved")
    (op,) = _neuron_ops(tmp_path / "saved")
    assert op.input_batch_axis == (0,) and op.output_batch_axis == (0,)
    assert op.program["dynamic_batch"] == "auto"
    x = _images(5, 1)
    np.testing.assert_allclose(traced(x).numpy(), small_cnn(x).numpy(), rtol=1e-5)


def test_pipeline_cores_occupy_two_cores_and_refuse_replication(
        small_cnn: keras.Model, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from neuroncli.runtime import NeuronRuntime, set_default_runtime
    monkeypatch.setenv("NEURON_CC_FLAGS", "--neuroncore-pipeline-cores=2")
    x = _images(1, 3)
    previous = set_default_runtime(NeuronRuntime("inf2.24xlarge", visible_cores="0-3",
                                                 environ={}))
    try:
        traced = neuroncli.trace(small_cnn, tf.constant(x))
        assert traced.neuron_model.cores == (0, 1)
        assert traced.stats().replicas == ((0, 1),)  # one copy spanning two cores
        np.testing.assert_allclose(traced(x).numpy(), small_cnn(x).numpy(), rtol=1e-5)
        assert traced.stats().core_calls == {0: 1, 1: 1}  # the one execution held both
        with pytest.raises(UserError, match="2 pipeline cores .* cannot be replicated"):
            neuroncli.auto_multicore(traced, x, 2)
    finally:
        set_default_runtime(previous)
    traced.save(tmp_path / "saved")
    (op,) = _neuron_ops(tmp_path / "saved")
    config = op.model_config
    assert config[:3] == (2, 2, 64) and len(config) in (4, 5) and config[3] >= 10
    assert op.program["pipeline_cores"] == 2
    result = subprocess.run([script("tf-neuron-auto-multicore"), str(tmp_path / "saved"),
                             "--num_cores", "2", "--new_model_dir", str(tmp_path / "mc")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "2 pipeline cores" in lines[0] and "cannot be replicated" in lines[0]
    assert not (tmp_path / "mc").exists()


def test_workdir_that_is_a_file_is_refused_before_tracing(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """The command line's rule and message, before the function is even called."""
    work = tmp_path / "work"
    work.write_text("not a directory")
    monkeypatch.setenv("NEURON_CC_FLAGS", f"--workdir {work}")
    calls = []

    def func(x: object) -> object:
        calls.append(x)
        return x

    with pytest.raises(UserError) as caught:
        neuroncli.trace(func, tf.zeros([1, 4]))
    assert str(caught.value) == (f"compiler work directory {work}: exists and is not a "
                                 "directory: pass a directory (it is created if missing)")
    assert calls == [] and work.read_text() == "not a directory"


def test_workdir_holds_the_real_graphs_and_programs(small_cnn: keras.Model,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    work = tmp_path / "my work"  # a space: the flag is parsed like a shell command line
    monkeypatch.setenv("NEURON_CC_FLAGS", f"--workdir {shlex.quote(str(work))}")
    x = _images(1, 4)
    traced = neuroncli.trace(small_cnn, tf.constant(x))
    np.testing.assert_allclose(traced(x).numpy(), small_cnn(x).numpy(), rtol=1e-5)
    index = json.loads((work / "segments.json").read_text())
    assert [(s["segment"], s["compiled"], s["folder"]) for s in index] == \
        [(0, True, "segment000")]
    for name in ("graph_def_shaped.pb", "graph_def_fused.pb", "segment000/graph_def.pb",
                 "segment000/executable.neff", "segment000/compile.log"):
        assert (work / name).is_file(), name

    def graph(name: str) -> object:
        return proto.GraphDef.FromString((work / name).read_bytes())

    (placeholder,) = [n for n in graph("graph_def_shaped.pb").node if n.op == "Placeholder"]
    assert [d.size for d in placeholder.attr["shape"].shape.dim] == [1, 8, 8, 3]
    (neuron_op,) = [n for n in graph("graph_def_fused.pb").node if n.op == "NeuronOp"]
    segment_ops = {n.op for n in graph("segment000/graph_def.pb").node}
    assert {"Placeholder", "Conv2D", "MatMul"} <= segment_ops
    neff = (work / "segment000" / "executable.neff").read_bytes()
    assert neff == from_attrs(neuron_op.attr).executable  # the very program in the model
    header, _ = exe.unpack(neff)
    assert header.batch_size == 1 and header.pipeline_cores == 1 and header.flops > 0
    assert "executable:" in (work / "segment000" / "compile.log").read_text()


def _parse_then_score() -> tuple[object, object]:
    """A string-parsing step before a Keras Dense: the segment after the parsing gets an
    input of unknown shape, which the partitioner accepts and the backend rejects."""
    keras.utils.set_random_seed(SEED)
    dense = keras.layers.Dense(3, activation="relu", bias_initializer="random_normal")
    dense.build((None, 4))  # inside the function its input has an unknown last dimension

    @tf.function
    def parse_and_score(text):
        numbers = tf.strings.to_number(tf.strings.split(text, ",").to_tensor("0"))
        return dense(numbers * 2.0 + 1.0)

    return parse_and_score, tf.constant(["1,2,3,4", "0.5,0.25,1,2", "4,3,2,1"])


def test_must_compile_names_the_rejected_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    func, text = _parse_then_score()
    fallback = neuroncli.trace(func, text)
    assert fallback.report.counts.neuron_ops == 0
    failed = [r for r in fallback.report.cpu_nodes if r.startswith("segment 0 failed")]
    assert len(failed) == 1 and "unknown shape" in failed[0]
    np.testing.assert_allclose(fallback(text).numpy(), func(text).numpy(), rtol=1e-6)
    monkeypatch.setenv("NEURON_CC_FLAGS", "--must-compile")
    with pytest.raises(UserError, match=r"--must-compile: 1 segment\(s\) failed to compile: "
                                        r"segment 0 \(.*unknown shape"):
        neuroncli.trace(func, text)


# -- Keras ResNet50 (random weights): one trace for the module --------------------------------

@pytest.fixture(scope="module")
def resnet() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(SEED)
    model = keras.applications.ResNet50(weights=None)
    x = np.random.default_rng(SEED).standard_normal((1, 224, 224, 3)).astype(np.float32)
    return model, x, model(x).numpy()


@pytest.fixture(scope="module")
def resnet_traced(resnet: tuple) -> Iterator[object]:
    model, x, _ = resnet
    traced = neuroncli.trace(model, tf.constant(x))
    yield traced
    traced.unload()


def _close(got: np.ndarray, want: np.ndarray) -> None:
    # Softmax over 1000 classes of a random net: every probability is ~1e-3, none near zero,
    # so a relative tolerance alone holds.
    assert want.min() > 1e-5
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_resnet50_trace_save_load_and_auto_multicore(resnet: tuple, resnet_traced: object,
                                                     tmp_path: Path) -> None:
    _, x, want = resnet
    assert resnet_traced.report.counts.neuron_ops == 1
    assert resnet_traced.on_neuron_ratio > 0.99
    _close(resnet_traced(x).numpy(), want)
    resnet_traced.save(tmp_path / "saved")
    with neuroncli.load(tmp_path / "saved") as loaded:
        _close(loaded(x).numpy(), want)  # a saved trace answers like the traced model
    result = subprocess.run([script("tf-neuron-auto-multicore"), str(tmp_path / "saved"),
                             "--num_cores", "2", "--new_model_dir", str(tmp_path / "mc")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with neuroncli.load(tmp_path / "mc") as replicated:
        assert replicated.cores == (0, 1) and replicated.replicas == ((0,), (1,))
        for _ in range(2):  # round robin: one call per core
            _close(replicated(x).numpy(), want)
        assert replicated.stats().core_calls == {0: 1, 1: 1}
