"""Dynamic batch turns itself on where the graph keeps rows independent (issue 10 §1).

Models compiled with defaults (batch 1) serve other batches as shards when every NeuronOp is
proven row-independent; a model with a batch-mixing op stays static, and the report,
``--json``, ``neuron-inspect`` and the runtime's error name the op.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli.errors import UserError
from neuroncli.inspection import inspect_saved_model
from neuroncli.runtime.reference import ReferenceModel
from neuroncli.saved_model import make_options
from tests import zoo
from tests.conftest import script

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

# A batch of 16 in the original sums its convolutions in another order than 16 shards of 1:
# outputs agree to ~2e-6 absolute, past verify's default atol of 1e-6.
ATOL = 1e-5


def _ops(model_dir: Path) -> list:
    (meta,) = inspect_saved_model(model_dir).meta_graphs
    return list(meta.neuron_ops)


def _verify_batches(original: Path, compiled: Path, batches: tuple[int, ...]) -> None:
    with neuroncli.load(compiled) as model, ReferenceModel(original) as reference:
        for batch in batches:
            feed = model.random_inputs(batch, batch)
            got, want = model(feed), reference(feed)
            assert got.keys() == want.keys()
            for key in want:
                assert got[key].shape[0] == batch
                np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=ATOL)
        # batch 1 runs as is; 2, 3 and 16 as 2 + 3 + 16 shards of the compiled batch 1
        assert sum(model.stats().core_calls.values()) == sum(batches)


def _zoo_compiles_dynamic(name: str, zoo_root: Path, tmp_path: Path) -> None:
    original = zoo.build(name, zoo_root)
    report = neuroncli.saved_model.compile_with_report(
        original, tmp_path / "compiled", make_options())
    assert [s.dynamic_batch for s in report.segments if s.compiled] == ["auto"]
    (op,) = _ops(tmp_path / "compiled")
    assert op.input_batch_axis == (0,) and op.output_batch_axis == (0,)
    assert op.program["dynamic_batch"] == "auto" and op.program["batch_size"] == 1
    _verify_batches(original, tmp_path / "compiled", (1, 2, 3, 16))


def test_mobilenetv2_compiled_with_defaults_serves_any_batch(zoo_root: Path,
                                                             tmp_path: Path) -> None:
    _zoo_compiles_dynamic("mobilenetv2", zoo_root, tmp_path)


@pytest.mark.slow
def test_resnet50_compiled_with_defaults_serves_any_batch(zoo_root: Path,
                                                          tmp_path: Path) -> None:
    _zoo_compiles_dynamic("resnet50", zoo_root, tmp_path)


def _three_in_five_out() -> keras.Model:
    keras.utils.set_random_seed(5)
    image, seq, tab = keras.Input((8, 8, 3)), keras.Input((6, 4)), keras.Input((7,))
    conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    attn = keras.layers.Dense(5)(keras.layers.LayerNormalization()(seq))
    tab_h = keras.layers.Dense(5, activation="tanh")(tab)
    merged = keras.layers.Concatenate()([pooled, keras.layers.Flatten()(attn), tab_h])
    logits = keras.layers.Dense(3)(merged)
    return keras.Model([image, seq, tab],
                       [logits, keras.layers.Softmax()(logits), conv,
                        keras.layers.Reshape((6, 5, 1))(attn), tab_h * 2.0])


def test_traced_keras_model_3_inputs_5_outputs_traced_at_3_runs_at_5() -> None:
    model = _three_in_five_out()
    rng = np.random.default_rng(0)

    def inputs(batch: int) -> list:
        return [rng.normal(size=(batch, 8, 8, 3)).astype(np.float32),
                rng.normal(size=(batch, 6, 4)).astype(np.float32),
                rng.normal(size=(batch, 7)).astype(np.float32)]

    traced = neuroncli.trace(model, inputs(3))
    assert {s.dynamic_batch for s in traced.report.segments if s.compiled} == {"auto"}
    for batch in (5, 3, 1):
        feed = inputs(batch)
        got, want = traced(feed), model(feed)
        assert len(got) == len(want) == 5
        for g, w in zip(got, want):
            assert np.asarray(g).shape == tuple(w.shape) and w.shape[0] == batch
            np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=1e-5, atol=1e-5)


class _Mixing(tf.Module):
    """Rows are normalised by the batch mean: output row i depends on every row."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        h = tf.nn.relu(x * 2.0 + 1.0)
        centred = h - tf.reduce_mean(h, axis=0, keepdims=True)
        return tf.tanh(centred * 3.0)


