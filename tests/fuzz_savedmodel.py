"""Fuzz the protobuf-only commands with mutated ``saved_model.pb`` files.

``tf-neuron-auto-multicore``, ``neuron-place`` and ``neuron-inspect`` must meet any file with
exit code 0 or 1, one ``error: ...`` line on failure, no traceback, no hang over 10 s and no
memory blow-up over 1 GiB.  This runs cases through a small pool of long-lived worker processes
(:mod:`tests.fuzz_worker`: the commands' real code in process, a few ms a case instead of the
0.3 s of a subprocess), each under ``RLIMIT_AS`` = its baseline + 1 GiB; the parent's watchdog
kills a worker stuck on a case and records the case as a hang, and a worker that dies is
recorded as a crash.  Mutations: :mod:`tests.fuzz_mutations`; seed models (the fixtures, raw
and compiled): :mod:`tests.fuzz_seeds`.

Usage (from the repository root)::

    python -m tests.fuzz_savedmodel --cases 100000      # make fuzz (exit 1 on any failure)
    python -m tests.fuzz_savedmodel --case N            # reproduce case N, in this process
    python -m tests.fuzz_savedmodel --case N --seed S   # ... of another seed
    python -m tests.fuzz_savedmodel --start 50000 --cases 1000   # a slice of a run

Case ``N`` is a function of ``(seed, N)`` and the seed models, which are themselves a function
of the source tree (the summary names them).  Every failure names the seed, the case, the
mutation and the command, and writes the offending model to
``build/fuzz-failures/seed<S>-case<N>/model`` (with ``failure.txt``): the command line it
prints runs the real console script on that file.  The run ends with a summary: cases,
per-mutation, per-command and per-exit-code counts, failures, cases/s, the slowest cases and
the workers' peak resident memory.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 20240601
DEFAULT_FAILURES = ROOT / "build" / "fuzz-failures"
DEFAULT_SEEDS = ROOT / "build" / "fuzz-seeds"


@dataclass(frozen=True)
class FuzzOptions:
    """One fuzz run.

    seed / start / cases: cases ``start .. start+cases-1`` of ``seed``.
    workers: worker processes (the machine has 2 CPUs).
    timeout: seconds one case may take before its worker is killed (a hang).
    memory_mb: address space a worker may grow by before allocations fail.
    failures_dir: where offending models are written.  seeds_dir: the seed cache.
    inject: harness self-test hooks, ``{"hang"|"die"|"memory": [case indices]}``.
    """

    seed: int = DEFAULT_SEED
    start: int = 0
    cases: int = 2000
    workers: int = 2
    timeout: float = 10.0
    memory_mb: int = 1024
    failures_dir: str = str(DEFAULT_FAILURES)
    seeds_dir: str = str(DEFAULT_SEEDS)
    inject: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A case that broke the rules, with everything needed to reproduce it."""

    seed: int
    index: int
    seed_model: str
    mutation: str
    detail: str
    command_line: str
    reason: str
    model_dir: str
    output: str = ""

    def describe(self) -> str:
        lines = [f"case {self.index} (seed {self.seed}): {self.mutation} of {self.seed_model}: "
                 f"{self.detail[:300]}",
                 f"  command:   {self.command_line}",
                 f"  reason:    {self.reason}",
                 f"  reproduce: python -m tests.fuzz_savedmodel --seed {self.seed} "
                 f"--case {self.index}   (model in {self.model_dir})"]
        lines += [f"  | {line}" for line in self.output.strip().splitlines()[-12:]]
        return "\n".join(lines)


@dataclass
class FuzzResult:
    """What a run saw: counts per mutation, command and exit code, failures, speed, memory."""

    options: FuzzOptions
    cases: int = 0
    mutations: collections.Counter = field(default_factory=collections.Counter)
    commands: collections.Counter = field(default_factory=collections.Counter)
    exit_codes: collections.Counter = field(default_factory=collections.Counter)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_kb: dict[int, int] = field(default_factory=dict)
    baseline_kb: int = 0
    growth: tuple[int, int, str] = (0, -1, "")  # the largest (kB, case, mutation)
    restarts: int = 0
    seeds_key: str = ""
    slowest: list[tuple[float, int, str]] = field(default_factory=list)  # the 5 slowest

    def summary(self) -> str:
        o = self.options
        rate = self.cases / self.seconds if self.seconds else 0.0

        def counts(counter: collections.Counter) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=str))

        slow = ", ".join(f"{i} {m} {t:.2f} s" for t, i, m in self.slowest) or "-"
        rss = ", ".join(f"worker {k} {v >> 10} MiB" for k, v in sorted(self.peak_rss_kb.items()))
        return "\n".join([
            f"fuzz: seed {o.seed}, cases {o.start}..{o.start + o.cases - 1}, {o.workers} "
            f"workers, {o.timeout:g} s timeout, {o.memory_mb} MiB memory limit, seed models "
            f"{self.seeds_key}",
            f"cases:      {self.cases}",
            f"mutations:  {counts(self.mutations)}",
            f"commands:   {counts(self.commands)}",
            f"exit codes: {counts(self.exit_codes)}",
            f"failures:   {len(self.failures)}",
            f"speed:      {rate:.1f} cases/s ({self.seconds:.1f} s)",
            f"slowest:    {slow}",
            f"peak RSS:   {rss or '-'} (baseline {self.baseline_kb >> 10} MiB); largest "
            f"growth in one command {self.growth[0] >> 10} MiB (case {self.growth[1]} "
            f"{self.growth[2]}); {self.restarts} worker restart(s)"])


