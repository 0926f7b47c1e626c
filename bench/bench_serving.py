"""Benchmark of ``neuron-serve`` against its goals; prints a table.

Usage::

    .venv/bin/python bench/bench_serving.py [--seconds S] [--json]

``run()`` returns the rows (figure, goal, measured, ratio, passed, load):

1. **gRPC throughput**: ResNet50 batch 1 made 2-core (``tf-neuron-auto-multicore
   --num_cores 2``, as AWS's serving tutorial does) on an inf2.xlarge, served by neuron-serve
   and called by 4 concurrent gRPC clients (official stubs), vs the same model through
   ``neuroncli.load`` with 4 caller threads in this process.  Rounds alternate between the
   two so the machine's other load hits both alike; medians compared.  Goal: ratio >= 0.9.
2. **added latency**: the keras_dense fixture, one client in a loop: median gRPC round trip
   and median REST round trip (keep-alive) minus the median in-process call.  Goals: <= 1 ms
   (gRPC), <= 2 ms (REST).
3. **batching**: MobileNetV2 compiled at batch 8 with ``--dynamic-batch-size``, 32 concurrent
   single-example gRPC clients, with ``--enable_batching`` (max_batch_size 8, timeout 0) vs
   without.  Goal: ratio >= 2.

Models come from tests/zoo.py (cached under build/zoo, or ``NEURONCLI_ZOO``) and are compiled
into a temporary directory.  Servers are real ``neuron-serve`` processes on loopback ports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")

import numpy as np  # noqa: E402

from timing import throughput  # noqa: E402
from table import report, row  # noqa: E402

ZOO = Path(os.environ.get("NEURONCLI_ZOO", ROOT / "build" / "zoo"))
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """A neuron-serve process serving ``model_dir`` as version 1 of model ``m``."""

    def __init__(self, model_dir: Path, work: Path, *flags: str,
                 env: dict[str, str] | None = None) -> None:
        base = work / f"base-{_port()}"
        base.mkdir(parents=True)
        os.symlink(model_dir, base / "1")
        self.port, self.rest_port = _port(), _port()
        self.proc = subprocess.Popen(
            [str(BIN / "neuron-serve"), f"--port={self.port}",
             f"--rest_api_port={self.rest_port}", "--model_name=m",
             f"--model_base_path={base}", *flags],
            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.rest_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"neuron-serve did not start (exit {self.proc.poll()})")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)


def _stub(port: int) -> Any:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _request(inputs: dict[str, np.ndarray]) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _rate(make_call: Callable[[], Callable[[], Any]], threads: int, seconds: float) -> float:
    """Calls per second of ``threads`` callers, each with its own ``make_call()``."""
    calls = [make_call() for _ in range(threads)]
    for call in calls:
        call()
    return throughput(calls, seconds)


def _grpc_caller(port: int, inputs: dict[str, np.ndarray]) -> Callable[[], Callable[[], Any]]:
    def make() -> Callable[[], Any]:
        _, stub = _stub(port)
        request = _request(inputs)
        return lambda: stub.Predict(request, timeout=300)
    return make


def _compile(name: str, out: Path, batch: int = 1, dynamic: bool = False) -> Path:
    from tests import zoo
    source = zoo.build(name, ZOO)
    target = out / f"{name}_b{batch}_neuron"
    env = {**os.environ, **({"NEURON_CC_FLAGS": "--dynamic-batch-size"} if dynamic else {})}
    subprocess.run([str(BIN / "neuron-compile"), "-q", f"--batch-size={batch}", str(source),
                    str(target)], check=True, env=env)
    return target


def grpc_throughput(work: Path, seconds: float, rounds: int = 3) -> dict:
    import neuroncli.runtime as rt
    compiled = _compile("resnet50", work)
    multicore = work / "resnet50_2core"
    subprocess.run([str(BIN / "tf-neuron-auto-multicore"), str(compiled), "--num_cores", "2",
                    "--new_model_dir", str(multicore)], check=True, stdout=subprocess.DEVNULL)
    env = {"NEURON_SIM_INSTANCE_TYPE": "inf2.xlarge", "NEURON_RT_VISIBLE_CORES": "0-1"}
    server = _Server(multicore, work, env=env)
    x = {"image": np.random.default_rng(0).standard_normal((1, 224, 224, 3), np.float32)}
    model = rt.load(multicore, runtime=rt.NeuronRuntime("inf2.xlarge", visible_cores="0-1"))
    rates: dict[str, list[float]] = {"load": [], "grpc": []}
    try:
        for _ in range(rounds):
            rates["load"].append(_rate(lambda: (lambda: model(x)), 4, seconds / rounds))
            rates["grpc"].append(_rate(_grpc_caller(server.port, x), 4, seconds / rounds))
    finally:
        model.unload()
        server.stop()
    local, served = float(np.median(rates["load"])), float(np.median(rates["grpc"]))
    ratio = served / local
    return row("ResNet50 b1 2 cores, 4 gRPC clients vs load() 4 threads", "ratio >= 0.9",
               f"{served:.1f} vs {local:.1f} inf/s", ratio, ratio >= 0.9)


def _median_latency(call: Callable[[], Any], count: int) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def added_latency(work: Path, count: int) -> list[dict]:
    import json
    from http.client import HTTPConnection

    import neuroncli
    compiled = work / "keras_dense_neuron"
    subprocess.run([str(BIN / "neuron-compile"), "-q", str(ROOT / "fixtures" / "keras_dense"),
                    str(compiled)], check=True)
    x = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    server = _Server(compiled, work)
    model = neuroncli.load(compiled)
    try:
        local = _median_latency(lambda: model(features=x), count)
        call = _grpc_caller(server.port, {"features": x})()
        over_grpc = _median_latency(call, count)
        conn = HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
        body = json.dumps({"instances": x.tolist()})

        def rest() -> Any:
            conn.request("POST", "/v1/models/m:predict", body=body)
            return conn.getresponse().read()
        over_rest = _median_latency(rest, count)
    finally:
        model.unload()
        server.stop()
    grpc_ms, rest_ms = (over_grpc - local) * 1e3, (over_rest - local) * 1e3
    return [row("keras_dense added latency, gRPC (median)", "<= 1 ms",
                f"{grpc_ms:.3f} ms ({over_grpc * 1e3:.3f} vs {local * 1e3:.3f})", None,
                grpc_ms <= 1.0),
            row("keras_dense added latency, REST (median)", "<= 2 ms",
                f"{rest_ms:.3f} ms ({over_rest * 1e3:.3f} vs {local * 1e3:.3f})", None,
                rest_ms <= 2.0)]


def batching(work: Path, seconds: float) -> dict:
    compiled = _compile("mobilenetv2", work, batch=8, dynamic=True)
    params = work / "batching.config"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 0 }\n"
                      "num_batch_threads { value: 2 }\n")
    x = {"image": np.random.default_rng(0).standard_normal((1, 96, 96, 3), np.float32)}
    rates = {}
    for name, flags in (("plain", ()), ("batched", ("--enable_batching",
                                                    f"--batching_parameters_file={params}"))):
        server = _Server(compiled, work, *flags)
        try:
            rates[name] = _rate(_grpc_caller(server.port, x), 32, seconds)
        finally:
            server.stop()
    ratio = rates["batched"] / rates["plain"]
    return row("MobileNetV2 b8 dynamic, 32 single-example gRPC clients, batching vs not",
               "ratio >= 2", f"{rates['batched']:.1f} vs {rates['plain']:.1f} inf/s", ratio,
               ratio >= 2.0)


def run(seconds: float = 12.0, count: int = 300) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    try:
        return [grpc_throughput(work, seconds), *added_latency(work, count),
                batching(work, seconds / 2)]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0,
                        help="measuring time of the throughput figures")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return report(run(args.seconds), args.json)


if __name__ == "__main__":
    sys.exit(main())
