"""``make bench``: run every benchmark and print one table (figure, goal, measured, ratio,
pass/short) with the machine's CPU count.  Each ``bench/bench_*.py`` exposes ``summary()`` (or
``run()``) returning rows ``{"figure", "goal", "measured", "ratio", "passed"}``.

``python bench/run_all.py [--only compile,partition]``.  Exit code 0 even when a goal is short:
benchmarks inform, they do not gate (these machines are noisy).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table import print_table  # noqa: E402

BENCHES = ["partition", "compile", "runtime", "rewrite", "trace"]


def _available(name: str) -> bool:
    return (ROOT / "bench" / f"bench_{name}.py").exists()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated subset of " + ",".join(BENCHES))
    args = parser.parse_args()
    chosen = [b for b in BENCHES if _available(b) and (not args.only or b in args.only.split(","))]
    rows: list[dict] = []
    started = time.perf_counter()
    for name in chosen:
        print(f"running bench_{name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench_{name}")
            produce = getattr(module, "summary", None) or module.run
            rows.extend({"bench": name, **row} for row in produce())
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            rows.append({"bench": name, "figure": f"crashed: {type(exc).__name__}: {exc}"[:80],
                         "goal": "-", "measured": "-", "ratio": "", "passed": False})
    print(f"neuroncli benchmarks on {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()} ({time.perf_counter() - started:.0f} s)")
    print_table(rows, ("bench", "figure", "goal", "measured", "ratio", "passed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
