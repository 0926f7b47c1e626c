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
    with _lock:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Per-session thread pools (one per simulated NeuronCore) only isolate CPU shares
        # when TensorFlow is told so before it creates its first device.
        os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")
        if os.environ.get(VERBOSE_ENV):
            import tensorflow as tf
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
        return tf
