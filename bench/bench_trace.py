"""Benchmark of ``neuroncli.trace`` against its goals; prints a table.

Usage::

    .venv/bin/python bench/bench_trace.py [--quick] [--json]

``run()`` returns the rows (dicts with keys figure, goal, measured, ratio, passed):

1. **trace**: ``neuroncli.trace`` of a Keras ResNet50 (random weights, batch 1) vs the floor,
   freezing the same function with TensorFlow alone
   (``tf.function(model).get_concrete_function(spec)`` then
   ``convert_variables_to_constants_v2``).  Each measurement runs in a fresh child process
   (``python bench/bench_trace.py --child trace|floor``): both then start equally cold (no
   warm TensorFlow function caches, imports or allocator left over by the other), and neither
   pays for the other's memory.  In the child, TensorFlow, Keras and neuroncli are imported
   and the Keras model is built and called once *before* the clock starts, so only the
   trace / the freeze is timed.  The trace's time includes what ``trace`` returns: a model
   loaded on the simulated cores.  Children alternate (trace, floor, trace, ...) so the
   machine's other load hits both alike; medians are compared.  Goal: ratio <= 1.5.
2. **dynamic batch**: ResNet50 traced at batch 1 with ``NEURON_CC_FLAGS=--dynamic-batch-size``
   (in a child), then called with batch 16 from one caller thread: 16 shards.  The runtime
   spreads the shards of one call over the model's replicas (``Executor.run_program`` submits
   them to a shard pool, each to the next replica in turn), so one caller is enough.  Two
   runtimes are compared, an inf2.xlarge seeing cores 0-1 (two replicas) and one seeing core
   0 (one replica), both with ``core_threads=1``: a simulated core computes with one host
   thread in both, as a NeuronCore's speed does not depend on how many others are visible
   (with the default split a lone visible core would get every host CPU and the figure would
   measure the host instead).  Calls alternate between the two; medians are compared.
   Goal: ratio >= 1.6.

The machine's other load shows up in the numbers: run it on a quiet host.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Before anything creates a TensorFlow device: every session owns its intra-op threads, which
# is what gives each simulated core its own share of the host (as bench_runtime.py does).
os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")

import numpy as np  # noqa: E402

from table import report, row  # noqa: E402

SEED = 20240
BATCH = 16


# -- children ------------------------------------------------------------------------------

def _resnet50() -> tuple[Any, np.ndarray]:
    import keras
    keras.utils.set_random_seed(SEED)
    model = keras.applications.ResNet50(weights=None)
    x = np.random.default_rng(SEED).standard_normal((1, 224, 224, 3)).astype(np.float32)
    model(x)  # built and run once: Keras' own first-call work is not what we time
    return model, x


def _cpu() -> float:
    """CPU seconds of this process, every thread (TensorFlow's pools included)."""
    times = os.times()
    return times.user + times.system


def _optimize_and_load(tf: Any, graph_def: Any, outputs: list[str]) -> None:
    """What TensorFlow alone needs to make a frozen graph a program and load it: grappler
    with the backend's optimizers (``compiler.backend.optimize``), then an import into a
    session's graph."""
    from tensorflow.python.grappler import tf_optimizer
    meta = tf.compat.v1.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
    meta.collection_def["train_op"].node_list.value.extend(
        sorted({name.split(":")[0] for name in outputs}))
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.optimizers.extend(["pruning", "dependency", "constfold"])
    config.graph_options.rewrite_options.min_graph_nodes = -1
    optimized = tf_optimizer.OptimizeGraph(config, meta)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(optimized, name="")
    tf.compat.v1.Session(graph=graph).close()


def _child(kind: str, out_dir: str | None) -> dict:
    """In a fresh process: time one trace, one TensorFlow-only freeze of ResNet50 (``floor``)
    or the freeze followed by grappler and a session import (``floor+load``)."""
    import tensorflow as tf
    import neuroncli
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )
    model, x = _resnet50()
    example = tf.constant(x)
    if kind in ("floor", "floor+load"):
        started, cpu = time.perf_counter(), _cpu()
        concrete = tf.function(model).get_concrete_function(
            tf.TensorSpec(x.shape, tf.float32))
        frozen = convert_variables_to_constants_v2(concrete)
        graph_def = frozen.graph.as_graph_def()
        if kind == "floor+load":
            _optimize_and_load(tf, graph_def, [t.name for t in frozen.outputs])
        return {"seconds": time.perf_counter() - started, "cpu": _cpu() - cpu,
                "nodes": len(graph_def.node)}
    started, cpu = time.perf_counter(), _cpu()
    traced = neuroncli.trace(model, example)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    if out_dir:
        traced.save(out_dir)
    return {"seconds": seconds, "cpu": cpu, "neuron_ops": traced.report.counts.neuron_ops,
            "on_neuron_ratio": traced.on_neuron_ratio}


