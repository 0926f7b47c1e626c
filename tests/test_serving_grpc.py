"""neuron-serve over gRPC with TF Serving's own stubs (``tensorflow_serving.apis``) on a real
channel: Predict equals ``neuroncli.load``, metadata, status, and every status code."""

from __future__ import annotations

import subprocess

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

import neuroncli
from tests.conftest import FIXTURES, script
from tests import serving_support as support
from tests.serving_support import Server, grpc_stubs, model_base, predict_request

compiled_models = support.compiled_models  # session fixtures
main_server = support.main_server

ROWS = np.load(FIXTURES / "keras_dense.inputs.npz")["features"]


@pytest.fixture(scope="module")
def stubs(main_server: Server):
    channel, prediction, model = grpc_stubs(main_server.grpc_address)
    yield prediction, model
    channel.close()


@pytest.fixture(scope="module")
def reference(compiled_models):
    with neuroncli.load(compiled_models["dense"]) as model:
        yield model


def test_predict_equals_neuroncli_load(stubs, reference) -> None:
    prediction, _ = stubs
    response = prediction.Predict(predict_request("dense", {"features": ROWS}), timeout=60)
    assert response.model_spec.name == "dense"
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"
    got = tf.make_ndarray(response.outputs["output_0"])
    np.testing.assert_array_equal(got, reference(features=ROWS)["output_0"])
    assert got.dtype == np.float32 and got.shape == (ROWS.shape[0], 8)


def test_predict_by_label_version_and_strings(stubs, compiled_models) -> None:
    prediction, _ = stubs
    request = predict_request("dense", {"features": ROWS[:1]})
    request.model_spec.version_label = "stable"
    assert prediction.Predict(request, timeout=60).model_spec.version.value == 2
    csv = np.load(FIXTURES / "strings_dense.inputs.npz")["csv"].astype(object)
    response = prediction.Predict(predict_request("strings", {"csv": csv}), timeout=60)
    with neuroncli.load(compiled_models["strings"]) as model:
        want = model(csv=csv)
    assert list(tf.make_ndarray(response.outputs["label"])) == list(want["label"])
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["scores"]), want["scores"])


def test_output_filter(stubs) -> None:
    prediction, _ = stubs
    csv = np.array([b"1,2,3,4"], dtype=object)
    request = predict_request("strings", {"csv": csv})
    request.output_filter.append("label")
    assert list(prediction.Predict(request, timeout=60).outputs) == ["label"]


def test_get_model_metadata(stubs, compiled_models) -> None:
    prediction, _ = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "dense"
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, timeout=60)
    assert response.model_spec.version.value == 2
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert default.inputs["features"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in default.inputs["features"].tensor_shape.dim] == [-1, 16]
    assert set(signatures.signature_def) == {"serving_default"}  # what the compiler kept
    request.ClearField("metadata_field")
    with pytest.raises(grpc.RpcError) as info:
        prediction.GetModelMetadata(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_model_status(stubs) -> None:
    _, model = stubs
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "dense"
    response = model.GetModelStatus(request, timeout=60)
    states = {s.version: s.state for s in response.model_version_status}
    assert states == {2: get_model_status_pb2.ModelVersionStatus.AVAILABLE}
    assert response.model_version_status[0].status.error_code == 0
    request.model_spec.version.value = 7
    with pytest.raises(grpc.RpcError) as info:
        model.GetModelStatus(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Could not find version 7 of model dense"


@pytest.mark.parametrize("name, version, signature, details", [
    ("nope", None, "", "Servable not found for request: Latest(nope)"),
    ("dense", 1, "", "Servable not found for request: Specific(dense, 1)"),
    ("dense", None, "nope", 'Serving signature key "nope" not found (model dense version 2 '
     "has: serving_default)"),
])
def test_not_found(stubs, name, version, signature, details) -> None:
    prediction, _ = stubs
    request = predict_request(name, {"features": ROWS[:1]}, version, signature)
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == details


def _cli_error(model_dir, inputs) -> str:
    """The one line ``neuron-run --inputs`` prints for the same bad input."""
    return "error: " + _load_error(model_dir, inputs)


def _load_error(model_dir, inputs) -> str:
    with neuroncli.load(model_dir) as model:
        with pytest.raises(neuroncli.UserError) as info:
            model(inputs)
    return str(info.value)


@pytest.mark.parametrize("inputs", [
    {"features": np.zeros((2, 3), np.float32)},          # wrong shape
    {"features": ROWS, "extra": np.zeros((2,), np.float32)},  # unknown input name
    {"images": ROWS},                                      # wrong input name
])
def test_invalid_argument_has_the_cli_message(stubs, compiled_models, inputs,
                                              tmp_path) -> None:
    prediction, _ = stubs
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(predict_request("dense", inputs), timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    np.savez(tmp_path / "in.npz", **inputs)
    run = subprocess.run([script("neuron-run"), str(compiled_models["dense"]), "--inputs",
                          str(tmp_path / "in.npz")], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: {info.value.details()}"]


def test_invalid_argument_dtype(stubs) -> None:
    prediction, _ = stubs
    request = predict_request("dense", {"features": ROWS.astype(np.float64)})
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == ("input 'features' is float32 but the request sent "
                                    "float64: send float32 values")


def test_deadline_exceeded(compiled_models, tmp_path) -> None:
    base = model_base(tmp_path / "dense", compiled_models["dense"])
    env = {"NEURON_FRAMEWORK_INFER_TIMEOUT_SEC": "0.000001"}
    with Server("--model_name=dense", f"--model_base_path={base}", env=env) as server:
        channel, prediction, _ = grpc_stubs(server.grpc_address)
        with pytest.raises(grpc.RpcError) as info:
            prediction.Predict(predict_request("dense", {"features": ROWS}), timeout=60)
        channel.close()
        assert server.stop() == 0
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert info.value.details().startswith("inference timed out after 1e-06 s waiting for "
                                           "NeuronCore")


@pytest.mark.parametrize("command", [["tensorflow_model_server_neuron"], ["neuron-serve"],
                                     ["neuron", "serve"]])
def test_unknown_flag_exits_2_listing_flags(command) -> None:
    run = subprocess.run([script(command[0]), *command[1:], "--port=9000",
                          "--enable_model_warmup=true"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown flag --enable_model_warmup; supported flags: "
                               "--batching_parameters_file, --enable_batching, ")
    for flag in ("--port", "--rest_api_port", "--model_config_file", "--model_base_path",
                 "--file_system_poll_wait_seconds", "--monitoring_config_file",
                 "--rest_api_timeout_in_ms", "--model_name"):
        assert flag in lines[0]
