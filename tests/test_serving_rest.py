"""neuron-serve's REST API with a plain HTTP client: row and columnar predict, b64 strings,
metadata, status, metrics, and every error status (the server keeps serving after each)."""

from __future__ import annotations

import base64
import json
from http.client import HTTPConnection

import numpy as np
import pytest

import neuroncli
from tests import serving_support as support
from tests.conftest import FIXTURES
from tests.serving_support import METRICS_PATH, Server, http, metric, model_base

compiled_models = support.compiled_models  # session fixtures
main_server = support.main_server

ROWS = np.load(FIXTURES / "keras_dense.inputs.npz")["features"]
CSV = [s.decode() for s in np.load(FIXTURES / "strings_dense.inputs.npz")["csv"]]


@pytest.fixture(scope="module")
def expected(compiled_models):
    with neuroncli.load(compiled_models["dense"]) as dense:
        probs = dense(features=ROWS)["output_0"]
    with neuroncli.load(compiled_models["strings"]) as strings:
        labelled = strings(csv=np.array(CSV, dtype=object))
    return {"dense": probs, "strings": labelled}


def _url(server: Server, tail: str) -> str:
    return f"{server.rest}/v1/models/{tail}"


def test_row_format(main_server, expected) -> None:
    status, body = http("POST", _url(main_server, "dense:predict"),
                        {"instances": ROWS.tolist()})
    assert status == 200, body
    np.testing.assert_array_equal(np.array(body["predictions"], np.float32), expected["dense"])


def test_columnar_format_and_version_path(main_server, expected) -> None:
    status, body = http("POST", _url(main_server, "dense/versions/2:predict"),
                        {"inputs": {"features": ROWS.tolist()}})
    assert status == 200, body
    np.testing.assert_array_equal(np.array(body["outputs"], np.float32), expected["dense"])
    status, body = http("POST", _url(main_server, "dense/labels/stable:predict"),
                        {"signature_name": "serving_default", "inputs": ROWS.tolist()})
    assert status == 200, body


def test_strings_rows_with_b64(main_server, expected) -> None:
    instances = [{"csv": {"b64": base64.b64encode(s.encode()).decode()}} for s in CSV]
    status, body = http("POST", _url(main_server, "strings:predict"),
                        {"instances": instances})
    assert status == 200, body
    rows = body["predictions"]
    assert [r["label"] for r in rows] == [s.decode() for s in expected["strings"]["label"]]
    np.testing.assert_array_equal(np.array([r["scores"] for r in rows], np.float32),
                                  expected["strings"]["scores"])
    status, plain = http("POST", _url(main_server, "strings:predict"), {"inputs": CSV})
    assert status == 200 and plain["outputs"]["label"] == [r["label"] for r in rows]


def test_metadata_and_status(main_server) -> None:
    status, body = http("GET", _url(main_server, "dense/metadata"))
    assert status == 200
    assert body["model_spec"] == {"name": "dense", "signature_name": "", "version": "2"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["features"]["dtype"] == "DT_FLOAT"
    assert signature["method_name"] == "tensorflow/serving/predict"
    status, body = http("GET", _url(main_server, "dense"))
    assert (status, body) == (200, {"model_version_status": [
        {"version": "2", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]})
    assert http("GET", _url(main_server, "dense/versions/2"))[0] == 200


def test_metrics_count_requests_per_status(main_server) -> None:
    before = http("GET", main_server.rest + METRICS_PATH)[1]
    http("POST", _url(main_server, "dense:predict"), {"instances": ROWS[:1].tolist()})
    http("POST", _url(main_server, "dense:predict"), {"instances": [[1.0]]})
    after = http("GET", main_server.rest + METRICS_PATH)[1]
    for status in ("OK", "INVALID_ARGUMENT"):
        series = (":tensorflow:serving:request_count", {"model_name": "dense",
                                                        "status": status})
        assert metric(after, series[0], **series[1]) == metric(before, series[0],
                                                               **series[1]) + 1
    assert metric(after, ":tensorflow:serving:request_latency_count", model_name="dense",
                  API="predict", entrypoint="REST") >= 2
    assert metric(after, ":neuron:core:device_bytes", core="0") > 0


SHAPE_ERROR = ("input 'features' has shape (1, 2) but the signature expects (?, 16): "
               "reshape it")


@pytest.mark.parametrize("method, tail, body, status, error", [
    ("POST", "dense:predict", b"{not json", 400, "JSON Parse error: Expecting property "
     "name enclosed in double quotes: line 1 column 2 (char 1): send one JSON object"),
    ("POST", "dense:predict", {"instances": [[1.0, 2.0]]}, 400, SHAPE_ERROR),
    ("POST", "dense:predict", {"instances": [["a"] * 16]}, 400,
     "input 'features' is float32 but got <U1 values: convert it with .astype(float32)"),
    ("POST", "dense:predict", {"instances": [[1.0] * 16, [1.0]]}, 400,
     "input 'features': the lists are ragged or mix types: every row needs the same length "
     "and numbers only"),
    ("POST", "dense:predict", {"instances": ROWS.tolist(), "inputs": []}, 400,
     'the request needs exactly one of "instances" (row format) or "inputs" (columnar '
     'format)'),
    ("POST", "strings:predict", {"inputs": [{"b64": "***"}]}, 400,
     "input 'csv': '***' is not valid base64"),
    ("POST", "nope:predict", {"instances": [1]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "dense/versions/9:predict", {"instances": [1]}, 404,
     "Servable not found for request: Specific(dense, 9)"),
    ("GET", "dense/versions/9", None, 404, "Could not find version 9 of model dense"),
    ("GET", "nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
])
def test_error_statuses(main_server, method, tail, body, status, error) -> None:
    raw = body if isinstance(body, bytes) else None
    got = http(method, _url(main_server, tail), None if raw else body, raw=raw)
    assert got == (status, {"error": error})


def test_unknown_paths_are_404_and_the_server_keeps_serving(main_server) -> None:
    for method, path in (("GET", "/"), ("GET", "/v2/models/dense"),
                         ("POST", "/v1/models/dense:explain")):
        status, body = http(method, main_server.rest + path, raw=b"" if method == "POST"
                            else None)
        assert status == 404 and body["error"].startswith(f"Malformed request: {method} ")
    assert http("POST", _url(main_server, "dense:predict"),
                {"instances": ROWS.tolist()})[0] == 200


def test_huge_body_is_refused_before_reading(main_server) -> None:
    from neuroncli.serving.rest import MAX_BODY_BYTES
    conn = HTTPConnection("127.0.0.1", main_server.rest_port, timeout=60)
    conn.putrequest("POST", "/v1/models/dense:predict")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    conn.send(b'{"instances": [')  # the rest never comes: the server must not wait for it
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"] == (
        f"the request body is {MAX_BODY_BYTES + 1} bytes, over the limit of {MAX_BODY_BYTES} "
        "bytes: send fewer rows per request, or use gRPC for large tensors")
    conn.close()
    assert http("GET", _url(main_server, "dense"))[0] == 200


def test_timeout_504(compiled_models, tmp_path) -> None:
    base = model_base(tmp_path / "dense", compiled_models["dense"])
    env = {"NEURON_FRAMEWORK_INFER_TIMEOUT_SEC": "0.000001"}
    with Server("--model_name=dense", f"--model_base_path={base}", env=env) as server:
        status, body = http("POST", _url(server, "dense:predict"),
                            {"instances": ROWS.tolist()})
        assert status == 504
        assert body["error"].startswith("inference timed out after 1e-06 s")
        assert server.stop() == 0
