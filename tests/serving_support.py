"""Shared by the ``test_serving*`` modules: compiled fixture models and real server processes.

A :class:`Server` is ``.venv/bin/neuron-serve`` started on free loopback ports; it is ready
when its REST status answers (bounded wait), and :meth:`Server.stop` sends SIGTERM and returns
the exit code and stderr.  Every wait here is bounded; nothing measures time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, script

START_SECONDS = 90  # a cold TensorFlow import on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compile_model(fixture: str, out: Path, dynamic_batch: bool = True,
                  batch_size: int = 1) -> Path:
    env = dict(os.environ)
    if dynamic_batch:
        env["NEURON_CC_FLAGS"] = "--dynamic-batch-size"
    subprocess.run([script("neuron-compile"), "-q", f"--batch-size={batch_size}",
                    str(FIXTURES / fixture), str(out)],
                   check=True, env=env, capture_output=True, timeout=300)
    return out


def http(method: str, url: str, body: Any = None, raw: bytes | None = None,
         timeout: float = 60) -> tuple[int, Any]:
    """``(status, parsed JSON or text)`` of one request (errors included)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Server:
    """One ``neuron-serve`` process (use as a context manager)."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None,
                 rest: bool = True) -> None:
        self.port = free_port()
        self.rest_port = free_port() if rest else 0
        self.flags = [f"--port={self.port}", f"--rest_api_port={self.rest_port}", *flags]
        self.env = {**os.environ, **(env or {})}
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([script("neuron-serve"), *self.flags], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.returncode: int | None = None

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"neuron-serve exited {self.proc.returncode}: "
                                     f"{self.stderr()}")
            try:
                with socket.create_connection(("127.0.0.1", self.rest_port or self.port),
                                              timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"neuron-serve did not start: {self.stderr()}")

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.returncode = self.proc.wait(timeout=120)
        return self.returncode

    def __enter__(self) -> Server:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.log.close()


def wait_for(predicate: Any, seconds: float = 60, step: float = 0.2) -> Any:
    """Poll ``predicate()`` until truthy (bounded); return its value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def version_states(server: Server, name: str) -> dict[str, str]:
    status, body = http("GET", f"{server.rest}/v1/models/{name}")
    if status != 200:
        return {}
    return {s["version"]: s["state"] for s in body["model_version_status"]}


@pytest.fixture(scope="session")
def compiled_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """keras_dense and strings_dense compiled with --dynamic-batch-size, once per session."""
    root = tmp_path_factory.mktemp("serving_models")
    return {"dense": compile_model("keras_dense", root / "dense"),
            "strings": compile_model("strings_dense", root / "strings")}


def model_base(root: Path, compiled: Path, versions: tuple[int, ...] = (1,)) -> Path:
    """A base path holding ``compiled`` as each of ``versions``."""
    root.mkdir(parents=True, exist_ok=True)
    for version in versions:
        shutil.copytree(compiled, root / str(version))
    return root


def grpc_stubs(address: str) -> Any:
    """``(channel, PredictionServiceStub, ModelServiceStub)`` over a real channel."""
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
    channel = grpc.insecure_channel(address)
    return (channel, prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel))


def predict_request(name: str, inputs: dict[str, Any], version: int | None = None,
                    signature: str = "") -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if signature:
        request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


MODEL_CONFIG = """
model_config_list {
  config {
    name: "dense"
    base_path: "%(dense)s"
    model_platform: "tensorflow"
    version_labels { key: "stable" value: 2 }
  }
  config {
    name: "strings"
    base_path: "%(strings)s"
  }
}
"""
MONITORING = 'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n'
METRICS_PATH = "/monitoring/prometheus/metrics"


@pytest.fixture(scope="session")
def main_server(compiled_models: dict[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server for the gRPC and REST tests: ``dense`` (versions 1 and 2 on disk, the
    latest served, label ``stable`` = 2) and ``strings``, metrics on."""
    root = tmp_path_factory.mktemp("main_server")
    dense = model_base(root / "dense", compiled_models["dense"], (1, 2))
    strings = model_base(root / "strings", compiled_models["strings"])
    config = root / "models.config"
    config.write_text(MODEL_CONFIG % {"dense": dense, "strings": strings})
    monitoring = root / "monitoring.config"
    monitoring.write_text(MONITORING)
    with Server(f"--model_config_file={config}",
                f"--monitoring_config_file={monitoring}") as server:
        yield server
        assert server.stop() == 0, server.stderr()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus series (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith((name + "{", name + " ")):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return 0.0
