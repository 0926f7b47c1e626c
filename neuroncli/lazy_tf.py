"""Import TensorFlow lazily and quietly: only code that freezes or executes a graph calls this.

TensorFlow prints C++ log lines (and oneDNN's notice) on file descriptor 2 during import,
before Python logging exists.  We set ``TF_CPP_MIN_LOG_LEVEL`` (unless the user did) and, when
not verbose, point fd 2 at /dev/null for the duration of the import only.  oneDNN stays on: it
is 10-18% faster on this CPU and its notice is exactly what the redirect hides.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

_lock = threading.Lock()
VERBOSE_ENV = "NEURONCLI_TF_VERBOSE"
#: The TensorFlow minor release the simulator, the compiler and the shipped descriptors
#: (``neuroncli/proto/tf_descriptors.bin``) are built for; pyproject's extras pin it too.
SUPPORTED_TF = "2.21"
#: What to install when TensorFlow is missing: the extras of pyproject.toml.
INSTALL_HINT = ("pip install 'neuroncli[cpu]' (tensorflow-cpu) or 'neuroncli[gpu]' "
                "(tensorflow, e.g. next to a GPU build)")


def require_tensorflow() -> None:
    """Raise a one-line :class:`~neuroncli.errors.UserError` when TensorFlow is not
    installed (the light install: only the protobuf-only commands work there)."""
    import importlib.util
    try:
        found = importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # a finder that refuses it, a broken install
        found = False
    if not found:
        from neuroncli.errors import UserError
        raise UserError(f"this needs TensorFlow {SUPPORTED_TF}, which is not installed: "
                        f"{INSTALL_HINT}")


def version_warning(version: str) -> str | None:
    """The warning for an unsupported TensorFlow ``version``, None when it is supported."""
    if version == SUPPORTED_TF or version.startswith(SUPPORTED_TF + "."):
        return None
    return (f"warning: TensorFlow {version} is not supported: neuroncli supports "
            f"TensorFlow {SUPPORTED_TF}.x ({SUPPORTED_TF}.0 to <{_next_minor()}); "
            "results may differ or fail")


def _next_minor() -> str:
    major, minor = SUPPORTED_TF.split(".")
    return f"{major}.{int(minor) + 1}"
# Lines for the user produced while fd 2 is muted (e.g. by the op library's import hook):
# printed once the import is over, so they are not lost with TensorFlow's noise.
_muted = False
_pending: list[str] = []


def notify(line: str) -> None:
    """Print one line on stderr now, or right after a muted TensorFlow import."""
    if _muted:
        _pending.append(line)
    else:
        print(line, file=sys.stderr, flush=True)


def import_tensorflow() -> Any:
    """Return the ``tensorflow`` module, importing it on first use."""
    global _muted
    module = sys.modules.get("tensorflow")
    if module is not None and hasattr(module, "Graph"):
        return module
    require_tensorflow()
    with _lock:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Per-session thread pools (one per simulated NeuronCore) only isolate CPU shares
        # when TensorFlow is told so before it creates its first device.
        os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")
        if os.environ.get(VERBOSE_ENV):
            import tensorflow as tf
            _warn_version(tf)
            return tf
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            sys.stderr.flush()
            os.dup2(devnull, 2)
            _muted = True
            import tensorflow as tf
        finally:
            _muted = False
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
            while _pending:
                notify(_pending.pop(0))
        tf.get_logger().setLevel("ERROR")
        _warn_version(tf)
        return tf


def _warn_version(tf: Any) -> None:
    warning = version_warning(getattr(tf, "__version__", "unknown"))
    if warning:
        notify(warning)
