"""The REST front end, as TF Serving documents it (``/v1/models/...``), on the standard
library's ``ThreadingHTTPServer``.

Why the standard library: the API is five routes of JSON over HTTP/1.1; a thread per
connection calls the same blocking service the gRPC threads call, and keep-alive connections
make the added latency a fraction of a millisecond.  A framework (aiohttp, starlette) would
bring an event loop that must hand every inference to threads anyway, and a dependency.

Routes: ``GET /v1/models/{name}[/versions/{v}|/labels/{l}]`` (status), ``.../metadata``,
``POST ...:predict`` with ``instances`` (row) or ``inputs`` (columnar), and the Prometheus
path from ``--monitoring_config_file``.  Errors are ``{"error": "..."}`` with TF Serving's
HTTP status for the code (:data:`~neuroncli.serving.status.HTTP_STATUS`).  Bodies over
:data:`MAX_BODY_BYTES` are refused before they are read.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from neuroncli.serving import restjson
from neuroncli.serving.service import InferenceService, ModelRef
from neuroncli.serving.status import (
    DEADLINE_EXCEEDED, INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, ServingError,
    from_exception,
)

# Larger bodies are refused with 413 before reading them: a JSON tensor that big is a
# mistake (send it over gRPC, which carries raw bytes).
MAX_BODY_BYTES = 64 << 20
_PATH = re.compile(r"/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?::(?P<verb>predict|classify|regress)|/(?P<metadata>metadata))?")


class RestServer(ThreadingHTTPServer):
    """The HTTP server: counts requests being handled, so shutdown can wait for them."""

    daemon_threads = True  # idle keep-alive connections must not hold the exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: InferenceService,
                 timeout_ms: int, metrics_path: str | None,
                 render_metrics: Callable[[], str]) -> None:
        self.service = service
        self.timeout_s = timeout_ms / 1000 if timeout_ms > 0 else None
        self.metrics_path = metrics_path
        self.render_metrics = render_metrics
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="neuron-serve-rest")
        self._busy = 0
        self._idle = threading.Condition()
        super().__init__(address, RestHandler)

    def busy(self, delta: int) -> None:
        with self._idle:
            self._busy += delta
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)


class RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RestServer

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: with Nagle's algorithm the body would wait
        # for the client's delayed ACK of the headers (40 ms per request on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass  # TF Serving logs no access lines either

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        self.server.busy(1)
        try:
            status, body, content_type = self._route(method)
        except ServingError as error:
            status, body, content_type = error.http_status, _error(error.message), None
        except Exception as exc:  # noqa: BLE001 - a bug is a 500, never a dropped reply
            error = from_exception(exc)
            status, body, content_type = error.http_status, _error(error.message), None
        try:
            self._reply(status, body, content_type or "application/json")
        finally:
            self.server.busy(-1)

    def _route(self, method: str) -> tuple[int, bytes, str | None]:
        path = self.path.split("?", 1)[0]
        if path == self.server.metrics_path and method == "GET":
            return 200, self.server.render_metrics().encode(), "text/plain; version=0.0.4"
        match = _PATH.fullmatch(path)
        if match is None:
            self._discard_body()
            raise ServingError(NOT_FOUND, f"Malformed request: {method} {path}: the REST API "
                               "serves /v1/models/<name>[/versions/<v>|/labels/<l>]"
                               "[/metadata|:predict]")
        version = match["version"]
        ref = ModelRef(match["name"], int(version) if version else None, match["label"])
        verb = match["verb"]
        if method == "GET" and verb is None:
            body = self._read_body()
            if body.strip():
                raise ServingError(INVALID_ARGUMENT, f"GET {path} takes no body")
            if match["metadata"]:
                return 200, restjson.metadata(self.server.service, ref), None
            return 200, restjson.status(self.server.service, ref), None
        if method == "POST" and verb == "predict":
            return 200, self._predict(ref, self._read_body()), None
        self._discard_body()
        if method == "POST" and verb in ("classify", "regress"):
            raise ServingError(INVALID_ARGUMENT, f"{verb} is not served: this server "
                               "implements :predict")
        raise ServingError(INVALID_ARGUMENT, f"Malformed request: {method} {path}")

    def _predict(self, ref: ModelRef, body: bytes) -> bytes:
        service = self.server.service
        request = restjson.parse_predict(body)
        ref = ModelRef(ref.name, ref.version, ref.label, request.signature_name)

        def run() -> bytes:
            with service.request(ref.name, "predict", "REST"):
                result = service.predict(ref, request.converter)
                return restjson.predict_response(result, request.row_format)
        if self.server.timeout_s is None:
            return run()
        try:
            future = self.server.pool.submit(run)
        except RuntimeError:  # the pool is closed: the server is exiting
            raise ServingError(UNAVAILABLE, "the server is shutting down: retry on another "
                               "replica") from None
        try:
            return future.result(self.server.timeout_s)
        except FutureTimeout:
            raise ServingError(DEADLINE_EXCEEDED, f"the request did not finish within "
                               f"--rest_api_timeout_in_ms={self.server.timeout_s * 1000:g}"
                               ) from None

    def _length(self) -> int:
        text = self.headers.get("Content-Length")
        if text is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise ServingError(INVALID_ARGUMENT, "send the body with a Content-Length "
                                   "(chunked transfer encoding is not supported)")
            return 0
        try:
            length = int(text)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise ServingError(INVALID_ARGUMENT, f"bad Content-Length {text!r}")
        return length

    def _read_body(self) -> bytes:
        length = self._length()
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise _TooLarge(length)
        return self.rfile.read(length) if length else b""

    def _discard_body(self) -> None:
        try:
            self._read_body()
        except ServingError:
            pass

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class _TooLarge(ServingError):
    def __init__(self, length: int) -> None:
        super().__init__(INVALID_ARGUMENT, f"the request body is {length} bytes, over the "
                         f"limit of {MAX_BODY_BYTES} bytes: send fewer rows per request, or "
                         "use gRPC for large tensors")

    @property
    def http_status(self) -> int:
        return int(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
