"""Run one call of a loaded model: CPU stages in TensorFlow, NeuronOps on simulated cores.

Values travel between the steps of the :class:`~neuroncli.runtime.stages.CallSchedule` in a
dict keyed by tensor name.  A NeuronOp step checks its input shapes, splits a dynamic batch
into shards, sends each shard to a replica through the program's
:class:`~neuroncli.runtime.dispatch.Dispatcher` (shards of one call run concurrently when the
model has several replicas) and joins the results.  Everything here is safe to call from many
threads at once: the only shared state is in the dispatchers and cores.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from neuroncli.errors import UserError
from neuroncli.runtime import batching
from neuroncli.runtime.dispatch import Dispatcher, Group, UsageCounter
from neuroncli.runtime.host import HostSession, Runner, first_line
from neuroncli.runtime.program import Program
from neuroncli.runtime.stages import CpuStage, CallSchedule
from neuroncli.runtime.cores import CorePool


class Executor:
    """The runnable form of one loaded model."""

    def __init__(self, schedule: CallSchedule, programs: Sequence[Program], host: HostSession,
                 pool: CorePool, replicas: Sequence[Group],
                 timeout: Callable[[], float]) -> None:
        self.schedule = schedule
        self.free = [tuple(i for i in range(len(p.inputs)) if i not in set(schedule.bound[n]))
                     for n, p in enumerate(programs)]
        # What the executor sees of each program: only the inputs it feeds.
        self.programs = tuple(_fed_view(p, free) for p, free in zip(programs, self.free))
        self.host = host
        self.usage = UsageCounter()
        self.dispatchers = [Dispatcher(p.name, pool, replicas, self.usage, timeout)
                            for p in programs]
        self._stage_runners: dict[int, Runner] = {
            step.index: host.runner(step.feeds, step.fetches, step.targets)
            for step in schedule.steps if isinstance(step, CpuStage)}
        self._program_runners = [host.program_runner(i, p, self.free[i])
                                 for i, p in enumerate(programs)]
        self._out_dtypes = [[host.numpy_dtype(d) for d in p.output_dtypes] for p in programs]
        # Of the fed inputs only, like the arrays run_program converts (bound ones are not fed).
        self._in_dtypes = [[host.numpy_dtype(d) for d in p.input_dtypes] for p in self.programs]
        self._input_keys = {schedule.resolve(t): k for k, t in schedule.inputs.items()}
        self._shards: ThreadPoolExecutor | None = None
        self._shards_lock = threading.Lock()
        self._constants: dict[str, Any] = {}
        for step in schedule.steps:
            if isinstance(step, CpuStage) and step.constant:
                self._constants.update(zip(step.fetches, self._run_stage(step, [])))

    def warm_up(self, core: int) -> None:
        """Run every program once on zeros on ``core``, outside the dispatchers (so not
        counted): TensorFlow builds its executors then, and the first real call is not the
        slow one."""
        for runner, program, dtypes in zip(self._program_runners, self.programs,
                                           self._in_dtypes):
            runner.run([np.zeros(tuple(shape), dtype=dtype)
                        for shape, dtype in zip(program.input_shapes, dtypes)], core)

    def set_replicas(self, replicas: Sequence[Group]) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.set_replicas(replicas)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds``: signature key -> converted array.  Returns key -> output array."""
        values: dict[str, Any] = dict(self._constants)
        values.update((self.schedule.inputs[k], v) for k, v in feeds.items())
        lookup = self._lookup(values)
        for step in self.schedule.steps:
            if isinstance(step, CpuStage):
                if step.constant:
                    continue
                outs = self._run_stage(step, [lookup(t) for t in step.feeds])
                values.update(zip(step.fetches, outs))
            else:
                program = self.programs[step.program]
                outs = self.run_program(step.program, [lookup(t) for t in program.inputs])
                values.update(zip(program.outputs, outs))
        return {key: np.asarray(lookup(t)) for key, t in self.schedule.outputs.items()}

    def _lookup(self, values: Mapping[str, Any]) -> Callable[[str], Any]:
        def lookup(tensor: str) -> Any:
            resolved = self.schedule.resolve(tensor)
            try:
                return values[resolved]
            except KeyError:
                raise UserError(f"the compiled graph needs tensor {resolved!r} before it is "
                                "computed (a Placeholder that is not a signature input?): "
                                "recompile the model") from None
        return lookup

    def _run_stage(self, stage: CpuStage, values: list[Any]) -> list[np.ndarray]:
        runner = self._stage_runners[stage.index]
        try:
            return runner.run(values, self.host.host_pool)
        except UserError:
            raise
        except Exception as exc:
            if not _is_tf_error(exc):
                raise
            raise UserError(f"the CPU part of the model failed (stage {stage.index}): "
                            f"{first_line(exc)}") from None

    def run_program(self, index: int, arrays: list[Any]) -> list[np.ndarray]:
        """Execute NeuronOp ``index`` on its cores, sharding a dynamic batch."""
        program = self.programs[index]
        arrays = [_as_array(a, d) for a, d in zip(arrays, self._in_dtypes[index])]
        batch = batching.check(program, arrays, self._input_keys)
        if batch.batch == 0:
            return batching.empty_outputs(program, self._out_dtypes[index])
        shards = batching.split(program, arrays, batch)
        dispatcher = self.dispatchers[index]
        if len(shards) == 1 or len(dispatcher.replicas) == 1:
            results = [self._execute(index, shard) for shard in shards]
        else:
            groups = [dispatcher.choose() for _ in shards]
            pool = self._shard_pool(len(dispatcher.replicas))
            futures = [pool.submit(self._execute, index, shard, group)
                       for shard, group in zip(shards, groups)]
            results = [future.result() for future in futures]
        return batching.merge(program, results, batch)

    def _execute(self, index: int, shard: list[np.ndarray],
                 group: Group | None = None) -> list[np.ndarray]:
        runner = self._program_runners[index]
        name = self.programs[index].name

        def work(pool: int, deadline: float) -> list[np.ndarray]:
            try:
                return runner.run(shard, pool, deadline)
            except UserError:
                raise
            except Exception as exc:
                if not _is_tf_error(exc):
                    raise
                raise UserError(f"NeuronOp {name} failed: {first_line(exc)}") from None

        return self.dispatchers[index].execute(work, group)

    def _shard_pool(self, workers: int) -> ThreadPoolExecutor:
        with self._shards_lock:
            if self._shards is None:
                self._shards = ThreadPoolExecutor(max_workers=max(2, workers),
                                                  thread_name_prefix="neuroncli-shard")
            return self._shards

    def close(self) -> None:
        with self._shards_lock:
            pool, self._shards = self._shards, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.host.close()


def _fed_view(program: Program, free: Sequence[int]) -> Program:
    return replace(program, inputs=tuple(program.inputs[i] for i in free),
                   input_dtypes=tuple(program.input_dtypes[i] for i in free),
                   input_shapes=tuple(program.input_shapes[i] for i in free),
                   input_batch_axis=tuple(program.input_batch_axis[i] for i in free))


def _as_array(value: Any, dtype: np.dtype) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype != dtype and dtype != object:
        array = array.astype(dtype)
    return array


def _is_tf_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith("tensorflow") or isinstance(exc, (ValueError, TypeError))
