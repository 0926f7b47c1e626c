"""One fuzz case, in process: write the mutant, run the command's console-script entry, judge.

:func:`run_case` is what a worker of :mod:`tests.fuzz_savedmodel` does per case.  The command
runs exactly as its console script would (``neuroncli.cli.<module>.main()`` with ``sys.argv``
set), its stdout/stderr captured and its ``SystemExit`` caught; the house rules are then
checked: exit code 0 or 1, no traceback, a failure is exactly one ``error: ...`` line, the
input model is untouched, a failed rewrite leaves nothing behind, a successful one wrote a
model whose every NeuronOp (as protobuf sees them) carries the requested attributes, and
``--json`` prints strict JSON.

:func:`worker_main` is the worker process: it answers case indices read from stdin with one
JSON line each, under an address-space limit of ``baseline + memory_mb``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import resource
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from tests.fuzz_mutations import Case, generate
from tests.fuzz_seeds import read_seeds

COMMANDS = {"neuron-inspect": "neuroncli.cli.inspect",
            "tf-neuron-auto-multicore": "neuroncli.cli.auto_multicore",
            "neuron-place": "neuroncli.cli.place"}
_VARIABLES = b"fuzz variables index"
_TEXT_LIMIT = 4000


def prepare_scratch(scratch: Path) -> Path:
    """``scratch/model`` with a small ``variables/`` and ``assets/`` for the rewrites to copy."""
    model = scratch / "model"
    (model / "variables").mkdir(parents=True, exist_ok=True)
    (model / "variables" / "variables.index").write_bytes(_VARIABLES)
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "vocab.txt").write_bytes(b"a\nb\n")
    return model


def argv_of(case: Case, model: Path, out: Path) -> list[str]:
    return [str(model), *(str(out) if a == "{out}" else a for a in case.args)]


def run_command(command: str, argv: list[str]) -> tuple[Any, str, str, str | None]:
    """``(exit code, stdout, stderr, traceback of an uncaught exception or None)``."""
    module = importlib.import_module(COMMANDS[command])
    out, err = io.StringIO(), io.StringIO()
    saved, sys.argv = sys.argv, [command, *argv]
    code, crash = None, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            module.main()
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    except BaseException:  # noqa: BLE001 - that is the finding
        crash = traceback.format_exc()
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue(), crash


def _expected_attrs(case: Case) -> dict[str, int]:
    from neuroncli.format.neuron_op import ATTR_AUTO_MULTICORE, ATTR_NC_COUNT, ATTR_START_NC
    from neuroncli.rewrite import PlacementRequest
    args = list(case.args)

    def value(*names: str) -> int | None:
        for name in names:
            if name in args:
                return int(args[args.index(name) + 1])
        return None

    if case.command == "tf-neuron-auto-multicore":
        return {ATTR_AUTO_MULTICORE: value("--num_cores")}
    placement = PlacementRequest.from_options(value("--start-nc"), value("--nc-count"),
                                       "--multicore" in args)
    return {ATTR_START_NC: placement.start_nc, ATTR_NC_COUNT: placement.nc_count}


def _neuron_ops(saved_model: Any) -> list[tuple[str, Any]]:
    from neuroncli.format.neuron_op import iter_neuron_op_nodes
    return [op for meta in saved_model.meta_graphs for op in iter_neuron_op_nodes(meta)]


def _check_output(case: Case, model: Path, out: Path) -> str | None:
    """A successful rewrite: variables copied, and every NeuronOp that protobuf (hence
    TensorFlow) sees in the output carries the requested attributes, as many as the input had.
    An input protobuf itself refuses (too deep, say) is checked with the view instead."""
    from google.protobuf.message import DecodeError
    from neuroncli import proto
    from neuroncli.format.view import open_view
    if (out / "variables" / "variables.index").read_bytes() != _VARIABLES:
        return "variables/ not copied"
    want = _expected_attrs(case)
    try:
        ops_in = len(_neuron_ops(proto.SavedModel.FromString(case.data)))
    except (DecodeError, RuntimeError, ValueError):
        ops_in = None
    if ops_in is not None:
        try:
            ops = _neuron_ops(proto.SavedModel.FromString((out / "saved_model.pb").read_bytes()))
        except (DecodeError, RuntimeError, ValueError) as exc:
            return f"the output does not parse though the input does ({exc})"
    else:
        before, after = open_view(str(model)), open_view(str(out))
        ops_in = sum(len(m.neuron_ops) for m in before.meta_graphs)
        ops = [(op.where, op.node) for m in after.meta_graphs for op in m.neuron_ops]
        before.close()
        after.close()
    if len(ops) != ops_in:
        return f"output has {len(ops)} NeuronOps, the input {ops_in}"
    for where, node in ops:
        for key, value in want.items():
            if key not in node.attr or node.attr[key].i != value:
                return f"output NeuronOp {node.name!r} ({where}): {key} is not {value}"
    return None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def judge(case: Case, code: Any, stdout: str, stderr: str, crash: str | None, model: Path,
          out: Path) -> str | None:
    """Why the run broke the house rules, or None."""
    if crash is not None:
        last = crash.strip().splitlines()[-1]
        return f"{'memory' if 'MemoryError' in last else 'uncaught exception'}: {last}"
    if code not in (0, 1):
        return f"exit code {code!r}"
    if "Traceback" in stderr or "Traceback" in stdout:
        return "a traceback was printed"
    lines = stderr.strip("\n").split("\n")
    if code == 1 and (len(lines) != 1 or not lines[0].startswith("error: ")):
        return f"exit 1 without exactly one 'error: ...' line on stderr ({len(lines)} lines)"
    if code == 1 and "please report it with the model" in lines[0]:
        return f"unexpected exception, shown as one line: {lines[0]}"  # a bug, not bad input
    if (model / "saved_model.pb").read_bytes() != case.data:
        return "the input saved_model.pb was modified"
    if sorted(os.listdir(model)) != ["assets", "saved_model.pb", "variables"]:
        return f"the input directory changed: {sorted(os.listdir(model))}"
    leftovers = sorted(set(os.listdir(model.parent)) - {"model", "out"})
    if leftovers:
        return f"left behind {leftovers}"
    if "{out}" in case.args:
        if code == 1 and os.path.lexists(out):
            return "a failed rewrite left its output directory"
        if code == 0 and (problem := _check_output(case, model, out)):
            return problem
    if code == 0 and "--json" in case.args:
        try:  # strict JSON, as jq reads it: no NaN or Infinity
            json.loads(stdout, parse_constant=_refuse_constant)
        except ValueError as exc:
            return f"--json printed no strict JSON document ({exc})"
    return None


def _reset_peak_rss() -> None:
    """Restart the kernel's resident-set high-water mark (VmHWM), so it measures one case."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def run_case(case: Case, scratch: Path) -> dict:
    """Run one case in ``scratch`` (holding ``model/``); the result as a JSON-able dict.

    ``growth_kb`` is how far the command's resident set rose above where it started (the
    checks that follow are not counted)."""
    model, out = scratch / "model", scratch / "out"
    (model / "saved_model.pb").write_bytes(case.data)
    _reset_peak_rss()
    rss = vm_kb("VmRSS")
    started = time.perf_counter()
    code, stdout, stderr, crash = run_command(case.command, argv_of(case, model, out))
    seconds = time.perf_counter() - started
    peak = vm_kb("VmHWM")
    try:
        reason = judge(case, code, stdout, stderr, crash, model, out)
    except Exception:  # noqa: BLE001 - the oracle tripped on the output: a finding too
        reason = f"checking the result failed: {traceback.format_exc().strip().splitlines()[-1]}"
    shutil.rmtree(out, ignore_errors=True)
    return {"index": case.index, "mutation": case.mutation, "command": case.command,
            "exit": code if isinstance(code, int) else repr(code), "seconds": seconds,
            "peak_kb": peak, "growth_kb": peak - rss,
            "failure": reason, "stderr": stderr[-_TEXT_LIMIT:],
            "traceback": (crash or "")[-_TEXT_LIMIT:],
            "fatal": bool(reason and reason.startswith("memory"))}


