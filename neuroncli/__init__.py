"""neuroncli: compile TensorFlow SavedModels for AWS NeuronCores, place them on cores, and
verify them on a simulated NeuronCore runtime.

``import neuroncli`` never imports TensorFlow; the submodules that need it import it lazily.
Once TensorFlow is imported (before or after), the NeuronOp op library is loaded into it, so
``tf.saved_model.load`` runs compiled models (:mod:`neuroncli.tfop`).
Public API (AWS-compatible names): ``neuroncli.saved_model.compile``, ``neuroncli.trace``,
``neuroncli.load``, ``neuroncli.analyze_model``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from neuroncli.errors import UsageError, UserError  # noqa: E402
from neuroncli.tfop import register_when_tensorflow_loads  # noqa: E402

# tf.saved_model.load runs compiled models in any process that imported neuroncli: the
# NeuronOp library loads now if TensorFlow is imported, else right after it is (no TF here).
register_when_tensorflow_loads()

_MODULES = {"saved_model": "neuroncli.saved_model", "runtime": "neuroncli.runtime"}
# name -> module holding it; loaded on first use, so `import neuroncli` stays cheap.
_FUNCTIONS = {
    "trace": "neuroncli.tracing",
    "analyze_model": "neuroncli.tracing",
    "load": "neuroncli.tracing.model",
    "auto_multicore": "neuroncli.placement",
    "set_neuron_cores": "neuroncli.placement",
    "set_multicore": "neuroncli.placement",
    "neuron_cores_context": "neuroncli.placement",
    "multicore_context": "neuroncli.placement",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'neuroncli' has no attribute {name!r}")


__all__ = ["UserError", "UsageError", "saved_model", "runtime", "trace", "analyze_model",
           "load", "auto_multicore", "set_neuron_cores", "set_multicore",
           "neuron_cores_context", "multicore_context", "__version__"]
