"""``make bench``: run every benchmark and print one table (figure, goal, measured, ratio,
pass/short) with the machine's CPU count.  Each ``bench/bench_*.py`` exposes ``summary()`` (or
``run()``) returning rows ``{"figure", "goal", "measured", "ratio", "passed"}``, and runs in a
process of its own.

``python bench/run_all.py [--only compile,partition]``.  Exit code 0 even when a goal is short:
benchmarks inform, they do not gate (these machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table import HEADERS, load_average, print_table  # noqa: E402

BENCHES = ["partition", "compile", "runtime", "rewrite", "trace", "oplib", "serving"]


def _available(name: str) -> bool:
    return (ROOT / "bench" / f"bench_{name}.py").exists()


_CHILD = """
import importlib, json, sys
sys.path[:0] = [{root!r}, {bench!r}]
module = importlib.import_module("bench_{name}")
produce = getattr(module, "summary", None) or module.run
print("\\n" + json.dumps(list(produce())))
"""


def _run_isolated(name: str) -> list[dict]:
    """Run one benchmark in its own process: TensorFlow's thread pools, caches and heap left
    by one benchmark then never slow the next (they did: the trace figure went from 1.3x alone
    to 2.3x after the other benchmarks in the same process).  A crash is a SHORT row."""
    code = _CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), name=name)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        sys.stderr.write(done.stdout)
        return [{"figure": f"crashed (exit {done.returncode}): see its output above",
                 "goal": "-", "measured": "-", "ratio": "", "passed": False,
                 "load": load_average()}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated subset of " + ",".join(BENCHES))
    args = parser.parse_args()
    chosen = [b for b in BENCHES if _available(b) and (not args.only or b in args.only.split(","))]
    rows: list[dict] = []
    started = time.perf_counter()
    for name in chosen:
        print(f"running bench_{name} ...", file=sys.stderr, flush=True)
        rows.extend({"bench": name, **row} for row in _run_isolated(name))
    print(f"neuroncli benchmarks on {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()} ({time.perf_counter() - started:.0f} s)")
    print_table(rows, ("bench", *HEADERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
