"""``load()`` and :class:`NeuronModel`: a compiled SavedModel loaded on simulated NeuronCores.

Loading reads only what the compiler wrote (through :mod:`neuroncli.savedmodel` and
:mod:`neuroncli.format`): it verifies every program's checksum, plans the call
(:mod:`~neuroncli.runtime.stages`), places the copies (:mod:`~neuroncli.runtime.placement`),
reserves device memory on every core of the placement (all or nothing), builds the TensorFlow
session (:mod:`~neuroncli.runtime.host`) and runs each program once so the first real call is
not the slow one.  Protobuf-only checks run first, so a bad model fails before TensorFlow is
imported.

A :class:`NeuronModel` is a thread-safe callable; :meth:`NeuronModel.set_neuron_cores` moves
it to other cores (its reservation is given up first and restored if the move fails).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from neuroncli.errors import UserError, stage
from neuroncli.format.weights import VARIABLES_PREFIX, variable_handles
from neuroncli.graph import GraphError
from neuroncli.proto.dtypes import dtype_size
from neuroncli.runtime import inputs as inputs_mod
from neuroncli.runtime.cores import NOTHING, Reservation
from neuroncli.runtime.dispatch import Usage
from neuroncli.runtime.inputs import TensorSpec
from neuroncli.runtime.placement import ReplicaLayout, place
from neuroncli.runtime.program import Program, read_programs
from neuroncli.runtime.simulator import NeuronRuntime, default_runtime
from neuroncli.runtime.stages import CallSchedule, schedule_call
from neuroncli.savedmodel import read_saved_model, select_meta_graph, select_signature
from neuroncli.savedmodel.reader import refuse_uncompiled

if TYPE_CHECKING:
    from neuroncli.runtime.executor import Executor
    from neuroncli.runtime.host import Weights


@dataclass(frozen=True)
class Signature:
    """The signature a loaded model serves.

    key: the signature key.  inputs / outputs: signature key -> :class:`TensorSpec`.
    """

    key: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


@dataclass(frozen=True)
class ModelStats:
    """What a model did so far.

    calls: completed calls.  replicas: the core group of each copy.  core_calls: visible
    core -> program executions of this model on it.  core_busy_seconds: the same in seconds.
    device_bytes: visible core -> device memory this model holds there.
    """

    calls: int
    replicas: tuple[tuple[int, ...], ...]
    core_calls: Mapping[int, int]
    core_busy_seconds: Mapping[int, float]
    device_bytes: Mapping[int, int]


def device_bytes(program: Program, bound: Iterable[int] = ()) -> int:
    """Device memory of one copy: the program's, plus constant inputs bound into it (weights
    the partitioner left outside the segment still live on the device)."""
    extra = 0
    for index in bound:
        shape = program.input_shapes[index] or ()
        extra += int(np.prod(shape, dtype=np.int64)) * dtype_size(program.input_dtypes[index])
    return program.device_bytes + extra


def _reservation(programs: Iterable[Program], placement: ReplicaLayout,
                 bound: tuple = ()) -> Reservation:
    """Device bytes and program copies per core; a pipeline program splits over its cores."""
    need: dict[int, int] = {}
    copies: dict[int, int] = {}
    for index, program in enumerate(programs):
        width = program.pipeline_cores
        size = device_bytes(program, bound[index] if bound else ())
        share = -(-size // width)
        for group in placement.replicas:
            for core in group[:width]:
                need[core] = need.get(core, 0) + share
                copies[core] = copies.get(core, 0) + 1
    return Reservation(need, copies)


class CallTimeout:
    """A model's per-call timeout, read by its dispatchers at every call.

    seconds: the model's own (``load(timeout=...)``, or ``model.timeout = s`` later), else
    None for the runtime's, which ``NEURON_FRAMEWORK_INFER_TIMEOUT_SEC`` sets.
    """

    def __init__(self, seconds: float | None, runtime: NeuronRuntime) -> None:
        self.seconds = seconds
        self._runtime = runtime

    def __call__(self) -> float:
        return self.seconds if self.seconds is not None else self._runtime.timeout


class NeuronModel:
    """A compiled model loaded on simulated cores.  Call it with the signature's inputs."""

    def __init__(self, model_dir: str, signature: Signature, programs: Iterable[Program],
                 schedule: CallSchedule, runtime: NeuronRuntime, placement: ReplicaLayout,
                 reservation: Reservation, timeout: CallTimeout, executor: Executor,
                 saved_model: Any = None, meta_info_def: Any = None) -> None:
        self.model_dir = model_dir
        self.signature = signature
        self.programs = tuple(programs)
        self.schedule = schedule
        self.runtime = runtime
        self.placement = placement
        self._timeout = timeout
        self._reservation = reservation
        self._executor: Executor | None = executor
        self._move_lock = threading.Lock()
        self._calls = 0
        self._calls_lock = threading.Lock()
        #: The SavedModel message when loaded from memory (``load(saved_model=...)``), else None.
        self.saved_model = saved_model
        #: The served meta graph's ``MetaInfoDef`` (a saved trace keeps its call structure in
        #: ``any_info``: neuroncli.tracing.structure).
        self.meta_info_def = meta_info_def

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """Inputs by keyword, as one dict, or one array; returns ``{output key: array}``."""
        executor = self._executor
        if executor is None:
            raise UserError(f"{self.model_dir}: the model was unloaded: load it again")
        feeds = inputs_mod.bind(self.signature.inputs, args, kwargs, self.signature.key)
        with stage("run"):
            outputs = executor.run(feeds)
        with self._calls_lock:
            self._calls += 1
        return outputs

    def example_shapes(self, batch: int | None = None) -> dict[str, tuple[int, ...]]:
        """A concrete shape per input: declared dims, else the compiled NeuronOp's, with
        ``batch`` for axis 0 when given."""
        compiled: dict[str, tuple] = {}
        for program in self.programs:
            for tensor, shape in zip(program.inputs, program.input_shapes):
                compiled.setdefault(self.schedule.resolve(tensor), shape)
        shapes = {}
        for key, spec in self.signature.inputs.items():
            known = compiled.get(self.schedule.resolve(self.schedule.inputs[key]))
            shapes[key] = _concrete(spec, known, batch)
        return shapes

    def random_inputs(self, batch: int | None = None, seed: int = 0) -> dict[str, Any]:
        return inputs_mod.random_inputs(self.signature.inputs, self.example_shapes(batch),
                                        seed)

    @property
    def timeout(self) -> float | None:
        """Seconds per call, core wait included (None: the runtime's); settable."""
        return self._timeout.seconds

    @timeout.setter
    def timeout(self, seconds: float | None) -> None:
        self._timeout.seconds = seconds

    # -- placement ------------------------------------------------------------------------
    @property
    def replicas(self) -> tuple[tuple[int, ...], ...]:
        return self.placement.replicas

    @property
    def cores(self) -> tuple[int, ...]:
        """Visible indices of the cores this model is loaded on."""
        return self.placement.cores

    @property
    def loaded(self) -> bool:
        return self._executor is not None

    def set_neuron_cores(self, start_nc: int | None = -1, nc_count: int | None = -1) -> None:
        """Move the model: give up its cores, then place and reserve it again."""
        with self._move_lock:
            if self._executor is None:
                raise UserError(f"{self.model_dir}: the model was unloaded: load it again")
            pool = self.runtime.pool
            placement = place(self.programs, pool.usage(exclude=self._reservation),
                              start_nc=start_nc, nc_count=nc_count)
            reservation = _reservation(self.programs, placement, self.schedule.bound)
            pool.reserve(f"model {self.model_dir}", reservation, release=self._reservation)
            self._reservation = reservation
            self.placement = placement
            self._executor.set_replicas(placement.replicas)

    # -- saving ---------------------------------------------------------------------------
    def source_saved_model(self) -> Any:
        """The ``SavedModel`` message this model was loaded from (read again if it came from
        ``model_dir``: a loaded model keeps only its programs, not the whole message)."""
        if self.saved_model is not None:
            return self.saved_model
        return read_saved_model(self.model_dir).saved_model

    def save(self, directory: str | os.PathLike, *, force: bool = False) -> None:
        """Write the model as loaded (``auto_multicore``'s tags included) to ``directory``,
        atomically, with the ``variables/`` and ``assets/`` of ``model_dir``."""
        from neuroncli.savedmodel import atomic_output, copy_model_files, write_saved_model
        source = self.model_dir if os.path.isdir(self.model_dir) else None
        with atomic_output(os.fspath(directory), input_dir=source, force=force) as tmp:
            write_saved_model(tmp, self.source_saved_model())
            if source is not None:
                copy_model_files(source, tmp)

    # -- reporting and lifetime -----------------------------------------------------------
    def stats(self) -> ModelStats:
        usage: dict[int, Usage] = self._executor.usage.snapshot() if self._executor else {}
        return ModelStats(
            calls=self._calls, replicas=self.placement.replicas,
            core_calls={c: u.calls for c, u in usage.items()},
            core_busy_seconds={c: u.busy_seconds for c, u in usage.items()},
            device_bytes=dict(sorted(self._reservation.device_bytes.items())))

    def unload(self) -> None:
        """Free the cores and the session; later calls raise :class:`UserError`."""
        with self._move_lock:
            executor, self._executor = self._executor, None
            if executor is None:
                return
            self.runtime.pool.release(self._reservation)
            self._reservation = NOTHING
        executor.close()

    def __enter__(self) -> NeuronModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    def __repr__(self) -> str:
        state = f"cores {list(self.cores)}" if self.loaded else "unloaded"
        return (f"NeuronModel({self.model_dir!r}, signature={self.signature.key!r}, "
                f"{len(self.programs)} NeuronOp(s), {len(self.replicas)} cop(ies), {state})")