class _Worker:
    """A worker process, its channel, and the case it is on."""

    def __init__(self, ident: int, options: FuzzOptions, seeds: Path) -> None:
        self.ident = ident
        self.scratch = Path(tempfile.mkdtemp(prefix=f"neuroncli-fuzz-{ident}-"))
        config = {"seed": options.seed, "scratch": str(self.scratch), "inject": options.inject,
                  "seeds": str(seeds), "memory_mb": options.memory_mb}
        self.log = open(self.scratch.parent / f"{self.scratch.name}.log", "w+b")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_COLOR="1", COLUMNS="120")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz_savedmodel", "--worker", json.dumps(config)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.buffer = b""
        self.index: int | None = None
        self.deadline = 0.0
        self.ready: dict | None = None

    def send(self, index: int, timeout: float) -> None:
        self.index, self.deadline = index, time.monotonic() + timeout
        self.proc.stdin.write(f"{index}\n".encode())
        self.proc.stdin.flush()

    def lines(self) -> list[dict] | None:
        """Complete JSON lines read now, or None at end of file (the worker died)."""
        data = os.read(self.proc.stdout.fileno(), 1 << 16)
        if not data:
            return None
        self.buffer += data
        *done, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in done]

    def log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self, kill: bool = False) -> None:
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        os.unlink(self.log.name)
        shutil.rmtree(self.scratch, ignore_errors=True)


def _record_failure(result: FuzzResult, seeds: dict, index: int, reason: str,
                    output: str = "") -> None:
    from tests.fuzz_mutations import generate
    o = result.options
    case = generate(o.seed, index, seeds)
    where = Path(o.failures_dir) / f"seed{o.seed}-case{index}" / "model"
    shutil.rmtree(where.parent, ignore_errors=True)
    from tests.fuzz_worker import argv_of, prepare_scratch
    prepare_scratch(where.parent)
    (where / "saved_model.pb").write_bytes(case.data)
    command = " ".join([case.command, *argv_of(case, where, where.parent / "out")])
    failure = Failure(o.seed, index, case.seed_model, case.mutation, case.detail, command,
                      reason, str(where), output)
    (where.parent / "failure.txt").write_text(failure.describe() + "\n")
    result.failures.append(failure)


def _handle(result: FuzzResult, seeds: dict, worker: _Worker, doc: dict) -> None:
    result.cases += 1
    result.mutations[doc.get("mutation", "?")] += 1
    result.commands[doc.get("command", "?")] += 1
    result.exit_codes[doc.get("exit", "-")] += 1
    result.peak_rss_kb[worker.ident] = max(result.peak_rss_kb.get(worker.ident, 0),
                                           doc.get("rss_kb", 0))
    result.growth = max(result.growth, (doc.get("growth_kb", 0), doc["index"],
                                        doc.get("mutation", "?")))
    result.slowest = sorted(result.slowest + [(doc.get("seconds", 0.0), doc["index"],
                                                doc.get("mutation", "?"))], reverse=True)[:5]
    if doc.get("failure"):
        _record_failure(result, seeds, doc["index"], doc["failure"],
                        doc.get("traceback") or doc.get("stderr", ""))
    worker.index = None


def _spawn(ident: int, options: FuzzOptions, result: FuzzResult, seeds: Path) -> _Worker:
    worker = _Worker(ident, options, seeds)
    deadline = time.monotonic() + 120
    while worker.ready is None:
        with selectors.DefaultSelector() as sel:
            sel.register(worker.proc.stdout, selectors.EVENT_READ)
            if not sel.select(max(0.0, deadline - time.monotonic())):
                worker.stop(kill=True)
                raise RuntimeError("a fuzz worker did not start within 120 s")
        docs = worker.lines()
        if docs is None:
            tail = worker.log_tail()
            worker.stop()
            raise RuntimeError(f"a fuzz worker died while starting:\n{tail}")
        worker.ready = docs[0] if docs else None
    result.baseline_kb = max(result.baseline_kb, worker.ready["rss_kb"])
    return worker


def _lost(result: FuzzResult, seeds: dict, worker: _Worker, reason: str) -> None:
    """The worker's case hung or killed it: count and record it; the worker is replaced."""
    from tests.fuzz_mutations import generate
    case = generate(result.options.seed, worker.index, seeds)
    result.cases += 1
    result.mutations[case.mutation] += 1
    result.commands[case.command] += 1
    result.exit_codes[reason.split(":")[0]] += 1
    _record_failure(result, seeds, worker.index, reason, worker.log_tail())


