"""neuroncli: compile TensorFlow SavedModels for AWS NeuronCores, place them on cores, and
verify them on a simulated NeuronCore runtime.

``import neuroncli`` never imports TensorFlow; the submodules that need it import it lazily.
Public API (AWS-compatible names): ``neuroncli.saved_model.compile``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from neuroncli.errors import UsageError, UserError  # noqa: E402

_LAZY = {"saved_model": "neuroncli.saved_model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    raise AttributeError(f"module 'neuroncli' has no attribute {name!r}")


__all__ = ["UserError", "UsageError", "saved_model", "__version__"]