def _run_child(kind: str, out_dir: Path | None = None,
               flags: str | None = None) -> dict:
    env = dict(os.environ)
    env.pop("NEURON_CC_FLAGS", None)
    if flags:
        env["NEURON_CC_FLAGS"] = flags
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind]
    if out_dir is not None:
        command += ["--out", str(out_dir)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode:
        raise RuntimeError(f"bench child {kind} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- figures -------------------------------------------------------------------------------

def trace_vs_floor(rounds: int) -> list[dict]:
    """The trace against two floors, in wall and CPU seconds (medians of fresh processes):
    the freeze alone (the original goal, 1.5x), and the freeze plus what TensorFlow needs to
    optimize and load the result (goal 1.2x: what trace adds of its own, the XLA lowering
    check, execute-once, partitioning and fusing, may cost a fifth)."""
    runs: dict[str, list[dict]] = {"trace": [], "floor": [], "floor+load": []}
    for _ in range(rounds):
        for kind in runs:
            runs[kind].append(_run_child(kind))

    def median(kind: str, key: str) -> float:
        return float(np.median([r[key] for r in runs[kind]]))

    rows = []
    for floor, goal in (("floor", 1.5), ("floor+load", 1.2)):
        wall, cpu = median("trace", "seconds") / median(floor, "seconds"), \
            median("trace", "cpu") / median(floor, "cpu")
        what = "TF freeze" if floor == "floor" else "TF freeze + grappler + session import"
        rows.append(row(f"trace ResNet50 b1 vs {what} (fresh processes)", f"ratio <= {goal}",
                        f"{median('trace', 'seconds'):.2f} s vs {median(floor, 'seconds'):.2f} s"
                        f" wall; cpu {median('trace', 'cpu'):.2f} s vs "
                        f"{median(floor, 'cpu'):.2f} s = {cpu:.2f}x", wall, wall <= goal))
    return rows


def _seconds_per_call(model: Any, x: np.ndarray) -> float:
    started = time.perf_counter()
    model(x)
    return time.perf_counter() - started


def dynamic_batch(compiled: Path, rounds: int) -> dict:
    import neuroncli.runtime as rt
    runtimes = {cores: rt.NeuronRuntime("inf2.xlarge", visible_cores=visible, core_threads=1,
                                        environ={})
                for cores, visible in ((1, "0"), (2, "0-1"))}
    models = {cores: rt.load(compiled, runtime=runtime) for cores, runtime in runtimes.items()}
    assert [len(models[c].replicas) for c in (1, 2)] == [1, 2], {
        c: m.replicas for c, m in models.items()}
    x = np.random.default_rng(SEED).standard_normal((BATCH, 224, 224, 3)).astype(np.float32)
    times: dict[int, list[float]] = {1: [], 2: []}
    for model in models.values():
        model(x)  # first batch-16 call: shard pool and buffers
    for _ in range(rounds):
        for cores, model in models.items():
            times[cores].append(_seconds_per_call(model, x))
    spread = models[2].stats().core_calls
    for model in models.values():
        model.unload()
    one, two = (BATCH / float(np.median(times[c])) for c in (1, 2))
    ratio = two / one
    return row(f"dynamic batch {BATCH} (b1 trace) ResNet50, 2 cores vs 1", "ratio >= 1.6",
                f"{two:.2f}/s vs {one:.2f}/s (shards {spread[0]}+{spread[1]})", ratio,
                ratio >= 1.6)


def run(quick: bool = False) -> list[dict]:
    """Every figure, in order (see module doc).  ``quick``: fewer rounds."""
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        rows = trace_vs_floor(rounds=1 if quick else 3)
        compiled = Path(tmp) / "resnet50_dynamic"
        _run_child("trace", compiled, flags="--dynamic-batch-size")
        rows.append(dynamic_batch(compiled, rounds=2 if quick else 6))
        return rows



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--child", choices=("trace", "floor", "floor+load"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.out)))
        return 0
    return report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    sys.exit(main())
