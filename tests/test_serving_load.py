"""neuron-serve under load: 200 concurrent requests, SIGTERM mid-load, request batching and
its queue limit, and two servers on disjoint NEURON_RT_VISIBLE_CORES (metrics prove it)."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

import grpc
import numpy as np
import pytest
import tensorflow as tf

import neuroncli
from tests import serving_support as support
from tests.serving_support import (
    METRICS_PATH, MONITORING, Server, compile_model, grpc_stubs, http, metric, model_base,
    predict_request, wait_for,
)

compiled_models = support.compiled_models  # session fixtures
main_server = support.main_server


def _rows(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 16)).astype(np.float32)


def test_200_concurrent_requests_from_16_clients(main_server, compiled_models) -> None:
    requests = [(i, _rows(i, 1 + i % 3)) for i in range(200)]
    with neuroncli.load(compiled_models["dense"]) as model:
        want = {i: model(features=x)["output_0"] for i, x in requests}

    def client(part: list) -> dict[int, np.ndarray]:
        channel, prediction, _ = grpc_stubs(main_server.grpc_address)
        got = {}
        for i, x in part:
            response = prediction.Predict(predict_request("dense", {"features": x}),
                                          timeout=120)
            got[i] = tf.make_ndarray(response.outputs["output_0"])
        channel.close()
        return got

    with ThreadPoolExecutor(16) as pool:
        parts = [requests[k::16] for k in range(16)]
        results = {}
        for got in pool.map(client, parts):
            results.update(got)
    assert sorted(results) == list(range(200))
    for i, _ in requests:
        np.testing.assert_array_equal(results[i], want[i])


def test_sigterm_mid_load_loses_no_accepted_request(compiled_models, tmp_path) -> None:
    base = model_base(tmp_path / "m", compiled_models["dense"])
    server = Server("--model_name=m", f"--model_base_path={base}", rest=False)
    with server:
        with neuroncli.load(compiled_models["dense"]) as model:
            want = model(features=_rows(0, 2))["output_0"]
        ok, refused, wrong = [], [], []
        started = threading.Barrier(9)

        def client() -> None:
            channel, prediction, _ = grpc_stubs(server.grpc_address)
            started.wait()
            for _ in range(400):
                try:
                    response = prediction.Predict(
                        predict_request("m", {"features": _rows(0, 2)}), timeout=120)
                except grpc.RpcError as exc:
                    refused.append(exc.code())
                    break
                got = tf.make_ndarray(response.outputs["output_0"])
                (ok if np.array_equal(got, want) else wrong).append(1)
            channel.close()

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        started.wait()
        wait_for(lambda: len(ok) >= 40, seconds=120, step=0.05)
        assert server.stop(signal.SIGTERM) == 0
        for thread in threads:
            thread.join(timeout=120)
        log = server.stderr()
    accepted = int(re.search(r"stopped after (\d+) accepted request", log).group(1))
    assert accepted == len(ok), log  # every request the server took was answered
    assert not wrong
    # Refusals: our gate says UNAVAILABLE; an RPC that arrives while the gRPC server closes
    # (after the drain) is CANCELLED by grpc itself.  Neither was accepted (checked above).
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


BATCHING = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 60000000 }
max_enqueued_batches { value: 1 }
num_batch_threads { value: 1 }
"""


@pytest.fixture(scope="module")
def dense8(tmp_path_factory):
    """keras_dense compiled at batch 8 with dynamic batch."""
    return compile_model("keras_dense", tmp_path_factory.mktemp("dense8") / "m", True, 8)


