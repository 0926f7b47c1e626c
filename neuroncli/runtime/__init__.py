"""The simulated NeuronCore runtime: load compiled SavedModels and run them without hardware.

``load(model_dir)`` returns a thread-safe callable :class:`NeuronModel`; CPU parts of the graph
run in TensorFlow and each ``NeuronOp`` runs its program on a simulated NeuronCore of a
simulated instance (:class:`NeuronRuntime`: core counts, device memory, visible cores,
timeouts and failed cores as the real runtime has them).  ``verify`` compares a compiled model
with its original.  ``reference`` runs an original SavedModel in TensorFlow.

``import neuroncli.runtime`` does not import TensorFlow: the names below load on first use.

Modules: ``instance`` (instance types, visible cores), ``cores`` (NeuronCore, CorePool),
``program`` (NeuronOps as programs), ``placement`` (replica rules), ``stages`` (call schedule),
``host`` (the TF session), ``batching`` (shapes and dynamic batch), ``dispatch`` (round robin,
timeouts, failures), ``executor`` (one call), ``model`` (load, NeuronModel), ``simulator``
(NeuronRuntime), ``inputs`` (binding, random inputs), ``verify``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load": "neuroncli.runtime.model",
    "NeuronModel": "neuroncli.runtime.model",
    "ModelStats": "neuroncli.runtime.model",
    "Signature": "neuroncli.runtime.model",
    "NeuronRuntime": "neuroncli.runtime.simulator",
    "default_runtime": "neuroncli.runtime.simulator",
    "set_default_runtime": "neuroncli.runtime.simulator",
    "CoreStats": "neuroncli.runtime.cores",
    "InferenceTimeout": "neuroncli.runtime.dispatch",
    "CoreUnavailable": "neuroncli.runtime.dispatch",
    "TensorSpec": "neuroncli.runtime.inputs",
    "INSTANCE_TYPES": "neuroncli.runtime.instance",
    "verify": "neuroncli.runtime.verify",
    "VerifyReport": "neuroncli.runtime.verify",
    "OutputComparison": "neuroncli.runtime.verify",
}

__all__ = sorted([*_EXPORTS, "fail_core", "restore_core", "set_neuron_cores"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'neuroncli.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def fail_core(index: int, runtime: Any = None) -> None:
    """Mark visible NeuronCore ``index`` failed (tests and drills): calls move to the other
    replicas; a model with no healthy replica left raises ``CoreUnavailable``."""
    from neuroncli.runtime.simulator import default_runtime
    (runtime or default_runtime()).fail_core(index)


def restore_core(index: int, runtime: Any = None) -> None:
    """Mark visible NeuronCore ``index`` healthy again."""
    from neuroncli.runtime.simulator import default_runtime
    (runtime or default_runtime()).restore_core(index)


def set_neuron_cores(model: Any, start_nc: int = -1, nc_count: int = -1) -> None:
    """Move a loaded model to other cores: ``start_nc`` -1 = least-used visible core,
    ``nc_count`` -1 = one copy, N = N cores (N / pipeline-cores copies)."""
    model.set_neuron_cores(start_nc, nc_count)
