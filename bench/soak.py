"""Soak test of the simulated runtime: threads calling three models for minutes, then a table.

Usage::

    .venv/bin/python bench/soak.py [--minutes 10] [--threads 4] [--json]

1. Compile the fixtures ``keras_dense``, ``tf1_conv`` and ``strings_dense`` once into a
   temporary directory (for the shapes of their sample inputs) and load all three with ``neuroncli.load`` (one runtime, default
   instance).  Each model's first outputs on its fixture inputs (``fixtures/*.inputs.npz``)
   are the reference: a later call whose outputs differ (``rtol`` 1e-5, ``atol`` 1e-6;
   strings and integers exactly) counts as an error, as does any exception.
2. Warm up: every thread calls every model ``--warmup-calls`` times.  Then the resident memory
   (``VmRSS``, after a garbage collection) is read: the start figure.
3. Every thread calls the models in turn (thread *i* starts with model *i* mod 3) until the
   time is up.  The resident memory after the threads stopped is the end figure.
4. Print calls, errors and memory per model and in total; exit 1 if there was any error or
   memory grew by ``--max-growth`` percent (default 5) or more from start to end.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

MODELS = ("keras_dense", "tf1_conv", "strings_dense")
RTOL, ATOL = 1e-5, 1e-6


@dataclass
class SoakReport:
    """What a soak run did.

    seconds: the measured phase's length.  threads: caller threads.  calls / errors: per
    model and ``total``.  rss_start / rss_end: resident bytes after warm-up and at the end.
    growth_pct: their relative difference in percent.  first_errors: up to five distinct
    error messages.  passed: no error and growth under the limit.
    """

    seconds: float
    threads: int
    calls: dict[str, int]
    errors: dict[str, int]
    rss_start: int
    rss_end: int
    growth_pct: float
    max_growth_pct: float
    first_errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.errors["total"] == 0 and self.growth_pct < self.max_growth_pct


def resident_bytes() -> int:
    """This process's resident memory (``VmRSS`` in /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def same_outputs(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> str | None:
    """``None`` if ``got`` matches ``want``, else what differs."""
    if sorted(got) != sorted(want):
        return f"output keys {sorted(got)} instead of {sorted(want)}"
    for key in sorted(want):
        a, b = np.asarray(got[key]), np.asarray(want[key])
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{key}: {a.dtype}{a.shape} instead of {b.dtype}{b.shape}"
        if a.dtype.kind in "fc":
            if not np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True):
                return f"{key}: max difference {np.max(np.abs(a - b)):.3g}"
        elif not np.array_equal(a, b):
            return f"{key}: values differ"
    return None


def load_models(workdir: Path) -> dict[str, tuple[Any, dict, dict]]:
    """name -> (loaded model, inputs, reference outputs)."""
    import neuroncli
    from neuroncli.runtime.inputs import load_npz
    logging.getLogger("neuroncli").setLevel(logging.ERROR)  # compile notices are not results
    loaded = {}
    for name in MODELS:
        target = workdir / f"{name}_neuron"
        inputs = load_npz(ROOT / "fixtures" / f"{name}.inputs.npz")
        # compiled for the sample inputs' shapes (strings_dense's dense part needs a run)
        neuroncli.saved_model.compile(ROOT / "fixtures" / name, target, model_feed_dict=inputs)
        model = neuroncli.load(target)
        loaded[name] = (model, inputs, model(**inputs))
    return loaded


class _Tally:
    """Calls and errors per model, shared by the caller threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter = Counter()
        self.errors: Counter = Counter()
        self.messages: list[str] = []

    def add(self, name: str, problem: str | None) -> None:
        with self.lock:
            self.calls[name] += 1
            if problem is not None:
                self.errors[name] += 1
                message = f"{name}: {problem}"
                if len(self.messages) < 5 and message not in self.messages:
                    self.messages.append(message)


def _call(name: str, entry: tuple[Any, dict, dict]) -> str | None:
    model, inputs, reference = entry
    try:
        return same_outputs(model(**inputs), reference)
    except Exception as exc:  # every failure is counted, none stops the soak
        return f"{type(exc).__name__}: {exc}"


def soak(minutes: float, threads: int = 4, warmup_calls: int = 20,
         max_growth_pct: float = 5.0) -> SoakReport:
    """Run the soak (steps 1-3 of the module docstring) and return its report."""
    with tempfile.TemporaryDirectory(prefix="neuroncli-soak-") as workdir:
        models = load_models(Path(workdir))
        names = list(models)
        tally = _Tally()
        warmed = threading.Barrier(threads + 1)
        go = threading.Barrier(threads + 1)
        deadline = [0.0]

        def caller(index: int) -> None:
            for _ in range(warmup_calls):
                for name in names:
                    _call(name, models[name])
            warmed.wait()
            go.wait()
            turn = index
            while time.monotonic() < deadline[0]:
                name = names[turn % len(names)]
                tally.add(name, _call(name, models[name]))
                turn += 1

        workers = [threading.Thread(target=caller, args=(i,), daemon=True)
                   for i in range(threads)]
        for worker in workers:
            worker.start()
        warmed.wait()
        gc.collect()
        rss_start = resident_bytes()
        started = time.monotonic()
        deadline[0] = started + minutes * 60
        go.wait()
        for worker in workers:
            worker.join()
        seconds = time.monotonic() - started
        gc.collect()
        rss_end = resident_bytes()
        for model, _, _ in models.values():
            model.unload()
    calls = {name: tally.calls[name] for name in names}
    errors = {name: tally.errors[name] for name in names}
    calls["total"], errors["total"] = sum(calls.values()), sum(errors.values())
    growth = 100.0 * (rss_end - rss_start) / rss_start
    return SoakReport(seconds, threads, calls, errors, rss_start, rss_end, round(growth, 3),
                      max_growth_pct, tally.messages)


def render(report: SoakReport) -> str:
    mib = 1 << 20
    lines = [f"soak: {report.seconds:.1f} s, {report.threads} threads, "
             f"{len(MODELS)} models",
             f"{'model':<15} {'calls':>10} {'calls/s':>9} {'errors':>7}"]
    for name in (*MODELS, "total"):
        rate = report.calls[name] / report.seconds if report.seconds else 0.0
        lines.append(f"{name:<15} {report.calls[name]:>10} {rate:>9.1f} "
                     f"{report.errors[name]:>7}")
    lines.append(f"resident memory: {report.rss_start / mib:.1f} MiB after warm-up, "
                 f"{report.rss_end / mib:.1f} MiB at the end, growth {report.growth_pct:+.2f}% "
                 f"(limit {report.max_growth_pct:g}%)")
    lines.extend(f"error: {message}" for message in report.first_errors)
    lines.append("PASSED" if report.passed else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--threads", type=int, default=4, help="caller threads")
    parser.add_argument("--warmup-calls", type=int, default=20,
                        help="calls per thread and model before the start figure")
    parser.add_argument("--max-growth", type=float, default=5.0,
                        help="fail at this resident-memory growth, in percent")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.threads < 1 or args.warmup_calls < 0:
        parser.error("--minutes must be positive, --threads at least 1, --warmup-calls >= 0")
    report = soak(args.minutes, args.threads, args.warmup_calls, args.max_growth)
    if args.json:
        print(json.dumps({**asdict(report), "passed": report.passed}, indent=2,
                         sort_keys=True))
    else:
        print(render(report))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