def test_batching_merges_refuses_when_full_and_drains_on_sigterm(dense8, tmp_path) -> None:
    base = model_base(tmp_path / "m", dense8)
    (tmp_path / "batching.config").write_text(BATCHING)
    (tmp_path / "monitoring.config").write_text(MONITORING)
    server = Server("--model_name=m", f"--model_base_path={base}", "--enable_batching",
                    f"--batching_parameters_file={tmp_path / 'batching.config'}",
                    f"--monitoring_config_file={tmp_path / 'monitoring.config'}")

    def metrics() -> str:
        return http("GET", server.rest + METRICS_PATH)[1]

    def calls(text: str) -> float:
        return sum(metric(text, ":neuron:core:calls", core=str(c)) for c in range(2))

    with server, neuroncli.load(dense8) as model:
        channel, prediction, _ = grpc_stubs(server.grpc_address)
        x = _rows(7, 8)
        before = metrics()
        # 1. one row opens a batch that waits (60 s timeout) for 7 more
        first = prediction.Predict.future(predict_request("m", {"features": x[:1]}),
                                          timeout=120)
        wait_for(lambda: metric(metrics(), ":neuron:serving:batch_queue_rows") == 1)
        # 2. eight rows do not fit in it and the queue holds one batch: RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as info:
            prediction.Predict(predict_request("m", {"features": x}), timeout=120)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # 3. seven rows fill it: both answered by one merged call of one program execution
        second = prediction.Predict(predict_request("m", {"features": x[1:]}), timeout=120)
        got = np.concatenate([tf.make_ndarray(first.result().outputs["output_0"]),
                              tf.make_ndarray(second.outputs["output_0"])])
        np.testing.assert_allclose(got, model(features=x)["output_0"], rtol=1e-6, atol=1e-7)
        after = metrics()
        assert metric(after, ":neuron:serving:batches") - \
            metric(before, ":neuron:serving:batches") == 1
        assert calls(after) - calls(before) == 1
        # 4. SIGTERM with a request waiting in a batch and a REST body half sent: the
        # batch runs at once; the server stays up until the body is read; meanwhile a
        # request on an open keep-alive connection is refused with 503.
        body = json.dumps({"instances": x[:1].tolist()}).encode()
        slow = socket.create_connection(("127.0.0.1", server.rest_port), timeout=120)
        slow.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        keepalive = HTTPConnection("127.0.0.1", server.rest_port, timeout=120)
        keepalive.request("GET", "/v1/models/m")
        assert keepalive.getresponse().read()
        pending = prediction.Predict.future(predict_request("m", {"features": x[:2]}),
                                            timeout=120)
        wait_for(lambda: metric(metrics(), ":neuron:serving:batch_queue_rows") == 2)
        server.proc.send_signal(signal.SIGTERM)
        np.testing.assert_allclose(tf.make_ndarray(pending.result().outputs["output_0"]),
                                   model(features=x[:2])["output_0"], rtol=1e-6, atol=1e-7)

        def refused() -> bool:
            keepalive.request("POST", "/v1/models/m:predict", body=body)
            response = keepalive.getresponse()
            answer = (response.status, json.loads(response.read()))
            assert answer[0] in (200, 503)
            return answer == (503, SHUTTING_DOWN)
        wait_for(refused)
        slow.sendall(body[10:])
        assert slow.recv(65536).startswith(b"HTTP/1.1 503 ")
        slow.close()
        channel.close()
        assert server.stop() == 0


SHUTTING_DOWN = {"error": "the server is shutting down: retry on another replica"}


def test_two_servers_on_disjoint_visible_cores(compiled_models, tmp_path) -> None:
    base = model_base(tmp_path / "m", compiled_models["dense"])
    (tmp_path / "monitoring.config").write_text(MONITORING)
    flags = ("--model_name=m", f"--model_base_path={base}",
             f"--monitoring_config_file={tmp_path / 'monitoring.config'}")
    env = {"NEURON_SIM_INSTANCE_TYPE": "inf1.xlarge"}  # 4 cores
    left = Server(*flags, env={**env, "NEURON_RT_VISIBLE_CORES": "0-1"})
    right = Server(*flags, env={**env, "NEURON_RT_VISIBLE_CORES": "2-3"})
    with left, right:
        for server in (left, right):
            for _ in range(3):
                assert http("POST", f"{server.rest}/v1/models/m:predict",
                            {"instances": _rows(1, 1).tolist()})[0] == 200
        for server, mine in ((left, {0, 1}), (right, {2, 3})):
            text = http("GET", server.rest + METRICS_PATH)[1]
            physical = {int(p) for p in re.findall(r':neuron:core:calls\{core="\d+",'
                                                   r'physical="(\d+)"', text)}
            assert physical == mine
            busy = {p for p in mine if metric(text, ":neuron:core:calls",
                                              physical=str(p)) > 0}
            held = {p for p in mine if metric(text, ":neuron:core:device_bytes",
                                              physical=str(p)) > 0}
            assert busy and busy <= mine and held and held <= mine
            assert sum(metric(text, ":neuron:core:calls", physical=str(p))
                       for p in mine) >= 3
        assert left.stop() == 0 and right.stop() == 0
