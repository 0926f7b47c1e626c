"""Benchmark of the NeuronOp op library (``neuroncli.tfop``) against its goals.

Usage::

    .venv/bin/python bench/bench_oplib.py [--quick] [--json]

``run()`` returns the rows:

1. **latency**: ResNet50 (tests/zoo.py, random weights) compiled at batch 1, loaded with
   ``tf.saved_model.load`` and called through ``.signatures["serving_default"]``, against the
   original SavedModel through ``tf.saved_model.load`` too, side by side in one process (calls
   interleaved so the machine's other load hits both alike; medians compared).  The process
   imports TensorFlow as a user script does (no neuroncli thread-pool settings), and compiles
   in a child process so that the compiler's memory and threads are not in it.
   Goal: ratio <= 1.10.
2. **first call**: the first call of each (TensorFlow builds the function, the kernel imports
   its program and opens its session); reported, no goal.
3. **build**: compiling the op library from scratch into an empty cache (a child process with
   its own ``XDG_CACHE_HOME``); reported, no goal (about 8 s on an idle machine).
4. **cached load**: a fresh process that has imported TensorFlow finds the cached library and
   loads it (``neuroncli.tfop.load_library``); goal <= 1 s.

The machine's other load shows up in the numbers (every row carries the load averages).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from timing import interleaved  # noqa: E402
from table import report, row  # noqa: E402

ZOO = Path(os.environ.get("NEURONCLI_ZOO", ROOT / "build" / "zoo"))
BIN = Path(sys.executable).parent

# `import neuroncli` after TensorFlow finds (or builds) the library and loads it: timed whole.
_LOAD_CHILD = """
import json, sys, time
import tensorflow as tf
started = time.perf_counter()
import neuroncli
seconds = time.perf_counter() - started
library = neuroncli.tfop.loaded()
print(json.dumps({"seconds": seconds, "built": library.build.built,
                  "build_seconds": library.build.seconds}))
"""


def _child(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", _LOAD_CHILD], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env})
    if done.returncode:
        raise RuntimeError(f"op library child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_and_cached_load() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-oplib-") as cache:
        fresh = _child({"XDG_CACHE_HOME": cache})
        cached = _child({"XDG_CACHE_HOME": cache})
    assert fresh["built"] and not cached["built"]
    return [row("op library build (g++, empty cache)", "reported",
                f"{fresh['build_seconds']:.1f} s", None, True),
            row("op library cached load (import neuroncli after tensorflow)", "<= 1 s",
                f"{cached['seconds'] * 1e3:.0f} ms", None, cached["seconds"] <= 1.0)]


@dataclass(frozen=True)
class Loaded:
    """One model through tf.saved_model.load: its call, load time and first-call time."""

    call: Callable[[], Any]
    load_seconds: float
    first_seconds: float


def _load_model(path: Path, x: Any) -> Loaded:
    import tensorflow as tf
    started = time.perf_counter()
    serving = tf.saved_model.load(str(path)).signatures["serving_default"]
    loaded = time.perf_counter() - started
    (key,) = serving.structured_input_signature[1]
    started = time.perf_counter()
    serving(**{key: x})
    return Loaded(lambda: serving(**{key: x}), loaded, time.perf_counter() - started)


def latency(original: Path, compiled: Path, rounds: int) -> list[dict]:
    import tensorflow as tf  # run() imported it first, as a user script does
    import neuroncli.tfop
    neuroncli.tfop.load_library(tf)  # `import neuroncli` already did; raises if it could not
    x = tf.constant(np.random.default_rng(0).standard_normal((1, 224, 224, 3), np.float32))
    models = {"original": _load_model(original, x), "compiled": _load_model(compiled, x)}
    for model in models.values():
        model.call()
    medians = interleaved({k: m.call for k, m in models.items()}, rounds)
    ratio = medians["compiled"] / medians["original"]
    first = {k: m.first_seconds for k, m in models.items()}
    load = {k: m.load_seconds for k, m in models.items()}
    return [row("ResNet50 b1, tf.saved_model.load(compiled) vs original", "ratio <= 1.10",
                f"{medians['compiled'] * 1e3:.1f} ms vs {medians['original'] * 1e3:.1f} ms",
                ratio, ratio <= 1.10),
            row("ResNet50 first call (warm-up), compiled vs original", "reported",
                f"{first['compiled']:.2f} s vs {first['original']:.2f} s", None, True),
            row("ResNet50 tf.saved_model.load, compiled vs original", "reported",
                f"{load['compiled']:.2f} s vs {load['original']:.2f} s", None, True)]


def _compile(original: Path, out: Path) -> Path:
    target = out / "resnet50_neuron"
    done = subprocess.run([str(BIN / "neuron-compile"), str(original), str(target)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"neuron-compile failed:\n{done.stderr[-2000:]}")
    return target


def run(quick: bool = False) -> list[dict]:
    # TensorFlow first, as a user script imports it: neuroncli's own thread-pool settings
    # (lazy_tf) then do not apply, and both models run as TensorFlow alone would run them.
    import tensorflow as tf
    assert tf.__version__
    from tests import zoo
    resnet = zoo.build("resnet50", ZOO)
    rows = build_and_cached_load()
    with tempfile.TemporaryDirectory(prefix="bench-oplib-") as out:
        compiled = _compile(resnet, Path(out))
        rows = latency(resnet, compiled, 10 if quick else 40) + rows
    return rows


summary = run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    return report(run(args.quick), args.json)


if __name__ == "__main__":
    sys.exit(main())