def _concrete(spec: TensorSpec, compiled: tuple | None,
              batch: int | None) -> tuple[int, ...]:
    shape = spec.shape if spec.shape is not None else compiled
    if shape is None:
        raise UserError(f"input {spec.key!r} has an unknown rank: pass example inputs "
                        "(--inputs FILE.npz)")
    dims = []
    for axis, dim in enumerate(shape):
        if axis == 0 and batch is not None and (spec.shape is None or dim is None):
            dim = batch
        if dim is None and compiled is not None and axis < len(compiled):
            dim = compiled[axis]
        if dim is None and axis == 0:
            dim = 1
        if dim is None:
            raise UserError(f"input {spec.key!r} has an unknown dimension {axis} "
                            f"(shape {spec.shape}): pass example inputs (--inputs FILE.npz)")
        dims.append(int(dim))
    return tuple(dims)


def load(model_dir: str | os.PathLike, signature_def_key: str | None = None,
         tags: Iterable[str] | None = None, *, start_nc: int | None = None,
         nc_count: int | None = None, runtime: NeuronRuntime | None = None,
         timeout: float | None = None, warmup: bool = True,
         saved_model: Any = None) -> NeuronModel:
    """Load a compiled SavedModel onto simulated NeuronCores and return a callable model.

    ``start_nc`` / ``nc_count`` override the model's placement (see
    :mod:`neuroncli.runtime.placement`); ``runtime`` defaults to the process's
    (:func:`~neuroncli.runtime.simulator.default_runtime`); ``timeout`` overrides
    ``NEURON_FRAMEWORK_INFER_TIMEOUT_SEC`` for this model.  ``saved_model``: the model's
    ``SavedModel`` message already in memory (``trace`` has it), read instead of
    ``model_dir/saved_model.pb``; ``model_dir`` still holds its ``variables/``, if any.
    Raises :class:`UserError`.
    """
    runtime = runtime or default_runtime()
    if start_nc is None and nc_count is None:
        from neuroncli.runtime.context import current
        start_nc, nc_count = current() or (None, None)
    path = os.fspath(model_dir)
    with stage("load"):
        parts = _read(path, signature_def_key, tags, saved_model)
    signature, programs, schedule = parts.signature, parts.programs, parts.schedule
    meta_info = parts.meta_info
    placement = place(programs, runtime.pool.usage(), start_nc=start_nc, nc_count=nc_count)
    reservation = _reservation(programs, placement, schedule.bound)
    runtime.pool.reserve(f"model {path}", reservation)
    call_timeout = CallTimeout(timeout, runtime)
    executor = None
    try:
        with stage("load"):
            executor = _build_executor(parts, runtime, placement, call_timeout)
        del parts  # the session holds the graphs now: their bytes go before malloc_trim
        if warmup:
            with stage("run"):
                executor.warm_up(placement.replicas[0][0] if placement.replicas else 0)
        _return_freed_memory()
    except BaseException:
        if executor is not None:
            executor.close()
        runtime.pool.release(reservation)
        raise
    model = NeuronModel(path, signature, programs, schedule, runtime, placement, reservation,
                        call_timeout, executor, saved_model, meta_info)
    runtime.register(model)
    return model


