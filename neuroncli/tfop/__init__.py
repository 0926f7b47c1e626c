"""The NeuronOp op library: compiled models load with TensorFlow's own loader.

AWS's ``import tensorflow.neuron`` registers the ``NeuronOp`` op and its kernel with
TensorFlow, so ``tf.saved_model.load``, ``tf.compat.v1.saved_model.load`` and
``keras.layers.TFSMLayer`` run compiled models.  This package does the same with a C++ op
library (``cc/``): AWS's op definition and a CPU kernel that runs the op's program through
TensorFlow's C API (see ``cc/neuron_op_kernel.cc``).

How it gets registered (both orders work, and protobuf-only commands still never import
TensorFlow):

* ``import neuroncli`` calls :func:`register_when_tensorflow_loads`: if TensorFlow is already
  imported the library is loaded at once, otherwise a one-shot import hook loads it right after
  ``import tensorflow`` finishes (:mod:`neuroncli.tfop.hook`).
* ``import neuroncli.tensorflow`` (AWS-like) imports TensorFlow and loads it explicitly,
  raising :class:`OpLibraryUnavailable` if it cannot.

The library is built on first use into a cache (:mod:`neuroncli.tfop.build`).  When it cannot
be built (no compiler), the automatic path prints one line saying so and that
``neuroncli.load`` still works; nothing else changes.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from neuroncli.tfop.build import BuildResult, OpLibraryUnavailable, ensure_built

__all__ = ["OpLibraryUnavailable", "LoadedLibrary", "load_library", "loaded",
           "register_when_tensorflow_loads"]

_lock = threading.Lock()
_loaded: LoadedLibrary | None = None
_failure: str | None = None


@dataclass(frozen=True)
class LoadedLibrary:
    """The op library loaded into this process.

    build: where it is and whether this process compiled it.
    load_seconds: time ``tf.load_op_library`` took.
    """

    build: BuildResult
    load_seconds: float

    @property
    def path(self) -> str:
        return self.build.path


def loaded() -> LoadedLibrary | None:
    """The library if this process has loaded it, else None (never builds or imports)."""
    return _loaded


def load_library(tf: Any = None) -> LoadedLibrary:
    """Build (if needed) and load the op library into TensorFlow; idempotent, thread-safe.

    ``tf``: the TensorFlow module (imported quietly when omitted).  Raises
    :class:`OpLibraryUnavailable`, with the same message on every later call.
    """
    global _loaded, _failure
    if tf is None:  # outside the lock: the import hook itself calls back in here
        from neuroncli.lazy_tf import import_tensorflow
        tf = import_tensorflow()
    with _lock:
        if _loaded is not None:
            return _loaded
        if _failure is not None:
            raise OpLibraryUnavailable(_failure)
        try:
            build = ensure_built(tf)
            started = time.perf_counter()
            tf.load_op_library(build.path)
        except OpLibraryUnavailable as exc:
            _failure = str(exc)
            raise
        except (OSError, tf.errors.OpError) as exc:  # e.g. a library built for another TF
            _failure = (f"cannot load the NeuronOp library {build.path} ({exc}): delete it "
                        "to rebuild; tf.saved_model.load cannot run compiled models in this "
                        "process; neuroncli.load still works")
            raise OpLibraryUnavailable(_failure) from None
        _loaded = LoadedLibrary(build, time.perf_counter() - started)
        return _loaded


def register_when_tensorflow_loads() -> None:
    """Load the library now if TensorFlow is imported, else right after it is."""
    from neuroncli.tfop import hook
    module = sys.modules.get("tensorflow")
    if module is not None and hasattr(module, "load_op_library"):
        hook.load_quietly(module)
    else:
        hook.install()
