"""The model server: options, start-up, the gRPC and REST listeners, clean shutdown.

Start-up follows TF Serving: read the model list, load the versions there are (waiting for
versions still being copied), then open the gRPC port and, with ``rest_api_port``, the REST
port, and poll the base paths every ``file_system_poll_wait_seconds``.  SIGTERM or SIGINT:
stop accepting, let every accepted request finish, unload, exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from neuroncli.errors import UsageError, UserError
from neuroncli.serving.config import (
    BatchingOptions, ModelConfig, read_batching_parameters, read_model_config,
    read_monitoring_config,
)
from neuroncli.serving.metrics import Metrics

LOG = logging.getLogger("neuroncli.serving")
# How long shutdown waits for accepted requests before giving up on them.
DRAIN_SECONDS = 30.0
# How long start-up waits for versions still being copied before opening the ports.
SETTLE_SECONDS = 30.0
GRPC_THREADS = 64


@dataclass(frozen=True)
class ServerOptions:
    """Every flag of ``neuron-serve`` (TF Serving's names and defaults, plus ``host``)."""

    port: int = 8500
    rest_api_port: int = 0
    host: str = "127.0.0.1"
    model_name: str | None = None
    model_base_path: str | None = None
    model_config_file: str | None = None
    file_system_poll_wait_seconds: float = 1.0
    enable_batching: bool = False
    batching_parameters_file: str | None = None
    rest_api_timeout_in_ms: int = 30000
    monitoring_config_file: str | None = None

    def models(self) -> list[ModelConfig]:
        """The models to serve, from the config file or the two flags."""
        if self.model_config_file:
            if self.model_base_path:
                raise UsageError("--model_config_file and --model_base_path exclude each "
                                 "other: list every model in the config file")
            return read_model_config(self.model_config_file)
        if not self.model_base_path:
            raise UsageError("pass --model_base_path=DIR (numeric version directories "
                             "inside) or --model_config_file=FILE")
        path = os.path.abspath(self.model_base_path)
        if not os.path.isdir(path):
            raise UserError(f"--model_base_path={self.model_base_path}: no such directory: "
                            "pass the directory holding the version directories (1/, 2/...)")
        return [ModelConfig(self.model_name or "default", path)]

    def batching(self) -> BatchingOptions | None:
        if not self.enable_batching:
            if self.batching_parameters_file:
                raise UsageError("--batching_parameters_file needs --enable_batching")
            return None
        return read_batching_parameters(self.batching_parameters_file)


class ModelServer:
    """A running server; :meth:`stop` drains and unloads."""

    def __init__(self, options: ServerOptions) -> None:
        from neuroncli.runtime import default_runtime
        from neuroncli.serving.batching import BatchScheduler
        from neuroncli.serving.models import ModelManager
        from neuroncli.serving.service import InferenceService
        self.options = options
        configs = options.models()
        batching = options.batching()
        metrics_path = read_monitoring_config(options.monitoring_config_file)
        if metrics_path and not options.rest_api_port:
            raise UsageError("--monitoring_config_file needs --rest_api_port: the metrics "
                             "are served on the REST port")
        self.runtime = default_runtime()
        self.metrics = Metrics()
        self.manager = ModelManager(configs, options.file_system_poll_wait_seconds)
        self.batcher = None
        if batching is not None:
            threads = batching.num_batch_threads or os.cpu_count() or 1
            self.batcher = BatchScheduler(batching, threads)
        self.service = InferenceService(self.manager, self.batcher, self.metrics)
        self._metrics_path = metrics_path
        self._grpc: Any = None
        self._rest: Any = None
        self._rest_thread: threading.Thread | None = None

    def start(self) -> None:
        LOG.info("%s", self.runtime.describe())
        self.manager.settle(SETTLE_SECONDS)
        for model in self.manager.models.values():
            if not model.loaded():
                LOG.warning("No versions of servable %s loaded yet from %s", model.name,
                            model.config.base_path)
        self._start_grpc()
        if self.options.rest_api_port:
            self._start_rest()
        self.manager.start()

    def _start_grpc(self) -> None:
        from concurrent import futures

        import grpc

        from neuroncli.serving.grpc_api import add_services
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=GRPC_THREADS,
                                                        thread_name_prefix="neuron-serve-grpc"),
                             options=[("grpc.max_receive_message_length", -1),
                                      ("grpc.max_send_message_length", -1),
                                      ("grpc.so_reuseport", 0)])
        add_services(server, self.service)
        address = f"{self.options.host}:{self.options.port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise UserError(f"cannot listen for gRPC on {address} (port in use?): pass "
                            "another --port")
        server.start()
        self._grpc = server
        LOG.info("Running gRPC ModelServer at %s ...", address)

    def _start_rest(self) -> None:
        from neuroncli.serving.rest import RestServer
        address = (self.options.host, self.options.rest_api_port)
        try:
            self._rest = RestServer(address, self.service, self.options.rest_api_timeout_in_ms,
                                    self._metrics_path, self.render_metrics)
        except OSError as exc:
            raise UserError(f"cannot listen for REST on {address[0]}:{address[1]} "
                            f"({exc.strerror}): pass another --rest_api_port") from None
        self._rest_thread = threading.Thread(target=self._rest.serve_forever,
                                             name="neuron-serve-rest", daemon=True)
        self._rest_thread.start()
        LOG.info("Exporting HTTP/REST API at:%s:%d ...", *address)

    def render_metrics(self) -> str:
        return self.metrics.render(self.runtime, self.batcher)

    def stop(self) -> bool:
        """Stop accepting, finish the accepted requests, unload.  True if none was lost."""
        # Refuse first (UNAVAILABLE / 503, which clients retry elsewhere), then close the
        # listeners once nothing is in flight: grpc's own stop() cancels the RPCs that
        # arrive while it waits, which clients cannot tell from a lost request.
        self.service.refuse_new()
        if self._rest is not None:
            self._rest.shutdown()  # no new connections; open ones get 503 from the gate
        if self.batcher is not None:
            self.batcher.stop()  # queued batches run now, without waiting for their timeout
        drained = self.service.drain(DRAIN_SECONDS)
        if self._grpc is not None:
            self._grpc.stop(DRAIN_SECONDS).wait(DRAIN_SECONDS)
        if self._rest is not None:
            drained = self._rest.wait_idle(DRAIN_SECONDS) and drained
            self._rest.server_close()
            self._rest.pool.shutdown(wait=False)
        self.manager.stop()
        return drained


def serve(options: ServerOptions) -> int:
    """Run the server until SIGTERM/SIGINT (the ``neuron-serve`` command body)."""
    stop = threading.Event()
    server = ModelServer(options)

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    server.start()
    while not stop.wait(0.5):
        pass
    LOG.info("Shutting down: finishing the requests in flight")
    drained = server.stop()
    print(f"neuron-serve: stopped after {server.service.accepted} accepted request(s)"
          f"{'' if drained else ' (some did not finish in time)'}", file=sys.stderr)
    return 0