@dataclass(frozen=True)
class _Parts:
    """What :func:`load` reads from a compiled SavedModel, before anything is placed.

    signature: the signature served.  programs: the NeuronOps' programs, in graph order.
    schedule: how one call runs.  host_graph_def: the CPU side, NeuronOps as stand-ins.
    payloads: program index -> optimized subgraph (handed to the host session, then dropped).
    weights: the variables to restore (``--extract-weights``), or None.
    meta_info: a copy of the meta graph's ``MetaInfoDef`` (a sub-message would keep the whole
    SavedModel, weights included, alive).
    """

    signature: Signature
    programs: tuple[Program, ...]
    schedule: CallSchedule
    host_graph_def: Any
    payloads: dict
    weights: Weights | None
    meta_info: Any


def _build_executor(parts: _Parts, runtime: NeuronRuntime, placement: ReplicaLayout,
                    timeout: CallTimeout) -> Executor:
    """The TensorFlow session (:mod:`~neuroncli.runtime.host`) and the executor over it."""
    from neuroncli.runtime.executor import Executor
    from neuroncli.runtime.host import HostSession
    host = HostSession(parts.schedule, parts.host_graph_def, parts.programs, parts.payloads,
                       cores=len(runtime.pool), core_threads=runtime.core_threads,
                       host_threads=runtime.host_threads, weights=parts.weights)
    parts.payloads.clear()  # the session holds the graphs now; the bytes can go
    return Executor(parts.schedule, parts.programs, host, runtime.pool, placement.replicas,
                    timeout)