@pytest.fixture(scope="module")
def mixing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixing")
    module = _Mixing()
    tf.saved_model.save(module, str(root / "model"),
                        signatures=module.__call__.get_concrete_function())
    return root


def test_batch_mixing_model_stays_static_and_names_the_op(mixing: Path) -> None:
    out = mixing / "static"
    done = subprocess.run([script("neuron-compile"), str(mixing / "model"), str(out),
                           "--json", "--force"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (segment,) = json.loads(done.stdout)["segments"]
    assert segment["dynamic_batch"] == "static"
    assert segment["batch_reason"] == "Mean 'PartitionedCall/Mean' reduces over " \
                                      "the batch axis 0"
    (op,) = _ops(out)
    assert op.input_batch_axis == (-1,) and op.output_batch_axis == (-1,)
    assert (op.program["dynamic_batch"], op.program["batch_reason"]) == (
        "static", segment["batch_reason"])
    shown = subprocess.run([script("neuron-inspect"), str(out)], capture_output=True,
                           text=True, env={"COLUMNS": "400", "NO_COLOR": "1",
                                           "PATH": "/usr/bin:/bin"})
    assert "static batch: Mean 'PartitionedCall/Mean' reduces over the batch" \
        in shown.stdout
    model = neuroncli.load(out)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    with pytest.raises(UserError) as caught:
        model(x=x)
    assert str(caught.value) == (
        f"input 'x' (NeuronOp {op.name} input 0) has shape (2, 4) but the program was "
        f"compiled for exactly (1, 4) (NeuronOp {op.name} has a static batch: Mean "
        "'PartitionedCall/Mean' reduces over the batch axis 0): pass that shape, or "
        "recompile with NEURON_CC_FLAGS=--dynamic-batch-size to accept other batch sizes")
    np.testing.assert_allclose(model(x=x[:1])["output_0"], _Mixing()(x[:1]).numpy(),
                               rtol=1e-6)


def test_dynamic_batch_size_flag_still_forces_it(mixing: Path) -> None:
    out = mixing / "forced"
    report = neuroncli.saved_model.compile_with_report(
        mixing / "model", out, make_options(
            compiler_args="--dynamic-batch-size", force=True))
    (segment,) = report.segments
    assert (segment.dynamic_batch, segment.batch_reason) == ("forced", "")
    (op,) = _ops(out)
    assert op.input_batch_axis == (0,) and op.program["dynamic_batch"] == "forced"
    # Forced on a batch-mixing graph: each shard normalises its own row (as AWS's would).
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    got = neuroncli.load(out)(x=x)["output_0"]
    np.testing.assert_allclose(got, np.tanh(np.zeros((2, 4))), atol=1e-6)


def test_a_signature_with_a_fixed_batch_stays_static(tmp_path: Path) -> None:
    class Fixed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            return tf.nn.relu(x * 2.0 + 1.0)
    module = Fixed()
    tf.saved_model.save(module, str(tmp_path / "model"),
                        signatures=module.__call__.get_concrete_function())
    report = neuroncli.saved_model.compile_with_report(
        tmp_path / "model", tmp_path / "out", make_options())
    (segment,) = report.segments
    assert segment.dynamic_batch == "static"
    assert segment.batch_reason.startswith("no input carries a batch axis")
