"""The simulated Neuron runtime of a process: an instance, its visible cores, the settings.

:func:`default_runtime` is built from the environment on first use (``NEURON_SIM_INSTANCE_TYPE``,
``NEURON_RT_VISIBLE_CORES`` / ``NEURON_RT_NUM_CORES``, ``NEURON_FRAMEWORK_INFER_TIMEOUT_SEC``),
like the real runtime, which reads them once per process.  Tests, benchmarks and the CLI can
also make their own :class:`NeuronRuntime` with explicit settings and pass it to ``load``.
"""

from __future__ import annotations

import threading
import weakref
from typing import Mapping, Protocol

from neuroncli.runtime.cores import CorePool, CoreStats, NeuronCore
from neuroncli.runtime.instance import (
    InstanceSpec, host_cpus, infer_timeout, instance_spec, visible_cores,
)



class LoadedModel(Protocol):
    """What the runtime needs of a model it keeps track of (``runtime.model.NeuronModel``,
    which imports this module: the runtime is given its models, it never loads them)."""

    @property
    def loaded(self) -> bool: ...


class NeuronRuntime:
    """A simulated instance and the cores this process sees.

    instance_type: e.g. ``"inf1.xlarge"`` (default: ``NEURON_SIM_INSTANCE_TYPE`` or
        ``inf2.xlarge``).
    visible_cores / num_cores: like ``NEURON_RT_VISIBLE_CORES`` / ``NEURON_RT_NUM_CORES``
        (default: the environment, else every core).
    timeout: seconds per program execution, core wait included (default
        ``NEURON_FRAMEWORK_INFER_TIMEOUT_SEC`` or 10).
    core_threads: host threads one simulated core computes with (default: the host's CPUs
        divided evenly among the visible cores, at least 1).
    core_memory_bytes: device memory per core (default: the instance type's; tests shrink it).
    environ: the environment to read instead of ``os.environ``.
    """

    def __init__(self, instance_type: str | None = None, *, visible_cores: str | None = None,
                 num_cores: int | None = None, timeout: float | None = None,
                 core_threads: int | None = None, core_memory_bytes: int | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.instance: InstanceSpec = instance_spec(instance_type, environ)
        physical = _visible(self.instance, visible_cores, num_cores, environ)
        self.pool = CorePool(self.instance, physical, core_memory_bytes)
        self.timeout = infer_timeout(timeout, environ)
        cpus = host_cpus()
        self.core_threads = int(core_threads or max(1, cpus // len(physical)))
        self.host_threads = cpus
        self._models: weakref.WeakSet[LoadedModel] = weakref.WeakSet()
        self._lock = threading.Lock()

    @property
    def cores(self) -> tuple[NeuronCore, ...]:
        return self.pool.cores

    def register(self, model: LoadedModel) -> None:
        with self._lock:
            self._models.add(model)

    def models(self) -> list[LoadedModel]:
        with self._lock:
            return [m for m in self._models if m.loaded]

    def fail_core(self, index: int) -> None:
        """Mark visible core ``index`` failed: its work moves to the other replicas."""
        self.pool.fail(index)

    def restore_core(self, index: int) -> None:
        self.pool.restore(index)

    def core_stats(self) -> list[CoreStats]:
        return self.pool.stats()

    def describe(self) -> str:
        physical = ",".join(str(c.physical) for c in self.cores)
        return (f"{self.instance.name}: {len(self.cores)} visible NeuronCore(s) "
                f"[{physical}] of {self.instance.cores}, {self.core_threads} host thread(s) "
                f"per core, timeout {self.timeout:g} s")

    def __repr__(self) -> str:
        return f"NeuronRuntime({self.describe()})"


def _visible(spec: InstanceSpec, visible: str | None, num: int | None,
             environ: Mapping[str, str] | None) -> tuple[int, ...]:
    return visible_cores(spec, visible, num, environ)


_default: NeuronRuntime | None = None
_default_lock = threading.Lock()


def default_runtime() -> NeuronRuntime:
    """The process's runtime, made from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = NeuronRuntime()
        return _default


def set_default_runtime(runtime: NeuronRuntime | None) -> NeuronRuntime | None:
    """Replace the process's runtime (None: rebuild from the environment on next use).

    Returns the previous one.  Models already loaded stay on the runtime they were loaded on.
    """
    global _default
    with _default_lock:
        previous, _default = _default, runtime
        return previous