def _poll(sel: selectors.BaseSelector, busy: list[_Worker], result: FuzzResult,
          seeds: dict) -> dict[_Worker, str]:
    """Wait for results until the earliest deadline; the workers to replace, and why ("" for
    a worker that reported a fatal case itself)."""
    replace: dict[_Worker, str] = {}
    wait = min(w.deadline for w in busy) - time.monotonic()
    for key, _ in sel.select(max(0.0, wait)):
        worker = key.data
        docs = worker.lines()
        if docs is None:
            replace[worker] = f"crash: the worker died (exit {worker.proc.wait()})"
        for doc in docs or ():
            _handle(result, seeds, worker, doc)
            if doc.get("fatal"):
                replace[worker] = ""
    now = time.monotonic()
    for worker in busy:
        if worker.index is not None and now > worker.deadline and worker not in replace:
            replace[worker] = f"hang: no result after {result.options.timeout:g} s"
    return replace


def run_fuzz(options: FuzzOptions) -> FuzzResult:
    """Run the cases through the worker pool; never raises for a case that fails."""
    from tests.fuzz_seeds import read_seeds, seed_dir
    directory = seed_dir(options.seeds_dir)  # built once, here; every worker reads this one
    seeds = read_seeds(directory)
    result = FuzzResult(options, seeds_key=directory.name)
    todo = collections.deque(range(options.start, options.start + options.cases))
    started = time.perf_counter()
    workers: list[_Worker] = []
    sel = selectors.DefaultSelector()
    try:
        for ident in range(max(1, min(options.workers, options.cases))):
            workers.append(_spawn(ident, options, result, directory))
            sel.register(workers[-1].proc.stdout, selectors.EVENT_READ, workers[-1])
        while True:
            for worker in workers:
                if worker.index is None and todo:
                    worker.send(todo.popleft(), options.timeout)
            busy = [w for w in workers if w.index is not None]
            if not busy:
                break
            for worker, reason in _poll(sel, busy, result, seeds).items():
                if reason and worker.index is not None:
                    _lost(result, seeds, worker, reason)
                sel.unregister(worker.proc.stdout)
                worker.stop(kill=True)
                workers.remove(worker)
                if todo:
                    workers.append(_spawn(worker.ident, options, result, directory))
                    sel.register(workers[-1].proc.stdout, selectors.EVENT_READ, workers[-1])
                    result.restarts += 1
    finally:
        result.seconds = time.perf_counter() - started
        sel.close()
        for worker in workers:
            worker.stop(kill=True)
    return result


def reproduce(seed: int, index: int, options: FuzzOptions) -> int:
    """Run case ``index`` in this process (tracebacks visible), under the same memory limit
    and with an alarm at the timeout; 1 if it fails."""
    import signal

    from tests.fuzz_mutations import generate
    from tests.fuzz_seeds import load_seeds
    from tests.fuzz_worker import argv_of, judge, limit_memory, prepare_scratch, run_command

    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"hang: case {index} ran over {options.timeout:g} s")

    case = generate(seed, index, load_seeds(options.seeds_dir))
    where = Path(options.failures_dir) / f"seed{seed}-case{index}"
    shutil.rmtree(where, ignore_errors=True)
    model = prepare_scratch(where)
    (model / "saved_model.pb").write_bytes(case.data)
    argv = argv_of(case, model, where / "out")
    print(f"case {index} (seed {seed}): {case.mutation} of {case.seed_model}: "
          f"{case.detail[:500]}\n$ {' '.join([case.command, *argv])}")
    limit_memory(options.memory_mb)
    signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, options.timeout)
    started = time.perf_counter()
    code, stdout, stderr, crash = run_command(case.command, argv)
    seconds = time.perf_counter() - started
    signal.setitimer(signal.ITIMER_REAL, 0)
    reason = judge(case, code, stdout, stderr, crash, model, where / "out")
    print(f"exit {code!r} in {seconds:.3f} s; stdout {len(stdout)} chars; stderr:\n{stderr}"
          f"{crash or ''}\nverdict: {reason or 'ok'}")
    return 1 if reason or seconds > options.timeout else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz_savedmodel",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--failures-dir", default=str(DEFAULT_FAILURES))
    parser.add_argument("--seeds-dir", default=str(DEFAULT_SEEDS))
    parser.add_argument("--case", type=int, help="reproduce one case in this process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from tests.fuzz_worker import worker_main
        worker_main(json.loads(args.worker))
        return 0
    options = FuzzOptions(seed=args.seed, start=args.start, cases=args.cases,
                          workers=args.workers, timeout=args.timeout, memory_mb=args.memory_mb,
                          failures_dir=args.failures_dir, seeds_dir=args.seeds_dir)
    if args.case is not None:
        return reproduce(args.seed, args.case, options)
    result = run_fuzz(options)
    for failure in result.failures:
        print(failure.describe(), end="\n\n")
    print(result.summary())
    return 1 if result.failures or not result.cases else 0


if __name__ == "__main__":
    sys.exit(main())