def _read(path: str, key: str | None, tags: Iterable[str] | None, saved_model: Any) -> _Parts:
    if saved_model is None:
        refuse_uncompiled(path)
        saved_model = read_saved_model(path).saved_model
    meta_graph = select_meta_graph(saved_model, None if tags is None else list(tags))
    key, signature_def = select_signature(meta_graph, key)
    signature = Signature(
        key,
        {k: TensorSpec.from_tensor_info(k, signature_def.inputs[k])
         for k in sorted(signature_def.inputs)},
        {k: TensorSpec.from_tensor_info(k, signature_def.outputs[k])
         for k in sorted(signature_def.outputs)})
    programs, payloads = read_programs(meta_graph.graph_def)
    try:
        schedule, host_graph_def = schedule_call(meta_graph.graph_def, programs,
                                         {k: s.name for k, s in signature.inputs.items()},
                                         {k: s.name for k, s in signature.outputs.items()})
    except (GraphError, KeyError) as exc:
        raise UserError(f"{path}: the compiled graph is malformed ({exc}): recompile the "
                        "model") from None
    meta_info = type(meta_graph.meta_info_def)()
    meta_info.CopyFrom(meta_graph.meta_info_def)
    return _Parts(signature, tuple(programs), schedule, host_graph_def, payloads,
                  _extracted_weights(path, meta_graph.graph_def), meta_info)


def _extracted_weights(path: str, graph_def: Any) -> Weights | None:
    """What to restore at load for a model compiled with ``--extract-weights`` (or None)."""
    from neuroncli.runtime.host import Weights
    handles = variable_handles(graph_def)
    if not handles:
        return None
    prefix = os.path.join(path, VARIABLES_PREFIX)
    if not os.path.isfile(prefix + ".index"):
        raise UserError(f"{path}: the model keeps its weights in variables/ (compiled with "
                        f"--extract-weights) but {prefix}.index is missing: copy the whole "
                        "compiled model directory, variables/ included")
    return Weights(prefix, tuple((n.name, int(n.attr["dtype"].type)) for n in handles))


def _return_freed_memory() -> None:
    """Hand the heap TensorFlow freed while building the executors back to the OS.

    Grappler copies the graph several times while it optimizes; glibc keeps those pages
    (often several times the model's weights) unless asked.  A no-op off glibc.
    """
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
