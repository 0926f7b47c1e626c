"""TF Serving's error model: a canonical status code and a one-line message per failure.

Every failure a request can meet becomes a :class:`ServingError` carrying one of gRPC's
canonical code names; the gRPC front end aborts with that code and the REST front end answers
with the HTTP status TF Serving's ``http_server.cc`` maps it to, so the same failure reads
the same on both protocols.  :func:`from_exception` is the one place that decides which
runtime exception means which code.
"""

from __future__ import annotations

from http import HTTPStatus

from neuroncli.errors import UserError

OK = "OK"
INVALID_ARGUMENT = "INVALID_ARGUMENT"
NOT_FOUND = "NOT_FOUND"
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
UNAVAILABLE = "UNAVAILABLE"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
UNIMPLEMENTED = "UNIMPLEMENTED"
INTERNAL = "INTERNAL"

# TF Serving's ToHTTPStatusCode (model_servers/http_server.cc), for the codes we raise.
HTTP_STATUS = {
    OK: HTTPStatus.OK,
    INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    NOT_FOUND: HTTPStatus.NOT_FOUND,
    RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
}

# TensorFlow's OpError codes are gRPC's canonical codes (same numbers).
_TF_CODES = {3: INVALID_ARGUMENT, 4: DEADLINE_EXCEEDED, 5: NOT_FOUND, 8: RESOURCE_EXHAUSTED,
             9: FAILED_PRECONDITION, 11: INVALID_ARGUMENT, 12: UNIMPLEMENTED, 14: UNAVAILABLE}


class ServingError(Exception):
    """A request failed with ``code`` (a canonical code name) and a one-line ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return int(HTTP_STATUS.get(self.code, HTTPStatus.INTERNAL_SERVER_ERROR))


def from_exception(exc: BaseException) -> ServingError:
    """The status of an exception raised while serving a request.

    Timeouts are ``DEADLINE_EXCEEDED`` and cores that all failed ``UNAVAILABLE`` (both are
    :class:`UserError` subclasses, so they come first); any other :class:`UserError` is the
    caller's input (``INVALID_ARGUMENT``, with the message the CLI prints); a TensorFlow op
    error keeps its own code; anything else is a bug (``INTERNAL``).
    """
    from neuroncli.runtime import CoreUnavailable, InferenceTimeout
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, InferenceTimeout):
        return ServingError(DEADLINE_EXCEEDED, str(exc))
    if isinstance(exc, CoreUnavailable):
        return ServingError(UNAVAILABLE, str(exc))
    if isinstance(exc, UserError):
        return ServingError(INVALID_ARGUMENT, str(exc))
    code = getattr(exc, "error_code", None)  # tf.errors.OpError
    if isinstance(code, int):
        message = getattr(exc, "message", str(exc))
        return ServingError(_TF_CODES.get(code, INTERNAL), " ".join(str(message).split()))
    return ServingError(INTERNAL, f"{type(exc).__name__}: {exc}")
