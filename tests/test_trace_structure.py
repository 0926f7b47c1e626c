"""Nested trace inputs and outputs keep their structure, before and after save + load.

Keras Attention layers take ``[query, value]``; functions take ``([t0, t1], t2)`` or
``a=[t0, t1]``; outputs are a tensor, a list, a tuple, a dict or a nest of them.  A traced
Keras model takes the feeds Keras standardises (a dict by input name, a missing or extra
trailing unit dimension).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neuroncli
from neuroncli.errors import UserError
from neuroncli.tracing.structure import CallStructure, saved_structure

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _assert_same(got: Any, want: Any) -> None:
    """Same nest (types included) and values."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, dict):
        assert sorted(got) == sorted(want)
        for key in want:
            _assert_same(got[key], want[key])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
    else:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def _uniform(*shape: int, seed: int) -> Any:
    return tf.random.uniform(shape, seed=seed)


@pytest.mark.parametrize("layer", ["Attention", "AdditiveAttention"])
def test_keras_attention_layers_take_query_and_value(layer: str) -> None:
    keras.utils.set_random_seed(0)
    query, value = keras.Input((4, 8)), keras.Input((5, 8))
    model = keras.Model([query, value], getattr(keras.layers, layer)()([query, value]))
    q, v = _uniform(2, 4, 8, seed=1), _uniform(2, 5, 8, seed=2)
    traced = neuroncli.trace(model, [q, v])
    assert traced.report.counts.neuron_ops >= 1
    _assert_same(traced([q, v]), model([q, v]))
    # the layer itself, traced directly, takes the same list
    bare = getattr(keras.layers, layer)()
    _assert_same(neuroncli.trace(bare, [q, v])([q, v]), bare([q, v]))


def test_nested_tuple_and_dict_inputs_reach_the_function_unstacked(tmp_path: Path) -> None:
    t0, t1, t2 = (_uniform(1, 3, seed=s) for s in (3, 4, 5))
    seen: list = []

    def pair_then_tensor(pair, k):
        seen.append((type(pair).__name__, len(pair)))
        return tf.nn.relu(pair[0] * 2.0 - pair[1]) + k

    def keyword_list(a):
        return tf.tanh(a[0] - a[1] * 3.0)

    traced = neuroncli.trace(pair_then_tensor, ([t0, t1], t2))
    assert seen[0] == ("list", 2)  # a list of two tensors, not one stacked tensor
    assert traced.structure.describe() == "model([input_0, input_1], input_2)"
    _assert_same(traced([t0, t1], t2), pair_then_tensor([t0, t1], t2))
    keyword = neuroncli.trace(keyword_list, {"a": [t0, t1]})
    assert keyword.structure.describe() == "model(a=[input_0, input_1])"
    _assert_same(keyword(a=[t0, t1]), keyword_list([t0, t1]))
    keyword.save(tmp_path / "kw")
    _assert_same(neuroncli.load(tmp_path / "kw")(a=[t0, t1]), keyword_list([t0, t1]))
    with pytest.raises(UserError, match=r"called as model\(a=\[input_0, input_1\]\): keyword "
                                        r"arguments\['a'\]: expected 2 item\(s\), got 3 item\(s\)"):
        keyword(a=[t0, t1, t2])


def test_keras_model_with_dict_inputs_gets_the_dict() -> None:
    keras.utils.set_random_seed(1)
    inputs = {"left": keras.Input((3,), name="left"), "right": keras.Input((3,), name="right")}
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([inputs["left"], inputs["right"]]))
    model = keras.Model(inputs, out)
    feed = {"left": _uniform(2, 3, seed=6), "right": _uniform(2, 3, seed=7)}
    traced = neuroncli.trace(model, feed)
    assert traced.structure.describe() == "model({'left': left, 'right': right})"
    _assert_same(traced(feed), model(feed))


def _output_cases() -> dict[str, Any]:
    def tensor(x):
        return tf.nn.relu(x)

    def as_list(x):
        return [x + 1.0, tf.sigmoid(x)]

    def as_tuple(x):
        return (x * 2.0,)

    def as_dict(x):
        return {"b": x - 1.0, "a": tf.tanh(x)}

    def nested(x):
        return {"z": [x + 1.0, (x * 3.0, {"deep": tf.nn.relu(x)})], "a": x - 2.0}

    return {f.__name__: f for f in (tensor, as_list, as_tuple, as_dict, nested)}