def vm_kb(field: str = "VmSize") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def limit_memory(memory_mb: int) -> int:
    """Cap the address space at its current size + ``memory_mb``; returns the baseline kB."""
    baseline = vm_kb()
    limit = (baseline << 10) + (memory_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return baseline


def warm_up(seeds: dict[str, bytes], scratch: Path) -> None:
    """Import everything the commands import lazily, before the baseline is measured."""
    for command in COMMANDS:
        args = {"neuron-inspect": ("--json",), "neuron-place": ("--multicore", "--new_model_dir",
                                                                "{out}")}.get(
            command, ("--num_cores", "2", "--new_model_dir", "{out}"))
        run_case(Case(0, -1, "neuron-keras_dense", "identity", "warm-up", command, args,
                      seeds["neuron-keras_dense"]), scratch)
    run_case(Case(0, -1, "neuron-keras_dense", "identity", "warm-up", "neuron-inspect", (),
                  seeds["neuron-keras_dense"]), scratch)


def _inject(index: int, inject: dict) -> None:
    """Test hooks of the harness itself: make case ``index`` hang, die or blow up."""
    if index in inject.get("hang", ()):
        time.sleep(3600)
    if index in inject.get("die", ()):
        os._exit(70)
    if index in inject.get("memory", ()):
        bytearray(4 << 30)


def worker_main(config: dict) -> None:
    """Answer case indices on stdin with JSON lines on the original stdout."""
    channel = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # stray output must not corrupt the channel
    scratch = Path(config["scratch"])
    seeds = read_seeds(config["seeds"])
    prepare_scratch(scratch)
    warm_up(seeds, scratch)
    limit_memory(config["memory_mb"])

    def send(doc: dict) -> None:
        os.write(channel, (json.dumps(doc) + "\n").encode())

    send({"ready": True, "pid": os.getpid(), "rss_kb": vm_kb("VmRSS")})
    for line in sys.stdin:
        index = int(line)
        try:
            _inject(index, config.get("inject", {}))
            result = run_case(generate(config["seed"], index, seeds), scratch)
        except MemoryError:
            result = {"index": index, "failure": "memory: MemoryError outside the command",
                      "fatal": True}
        if result.get("growth_kb", 0) > config["memory_mb"] << 10 and not result["failure"]:
            result["failure"] = f"memory: the command grew by {result['growth_kb'] >> 10} MiB"
        result["rss_kb"] = vm_kb("VmHWM")
        send(result)
        if result.get("fatal"):
            break
