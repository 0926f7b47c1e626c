"""neuroncli.trace: the four example_inputs forms, subgraph_builder_function, save and load."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import neuroncli
from neuroncli.errors import UserError
from neuroncli.format.counts import count_meta_graph
from neuroncli.savedmodel import read_saved_model
from tests.conftest import script


def _dense_model() -> keras.Model:
    # input(3) -> Dense(3) -> Reshape(1,3) -> Dense(2, sigmoid)   (AWS's docs example)
    keras.utils.set_random_seed(0)
    inp = keras.Input((3,))
    x = keras.layers.Dense(3, bias_initializer="random_normal")(inp)
    x = keras.layers.Reshape([1, 3])(x)
    out = keras.layers.Dense(2, activation="sigmoid", bias_initializer="random_normal")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def dense() -> keras.Model:
    return _dense_model()


@pytest.fixture(scope="module")
def traced(dense: keras.Model) -> object:
    return neuroncli.trace(dense, tf.random.uniform([1, 3], seed=1))


def test_traced_dense_matches_keras(dense: keras.Model, traced: object) -> None:
    x = tf.random.uniform([1, 3], seed=2)
    np.testing.assert_allclose(traced(x).numpy(), dense(x).numpy(), rtol=1e-5)
    assert traced.on_neuron_ratio > 0.5
    assert traced.report.counts.neuron_ops == 1


def test_tensor_list_tuple_and_dict_forms() -> None:
    a = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3))
    b = tf.constant(np.ones((2, 3), np.float32))

    @tf.function
    def one(x):
        return tf.nn.relu(x * 2.0 + 1.0)

    def from_list(xs):
        return tf.tanh(xs[0] * xs[1] + 0.5)

    def star(x, y):
        return tf.sigmoid(x - y * 3.0)

    def kw(left, right):
        return {"sum": left + right * 2.0, "prod": tf.nn.relu(left * right)}

    cases = [(one, a, lambda m: m(a), lambda: one(a)),
             (from_list, [a, b], lambda m: m([a, b]), lambda: from_list([a, b])),
             (star, (a, b), lambda m: m(a, b), lambda: star(a, b)),
             (kw, {"left": a, "right": b}, lambda m: m(left=a, right=b), lambda: kw(a, b))]
    for func, example, call, expected in cases:
        model = neuroncli.trace(func, example)
        got, want = call(model), expected()
        if isinstance(want, dict):
            assert sorted(got) == sorted(want)
            for key in want:
                np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-6)
        else:
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_mixed_positional_and_keyword_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="mixes positional and keyword"):
        neuroncli.trace(lambda x, y=None: x, (tf.ones([1, 2]), {"y": tf.ones([1, 2])}))


def test_no_inputs_warns_and_returns_the_function(caplog: pytest.LogCaptureFixture) -> None:
    def constant():
        return tf.constant([1.0])

    caplog.set_level("WARNING", logger="neuroncli")
    assert neuroncli.trace(constant, ()) is constant
    assert "no inputs" in caplog.text


def test_subgraph_builder_function_keeps_exactly_the_sigmoid_on_cpu(dense: keras.Model) -> None:
    x = tf.random.uniform([1, 3], seed=3)
    model = neuroncli.trace(dense, x, subgraph_builder_function=lambda n: n.op != "Sigmoid")
    refused = model.report.cpu_nodes["refused by subgraph_builder_function"]
    assert [name.rsplit("/", 1)[-1] for name in refused] == ["Sigmoid"]
    compute = {r: n for r, n in model.report.cpu_nodes.items()
               if r not in ("signature input", "NoOp has nothing to compute")
               and "nothing to compute" not in r}
    assert list(compute) == ["refused by subgraph_builder_function"]
    np.testing.assert_allclose(model(x).numpy(), dense(x).numpy(), rtol=1e-5)


def test_save_load_inspect_and_auto_multicore(dense: keras.Model, traced: object,
                                              tmp_path: Path) -> None:
    traced.save(tmp_path / "saved")
    x = np.random.default_rng(0).random((1, 3), dtype=np.float32)
    loaded = neuroncli.load(tmp_path / "saved")
    np.testing.assert_allclose(loaded(x).numpy(), dense(x).numpy(), rtol=1e-5)  # a tensor
    shown = subprocess.run([script("neuron-inspect"), str(tmp_path / "saved"), "--json"],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    (meta,) = json.loads(shown.stdout)["meta_graphs"]
    counts = count_meta_graph(read_saved_model(tmp_path / "saved").saved_model.meta_graphs[0])
    assert (meta["ops_total"], meta["ops_on_neuron"]) == (counts.total, counts.on_neuron)
    assert len(meta["neuron_ops"]) == counts.neuron_ops >= 1
    assert meta["neuron_ops"][0]["inputs"][0]["shape"] == [1, 3]
    result = subprocess.run([script("tf-neuron-auto-multicore"), str(tmp_path / "saved"),
                             "--num_cores", "2", "--new_model_dir", str(tmp_path / "mc")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    replicated = neuroncli.load(tmp_path / "mc")
    assert replicated.cores == (0, 1)
    with pytest.raises(UserError, match="already exists"):
        traced.save(tmp_path / "saved")


def test_string_parsing_step_stays_on_cpu_and_matches() -> None:
    @tf.function
    def parse_and_score(text):
        numbers = tf.strings.to_number(tf.strings.split(text, ",").to_tensor("0"))
        return tf.nn.relu(tf.matmul(numbers, tf.ones([4, 2])) + 0.5)

    text = tf.constant(["1,2,3,4", "0.5,0.25,1,2"])
    model = neuroncli.trace(parse_and_score, text)
    np.testing.assert_allclose(model(text).numpy(), parse_and_score(text).numpy(), rtol=1e-6)
    assert any("String" in reason or "string" in reason for reason in model.report.cpu_nodes)


def test_traced_model_takes_the_placement_calls(dense: keras.Model, traced: object) -> None:
    from neuroncli.runtime import NeuronRuntime, set_default_runtime
    x = tf.random.uniform([1, 3], seed=4)
    previous = set_default_runtime(NeuronRuntime("inf2.24xlarge", visible_cores="0-3"))
    try:
        with neuroncli.neuron_cores_context(start_nc=1, nc_count=1):
            placed = neuroncli.trace(dense, x)
        assert placed.neuron_model.cores == (1,)
        replicated = neuroncli.auto_multicore(placed, x, 3)
        assert replicated.neuron_model.cores == (0, 1, 2)
        np.testing.assert_allclose(replicated(x).numpy(), dense(x).numpy(), rtol=1e-5)
        neuroncli.set_neuron_cores(placed, 3, 1)
        assert placed.neuron_model.cores == (3,)
    finally:
        set_default_runtime(previous)


def test_analyze_model_counts_supported_and_unsupported_ops(capsys) -> None:
    @tf.function
    def parse_and_score(text):
        numbers = tf.strings.to_number(tf.strings.split(text, ",").to_tensor("0"))
        return tf.nn.relu(tf.matmul(numbers, tf.ones([4, 2])))

    result = neuroncli.analyze_model(parse_and_score, tf.constant(["1,2,3,4"]))
    assert result["supported"]["MatMul"] == 1 and result["supported"]["Relu"] == 1
    assert result["unsupported"]["StringToNumber"] == 1
    total = sum(result["supported"].values()) + sum(result["unsupported"].values())
    assert result["total"] == total
    assert result["percent_supported"] == pytest.approx(
        100 * sum(result["supported"].values()) / total)
    assert "operations supported" in capsys.readouterr().out


def test_calling_a_traced_model_the_wrong_way_is_a_clear_error(traced: object) -> None:
    x = tf.random.uniform([1, 3], seed=5)
    with pytest.raises(UserError, match=r"^this traced model is called as model\(input_0\): "
                                        r"it takes 1 positional argument\(s\), got 2$"):
        traced(x, x)
    with pytest.raises(UserError, match=r"^this traced model is called as model\(input_0\): "
                                        r"it takes 1 positional argument\(s\), got 0$"):
        traced(input_0=x)