@pytest.mark.parametrize("name", sorted(_output_cases()))
def test_output_structure_before_and_after_save_and_load(name: str, tmp_path: Path) -> None:
    func = _output_cases()[name]
    x = _uniform(1, 4, seed=8)
    traced = neuroncli.trace(func, x)
    _assert_same(traced(x), func(x))
    traced.save(tmp_path / name)
    loaded = neuroncli.load(tmp_path / name)
    assert loaded.structure == traced.structure
    _assert_same(loaded(x), func(x))
    # the runtime's own loader still serves the flat signature (neuron-run, neuron-verify)
    flat = neuroncli.runtime.load(tmp_path / name)
    assert sorted(flat(x.numpy())) == sorted(traced.structure.output_keys)


def test_keras_standardised_feeds_work_like_keras() -> None:
    keras.utils.set_random_seed(2)
    first, second = keras.Input((1,), name="first"), keras.Input((3,), name="second")
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([first * 2.0, second]))
    model = keras.Model([first, second], out)
    a, b = _uniform(4, 1, seed=9), _uniform(4, 3, seed=10)
    traced = neuroncli.trace(model, [a, b])
    want = model([a, b])
    missing_unit = tf.reshape(a, [4])  # Keras adds the trailing unit dimension back
    _assert_same(model([missing_unit, b]), want)
    _assert_same(traced([missing_unit, b]), want)
    _assert_same(traced({"first": a, "second": b}), want)  # by input name
    _assert_same(traced([a.numpy().astype(np.float64), b]), want)  # cast like Keras
    with pytest.raises(UserError, match=r"expected 2 item\(s\), got 3 item\(s\)"):
        traced([a, b, b])

    single_input = keras.Input((3, 1), name="only")
    one = keras.Model([single_input], keras.layers.Dense(2)(keras.layers.Flatten()(
        single_input)))
    x = _uniform(2, 3, 1, seed=11)
    traced_one = neuroncli.trace(one, [x])
    _assert_same(traced_one(x), one(x))  # one tensor for a one-input list
    _assert_same(traced_one([tf.reshape(x, [2, 3])]), one(x))


def test_auto_multicore_of_a_trace_keeps_structure_and_replicas(tmp_path: Path) -> None:
    from neuroncli.runtime import NeuronRuntime, set_default_runtime

    def nested(pair):
        return {"sum": pair[0] + pair[1], "both": [tf.nn.relu(pair[0]), pair[1] * 2.0]}

    x = [_uniform(1, 3, seed=12), _uniform(1, 3, seed=13)]
    previous = set_default_runtime(NeuronRuntime("inf2.24xlarge", visible_cores="0-3"))
    try:
        traced = neuroncli.trace(nested, x)
        replicated = neuroncli.auto_multicore(traced, x, num_cores=2)
        assert replicated.neuron_model.cores == (0, 1)
        replicated.save(tmp_path / "x2")
        replicated.unload()
        traced.unload()
        loaded = neuroncli.load(tmp_path / "x2")
        assert loaded.neuron_model.cores == (0, 1)
        _assert_same(loaded(x), nested(x))
    finally:
        set_default_runtime(previous)


def test_structure_round_trips_through_its_saved_form() -> None:
    from neuroncli import proto
    structure = CallStructure(([["input_0", "input_1"], ("input_2",)],), {"k": "input_3"},
                              {"b": ("output_0", ["output_1"]), "a": "output_2"},
                              ("q", "v"))
    signature = proto.SignatureDef()
    signature.inputs["input_0"].dtype = 1
    info = proto.MetaGraphDef().meta_info_def
    info.any_info.Pack(structure.to_proto(signature))
    assert saved_structure(info) == structure
    assert saved_structure(proto.MetaGraphDef().meta_info_def) is None


def test_neuron_inspect_shows_a_saved_traces_call(tmp_path: Path) -> None:
    import json
    import subprocess

    from tests.conftest import FIXTURES, script

    def nested(pair, k):
        return {"s": pair[0] + k, "p": [pair[1] * 2.0, (tf.nn.relu(k),)]}

    x = _uniform(1, 3, seed=14)
    neuroncli.trace(nested, ([x, x], x)).save(tmp_path / "traced")
    for model_dir, want in (
            (tmp_path / "traced",
             "model([input_0, input_1], input_2) -> {'p': [output_0, (output_1,)], "
             "'s': output_2}"),
            (FIXTURES / "keras_dense", None)):
        shown = subprocess.run([script("neuron-inspect"), str(model_dir), "--json"],
                               capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        (meta,) = json.loads(shown.stdout)["meta_graphs"]
        assert meta["traced_call"] == want
