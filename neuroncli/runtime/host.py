"""The TensorFlow side of a loaded model: one graph, one session, one thread pool per core.

Design, from measurements on ResNet50 (see bench/bench_runtime.py):

* **One host copy.**  The model's host graph and each distinct program payload are imported
  once into one ``tf.Graph`` run by one ``tf.compat.v1.Session``.  Every replica executes the
  same graph nodes, and the session keys its executors by feeds and fetches only, so the
  weights live once in host memory however many cores the model is replicated on (per-core
  sessions or per-core callables would each hold a copy of every constant).
* **One thread pool per core.**  The session has one inter-op pool per visible core plus one
  host pool for CPU stages; ``RunOptions.inter_op_thread_pool`` picks the pool of the core
  running the program.  A core computes with the host CPUs divided evenly among the visible
  cores (its pool's threads and the session's intra-op threads), so N simulated cores busy at
  once do not oversubscribe the host (two cores on two CPUs ran ResNet50 at 2.0x the
  throughput of one), and a process that sees one core gives it the whole host.
* **Private intra-op pools.**  TensorFlow normally shares one process-wide intra-op pool sized
  by whichever session or eager context came first.  ``TF_OVERRIDE_GLOBAL_THREADPOOL=1``
  (set here before TensorFlow creates its first device, unless the user set it) gives each
  session its own pool of the size it asks for.  If TensorFlow was already running, results
  are still right, only the per-core CPU split is not enforced.
* **No Python in TensorFlow.**  Programs run by plain session calls from the caller's thread:
  no ``py_function`` callbacks (which deadlock once concurrent calls exhaust TF's pools).
  Calls go through the C session API directly (about 40 us instead of 250 us for
  ``Session.run``), falling back to ``Session.run`` if that API moves.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from neuroncli import proto
from neuroncli.errors import UserError
from neuroncli.lazy_tf import import_tensorflow
from neuroncli.runtime.program import Program
from neuroncli.runtime.stages import CallSchedule

log = logging.getLogger("neuroncli")
_OVERRIDE_ENV = "TF_OVERRIDE_GLOBAL_THREADPOOL"
_PROGRAM_SCOPE = "neuroncli_program"


class DeadlineExceeded(Exception):
    """A session call ran past its deadline (turned into a user-facing timeout upstream)."""


def tensorflow() -> Any:
    """TensorFlow, with private per-session intra-op pools requested before first use."""
    if _OVERRIDE_ENV not in os.environ and "tensorflow" in sys.modules:
        log.debug("TensorFlow was imported before the simulated runtime: if it already "
                  "created a device, simulated cores share one intra-op pool; set %s=1 "
                  "before importing TensorFlow to give each core its own", _OVERRIDE_ENV)
    os.environ.setdefault(_OVERRIDE_ENV, "1")
    return import_tensorflow()


def _session_api() -> Any:
    try:
        from tensorflow.python.client import pywrap_tf_session
        if hasattr(pywrap_tf_session, "TF_SessionRun_wrapper"):
            return pywrap_tf_session
    except ImportError:
        pass
    return None


class Runner:
    """One prepared session call: fixed feeds, fetches and targets."""

    def __init__(self, host: HostSession, feeds: Sequence[str], fetches: Sequence[str],
                 targets: Sequence[str] = ()) -> None:
        graph = host.graph
        self._host = host
        self.feed_tensors = [graph.get_tensor_by_name(name) for name in feeds]
        self.fetch_tensors = [graph.get_tensor_by_name(name) for name in fetches]
        self.target_ops = [graph.get_operation_by_name(name) for name in targets]
        self._api = _session_api()
        try:
            self._feeds = [t._as_tf_output() for t in self.feed_tensors]
            self._fetches = [t._as_tf_output() for t in self.fetch_tensors]
            self._targets = [op._c_op for op in self.target_ops]
        except AttributeError:  # TensorFlow moved its internals: use the public API
            self._api = None

    def run(self, values: Sequence[np.ndarray], pool: int,
            deadline: float | None = None) -> list[np.ndarray]:
        """Run on inter-op pool ``pool``; ``deadline`` is a ``time.monotonic()`` value."""
        tf = self._host.tf
        options = tf.compat.v1.RunOptions(inter_op_thread_pool=pool)
        if deadline is not None:
            options.timeout_in_ms = max(1, int((deadline - time.monotonic()) * 1000))
        session = self._host.session
        if session is None:
            raise UserError("the model was unloaded: load it again")
        try:
            if self._api is None:
                return self._run_python(session, values, options)
            buffer = self._api.TF_NewBufferFromString(options.SerializeToString())
            try:
                return self._api.TF_SessionRun_wrapper(
                    session._session, buffer, dict(zip(self._feeds, values)), self._fetches,
                    self._targets, None)
            finally:
                self._api.TF_DeleteBuffer(buffer)
        except tf.errors.DeadlineExceededError as exc:
            raise DeadlineExceeded(str(exc)) from None

    def _run_python(self, session: Any, values: Sequence[np.ndarray],
                    options: Any) -> list[np.ndarray]:
        out = session.run(self.fetch_tensors + self.target_ops,
                          dict(zip(self.feed_tensors, values)), options=options)
        return list(out[:len(self.fetch_tensors)])


# Grappler passes the backend already ran on every program (pruning, dependency, constfold) or
# that a frozen inference graph does not need.  Left on, the session re-runs them over the
# whole graph at the first call: ResNet50's warm-up took 2.7 s instead of 1.5 s, with
# bit-identical outputs.  The remapper (fused Conv2D+BiasAdd+Relu kernels) stays: without it
# steady-state latency is 60% higher.
_REDUNDANT_PASSES = ("constant_folding", "arithmetic_optimization", "layout_optimizer",
                     "dependency_optimization", "loop_optimization", "shape_optimization",
                     "function_optimization", "debug_stripper", "pin_to_host_optimization",
                     "implementation_selector", "common_subgraph_elimination")


def _skip_optimized_passes(rewrite_options: Any) -> None:
    for name in _REDUNDANT_PASSES:
        setattr(rewrite_options, name, rewrite_options.OFF)
    rewrite_options.memory_optimization = rewrite_options.NO_MEM_OPT


@dataclass(frozen=True)
class Weights:
    """Extracted weights to restore at load: checkpoint prefix and (handle, dtype) pairs."""

    prefix: str
    handles: tuple[tuple[str, int], ...]


class HostSession:
    """The graph and session of one loaded model.

    Programs are imported once per distinct (payload, bound inputs) pair; a bound input's
    placeholder is wired to the host graph's constant tensor (``schedule.bound``).
    """

    def __init__(self, schedule: CallSchedule, host_graph_def: Any, programs: Sequence[Program],
                 payloads: Mapping[str, bytes], *, cores: int, core_threads: int,
                 host_threads: int, weights: Weights | None = None) -> None:
        self.tf = tensorflow()
        self.graph = self.tf.Graph()
        self.host_pool = cores  # pools 0..cores-1 are the cores' own
        self._scopes: list[str] = []
        with self.graph.as_default():
            self.tf.graph_util.import_graph_def(host_graph_def, name="")
            self._import_programs(schedule, programs, payloads)
            restore = self._restore_op(weights) if weights else None
        self.graph.finalize()
        config = self.tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=core_threads, allow_soft_placement=True)
        for _ in range(cores):  # one inference at a time per core: its threads are its own
            config.session_inter_op_thread_pool.add(num_threads=core_threads)
        config.session_inter_op_thread_pool.add(num_threads=host_threads)
        _skip_optimized_passes(config.graph_options.rewrite_options)
        self.session: Any = self.tf.compat.v1.Session(graph=self.graph, config=config)
        self._close_lock = threading.Lock()
        if restore is not None:
            self._restore(weights, *restore)

    def _restore_op(self, weights: Weights) -> tuple[Any, Any]:
        """Ops that read every extracted weight from the checkpoint into its variable."""
        tf = self.tf
        with tf.name_scope("neuroncli_restore"):
            prefix = tf.compat.v1.placeholder(tf.string, [], name="prefix")
            tensors = tf.raw_ops.RestoreV2(
                prefix=prefix, tensor_names=[n for n, _ in weights.handles],
                shape_and_slices=[""] * len(weights.handles),
                dtypes=[d for _, d in weights.handles])
            assigns = [tf.raw_ops.AssignVariableOp(
                resource=self.graph.get_tensor_by_name(f"{name}:0"), value=value)
                for (name, _), value in zip(weights.handles, tensors)]
            return tf.group(*assigns), prefix

    def _restore(self, weights: Weights, op: Any, prefix: Any) -> None:
        try:
            self.session.run(op, {prefix: weights.prefix})
        except self.tf.errors.OpError as exc:
            self.close()
            raise UserError(f"{weights.prefix}: cannot restore the model's extracted weights "
                            f"({first_line(exc)}): copy the whole compiled model directory, "
                            "variables/ included, or compile it again") from None

    def _import_programs(self, schedule: CallSchedule, programs: Sequence[Program],
                         payloads: Mapping[str, bytes]) -> None:
        imported: dict[tuple, str] = {}
        for index, program in enumerate(programs):
            bound = schedule.bound[index] if schedule.bound else ()
            input_map = {program.header.input_names[i]: schedule.resolve(program.inputs[i])
                         for i in bound}
            key = (program.digest, tuple(sorted(input_map.items())))
            if key not in imported:
                scope = f"{_PROGRAM_SCOPE}_{len(imported)}"
                graph_def = proto.GraphDef.FromString(payloads[program.digest])
                self.tf.graph_util.import_graph_def(
                    graph_def, name=scope,
                    input_map={k: self.graph.get_tensor_by_name(v)
                               for k, v in input_map.items()})
                imported[key] = scope
            self._scopes.append(imported[key])

    def runner(self, feeds: Sequence[str], fetches: Sequence[str],
               targets: Sequence[str] = ()) -> Runner:
        return Runner(self, feeds, fetches, targets)

    def program_runner(self, index: int, program: Program,
                       free: Sequence[int]) -> Runner:
        """Program ``index``, fed at input positions ``free`` (the others are bound)."""
        scope = self._scopes[index]
        header = program.header
        return Runner(self, [f"{scope}/{header.input_names[i]}" for i in free],
                      [f"{scope}/{n}" for n in header.output_names])

    def numpy_dtype(self, dtype: int) -> np.dtype:
        return np.dtype(self.tf.dtypes.as_dtype(int(dtype)).as_numpy_dtype)

    def close(self) -> None:
        with self._close_lock:
            session, self.session = self.session, None
        if session is not None:
            session.close()


def first_line(exc: BaseException) -> str:
    """The first line of a TensorFlow error message, without its boilerplate."""
    text = getattr(exc, "message", None) or str(exc)
    lines = [ln.strip() for ln in text.strip().splitlines()
             if ln.strip() and ln.strip() != "Graph execution error:"]
    return (lines[0] if lines else type(exc).__name__)[:300]
