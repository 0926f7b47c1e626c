"""The TensorFlow reference runner (the verification oracle) on the committed fixtures.

Each fixture is also recomputed in plain numpy from the weights in its checkpoint, so the oracle
is checked against an independent path rather than against TensorFlow itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from neuroncli.errors import UserError
from neuroncli.runtime.reference import ReferenceModel, run_savedmodel

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _inputs(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.inputs.npz") as data:
        return {k: data[k] for k in data.files}


def _checkpoint(name: str) -> dict[str, np.ndarray]:
    import tensorflow as tf
    reader = tf.train.load_checkpoint(str(FIXTURES / name / "variables" / "variables"))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.fixture(scope="module")
def keras_dense() -> Iterator[ReferenceModel]:
    with ReferenceModel(FIXTURES / "keras_dense") as model:
        yield model


# --------------------------------------------------------------------------- fixtures

def test_keras_dense_matches_numpy(keras_dense: ReferenceModel) -> None:
    x = _inputs("keras_dense")["features"]
    out = keras_dense({"features": x})
    assert list(out) == ["output_0"]
    probs = out["output_0"]
    assert probs.shape == (2, 8) and probs.dtype == np.float32

    weights = _checkpoint("keras_dense")
    by_shape = {v.shape: v for k, v in weights.items() if k.startswith("variables/")}
    w1, b1, w2, b2 = (by_shape[s] for s in [(16, 32), (32,), (32, 8), (8,)])
    assert np.all(b1 != 0) and np.all(b2 != 0)  # nonzero biases: grappler must keep them
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


def test_keras_dense_matches_tf_saved_model_load() -> None:
    import tensorflow as tf
    x = _inputs("keras_dense")["features"]
    direct = tf.saved_model.load(str(FIXTURES / "keras_dense")).signatures["serving_default"]
    expected = direct(features=tf.constant(x))["output_0"].numpy()
    got = run_savedmodel(FIXTURES / "keras_dense", {"features": x})["output_0"]
    np.testing.assert_array_equal(got, expected)


def test_tf1_conv_matches_numpy() -> None:
    feeds = _inputs("tf1_conv")
    model = ReferenceModel(FIXTURES / "tf1_conv")
    assert not model.is_tf2 and model.tags == ("serve",)
    assert list(model.inputs) == ["bias_map", "image"]
    out = model(feeds)
    model.close()
    assert sorted(out) == ["mean", "probs"]
    assert out["probs"].shape == (2, 8, 8, 4) and out["probs"].dtype == np.float32
    assert out["mean"].shape == (2, 4) and out["mean"].dtype == np.float32

    weights = _checkpoint("tf1_conv")
    kernel, bias = weights["conv/kernel"], weights["conv/bias"]
    assert np.all(bias != 0)
    padded = np.pad(feeds["image"], ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((2, 8, 8, 4), np.float64)
    for dy in range(3):
        for dx in range(3):
            conv += np.einsum("nhwc,co->nhwo", padded[:, dy:dy + 8, dx:dx + 8, :],
                              kernel[dy, dx])
    probs = 1 / (1 + np.exp(-np.maximum(conv + bias + feeds["bias_map"], 0)))
    np.testing.assert_allclose(out["probs"], probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["mean"], probs.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_strings_dense_matches_numpy() -> None:
    csv = _inputs("strings_dense")["csv"]
    assert csv.dtype.kind == "S"
    out = run_savedmodel(FIXTURES / "strings_dense", {"csv": csv})
    assert sorted(out) == ["label", "scores"]
    assert out["scores"].shape == (2, 3) and out["scores"].dtype == np.float32
    assert out["label"].shape == (2,) and out["label"].dtype == object
    assert all(isinstance(v, bytes) for v in out["label"])

    weights = _checkpoint("strings_dense")
    w = next(v for k, v in weights.items() if k.startswith("w/"))
    b = next(v for k, v in weights.items() if k.startswith("b/"))
    dense = np.array([[float(v) for v in row.split(b",")] for row in csv], np.float32)
    scores = np.maximum(dense @ w + b, 0)
    np.testing.assert_allclose(out["scores"], scores, rtol=1e-5, atol=1e-6)
    names = np.array([b"low", b"mid", b"high"], dtype=object)
    assert list(out["label"]) == list(names[scores.argmax(axis=1)])


def test_string_inputs_accept_str_and_short_rows() -> None:
    out = run_savedmodel(FIXTURES / "strings_dense", {"csv": ["1,2,3,4", "0.5,-1"]})
    assert out["scores"].shape == (2, 3)
    again = run_savedmodel(FIXTURES / "strings_dense",
                           {"csv": np.array([b"1,2,3,4", b"0.5,-1,0,0"], dtype=object)})
    np.testing.assert_array_equal(out["scores"], again["scores"])  # short rows pad with 0


# --------------------------------------------------------------------------- API behaviour

def test_reference_model_is_reusable_across_batch_sizes(keras_dense: ReferenceModel) -> None:
    x = _inputs("keras_dense")["features"]
    first = keras_dense({"features": x})["output_0"]
    many = keras_dense({"features": np.concatenate([x, x, x])})["output_0"]
    assert many.shape == (6, 8)
    np.testing.assert_allclose(many[2:4], first, rtol=1e-6, atol=1e-7)
    as_float64 = keras_dense({"features": x.astype(np.float64)})["output_0"]
    assert as_float64.dtype == np.float32


def test_signature_and_tags_selection() -> None:
    x = _inputs("keras_dense")["features"]
    model = ReferenceModel(FIXTURES / "keras_dense", signature_def_key="serve", tags=["serve"])
    assert model.signature_key == "serve" and model.is_tf2
    assert model({"features": x})["output_0"].shape == (2, 8)
    model.close()
    with pytest.raises(UserError, match="was closed"):
        model({"features": x})
    with pytest.raises(UserError, match="no signature 'nope'"):
        ReferenceModel(FIXTURES / "keras_dense", signature_def_key="nope")
    with pytest.raises(UserError, match="no meta graph with tag set"):
        ReferenceModel(FIXTURES / "tf1_conv", tags=["train"])


@pytest.mark.parametrize("inputs, message", [
    ({}, r"missing \['features'\]"),
    ({"features": np.zeros((2, 16), np.float32), "extra": 1}, r"unknown \['extra'\]"),
    ({"features": np.zeros((2, 15), np.float32)}, r"shape \[None, 16\] but got \[2, 15\]"),
    ({"features": np.zeros((16,), np.float32)}, "rank 2"),
    ({"features": np.array([["a"] * 16])}, "float32 but got <U1"),
])
def test_bad_inputs_are_user_errors(keras_dense: ReferenceModel, inputs: dict,
                                    message: str) -> None:
    with pytest.raises(UserError, match=message):
        keras_dense(inputs)


def test_runtime_errors_name_the_op() -> None:
    with pytest.raises(UserError, match="StringToNumber"):
        run_savedmodel(FIXTURES / "strings_dense", {"csv": ["1,2,3,4", "x"]})


def test_missing_model_dir_is_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such directory"):
        run_savedmodel(tmp_path / "nope", {})


def test_import_does_not_import_tensorflow() -> None:
    code = ("import sys\nimport neuroncli.runtime.reference\n"
            "print('TF' if 'tensorflow' in sys.modules else 'NOTF')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "NOTF"
