"""Benchmark ``neuron-compile`` against the floor: TensorFlow import + load + freeze.

Each measurement is a fresh process, as a user or CI pays it:

* floor: ``python -c`` that imports TensorFlow, loads the SavedModel and freezes its serving
  signature with ``convert_variables_to_constants_v2`` (what any compile must do first);
* compile: the ``neuron-compile`` console script on the same model;
* help: ``neuron --help`` and ``neuron-compile --help``.

Goals (issue #2): compile within 1.5x of the floor; each ``--help`` under 0.3 s.
Run ``python bench/bench_compile.py [--model resnet50] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from table import print_table, row  # noqa: E402
BIN = Path(sys.executable).parent

FLOOR = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
loaded = tf.saved_model.load(sys.argv[1])
frozen = convert_variables_to_constants_v2(loaded.signatures["serving_default"])
frozen.graph.as_graph_def()
"""


def _time(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def _row(figure: str, goal: str, measured: float, limit: float, unit: str = "s",
         ratio: float | None = None) -> dict:
    """A row whose goal is ``ratio <= limit`` when a ratio is given, else ``measured <= limit``."""
    value = ratio if ratio is not None else measured
    return row(figure, goal, f"{measured:.2f} {unit}", ratio, value <= limit)


def run(model: str = "resnet50", repeat: int = 2) -> list[dict]:
    from tests import zoo
    model_dir = zoo.build(model, ROOT / "build" / "zoo")
    out = Path(tempfile.mkdtemp(prefix="bench-compile-"))
    try:
        floor = _time([sys.executable, "-c", FLOOR, str(model_dir)], repeat)
        compile_s = _time([str(BIN / "neuron-compile"), str(model_dir), str(out / "c"),
                           "--force", "-q"], repeat)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rows = [
        {"figure": f"floor: import TF + load + freeze ({model})", "goal": "-",
         "measured": f"{floor:.2f} s", "ratio": "", "passed": True},
        _row(f"neuron-compile {model}", "<= 1.5x floor", compile_s, 1.5,
             ratio=compile_s / floor),
    ]
    for argv in (["neuron", "--help"], ["neuron-compile", "--help"]):
        seconds = _time([str(BIN / argv[0]), *argv[1:]], 5)
        rows.append(_row(" ".join(argv), "< 0.3 s", seconds, 0.3))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print_table(run(args.model, args.repeat))
