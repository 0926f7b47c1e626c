"""Load the op library right after ``import tensorflow`` finishes, whoever imports it.

A meta path finder placed first on ``sys.meta_path`` answers only for the top-level
``tensorflow`` package: it asks the other finders for the real spec and wraps that loader's
``exec_module`` so that, once TensorFlow's ``__init__`` has run, the library is loaded (and the
finder removes itself).  Importing ``neuroncli`` therefore costs nothing and never imports
TensorFlow; a process that never imports TensorFlow never builds or loads anything.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from typing import Any

from neuroncli.tfop.build import OpLibraryUnavailable

_lock = threading.Lock()


class TensorFlowImportHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of ``tensorflow`` to load the library after it."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "tensorflow":
            return None
        # Not uninstalled here: ``importlib.util.find_spec("tensorflow")`` (e.g. neuroncli.proto
        # locating the wheel without importing it) asks finders too, and never executes the
        # module.  The hook goes when TensorFlow's ``__init__`` has really run.
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec

        def exec_module(module: Any) -> None:
            run(module)
            uninstall()
            load_quietly(module)

        loader.exec_module = exec_module  # this loader instance serves only this import
        return spec


def install() -> None:
    """Put the hook first on ``sys.meta_path`` (once)."""
    with _lock:
        if not any(isinstance(f, TensorFlowImportHook) for f in sys.meta_path):
            sys.meta_path.insert(0, TensorFlowImportHook())


def uninstall() -> None:
    with _lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, TensorFlowImportHook)]


def load_quietly(tf: Any) -> None:
    """Load the library; on failure print one line (once) and carry on."""
    from neuroncli import tfop
    from neuroncli.lazy_tf import notify
    try:
        tfop.load_library(tf)
    except OpLibraryUnavailable as exc:
        notify(f"neuroncli: {exc}")
    except Exception as exc:  # noqa: BLE001 - never break the user's `import tensorflow`
        notify(f"neuroncli: the NeuronOp library failed to load ({type(exc).__name__}: "
               f"{exc}): tf.saved_model.load cannot run compiled models in this process; "
               "neuroncli.load still works")
