"""No traceback, ever: an exception no command expects becomes one line naming the stage.

A failure is injected into each pipeline stage of ``neuron-compile`` and into each other
command, with ``monkeypatch`` on the library function that stage calls; the command runs
in-process through its console-script entry (``main()``, the same code path the installed
script takes).  Each case checks the exact line, the exit code 1, and that nothing was
written next to the output.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

import neuroncli
from tests.conftest import FIXTURES

MODEL = FIXTURES / "keras_dense"
ADVICE = ("(-v shows the traceback; if this model should work, it is a bug: please report it "
          "with the model)")


@dataclass(frozen=True)
class Injection:
    """``target`` (``module:attribute``) is replaced by a function raising ``error()``;
    the command then must print ``error: <stage> stage failed: <type>: <message> ADVICE``."""

    command: str
    target: str
    stage: str
    args: Callable[[Path, Path], list[str]]  # (compiled model, output path) -> argv tail
    error: Callable[[], BaseException] = lambda: RuntimeError("injected failure")
    message: str = "RuntimeError: injected failure"


def _out_of_range() -> BaseException:
    from neuroncli.lazy_tf import import_tensorflow
    tf = import_tensorflow()
    return tf.errors.OutOfRangeError(
        None, None, "Graph execution error:\n\nNode 'bn/FusedBatchNormV3' (type: 'Identity', "
        "num of outputs: 1) does not have output 5")


def _compile(out: Path, *extra: str) -> list[str]:
    return [str(MODEL), str(out), *extra]


CASES = {
    "compile-load": Injection("compile", "neuroncli.compiler.pipeline:check_model_files",
                              "load", lambda c, o: _compile(o)),
    "compile-freeze": Injection("compile", "neuroncli.compiler.pipeline:freeze", "freeze",
                                lambda c, o: _compile(o)),
    "compile-shapes": Injection(
        "compile", "neuroncli.compiler.shapes:annotate", "shapes", lambda c, o: _compile(o),
        _out_of_range, "OutOfRangeError: Graph execution error: Node 'bn/FusedBatchNormV3' "
        "(type: 'Identity', num of outputs: 1) does not have output 5"),
    "compile-partition": Injection("compile", "neuroncli.compiler.pipeline:partition",
                                   "partition", lambda c, o: _compile(o)),
    "compile-backend": Injection("compile", "neuroncli.compiler.backend:compile_segment",
                                 "backend", lambda c, o: _compile(o),
                                 lambda: MemoryError(), "MemoryError: MemoryError"),
    "compile-write": Injection("compile", "neuroncli.compiler.output:write", "write",
                               lambda c, o: _compile(o),
                               lambda: OSError(28, "No space left on device"),
                               "OSError: [Errno 28] No space left on device"),
    "compile-verify-run": Injection("compile", "neuroncli.runtime.executor:Executor.run",
                                    "run", lambda c, o: _compile(o, "--verify")),
    "run-load": Injection("run", "neuroncli.runtime.host:HostSession", "load",
                          lambda c, o: [str(c), "--random"]),
    "run-run": Injection("run", "neuroncli.runtime.executor:Executor.run", "run",
                         lambda c, o: [str(c), "--random"]),
    "verify-load": Injection("verify", "neuroncli.runtime.model:_read", "load",
                             lambda c, o: [str(MODEL), str(c)]),
    "verify-run": Injection("verify", "neuroncli.runtime.reference:ReferenceModel.__call__",
                            "run", lambda c, o: [str(MODEL), str(c)]),
    "auto-multicore-load": Injection(
        "auto_multicore", "neuroncli.rewrite.rewriter:open_saved_model_view", "load",
        lambda c, o: [str(c), "--num_cores", "2", "--new_model_dir", str(o)]),
    "auto-multicore-write": Injection(
        "auto_multicore", "neuroncli.rewrite.rewriter:_write_chunks", "write",
        lambda c, o: [str(c), "--num_cores", "2", "--new_model_dir", str(o)]),
    "place-write": Injection("place", "neuroncli.rewrite.rewriter:_write_chunks", "write",
                             lambda c, o: [str(c), "--new_model_dir", str(o), "--start-nc", "1"]),
    "inspect-load": Injection("inspect", "neuroncli.inspection:open_saved_model_view", "load",
                              lambda c, o: [str(c)]),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("stage") / "compiled"
    neuroncli.saved_model.compile(MODEL, target)
    return target


def _patch(monkeypatch: pytest.MonkeyPatch, target: str, error: Callable) -> None:
    import importlib
    module_name, attribute = target.split(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error()

    monkeypatch.setattr(owner, name, fail)


def _main(monkeypatch: pytest.MonkeyPatch, command: str, argv: list[str]) -> int:
    """Run a console script's ``main()`` in-process; returns its exit code."""
    import importlib
    module = importlib.import_module(f"neuroncli.cli.{command}")
    monkeypatch.setattr(sys, "argv", [command, *argv])
    # A command ignores Ctrl-C once its outcome is decided; in this process that would outlive
    # it (and be inherited by every later test's subprocesses): put the handler back.
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exited:
            module.main()
    finally:
        signal.signal(signal.SIGINT, handler)
    return exited.value.code


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_unexpected_failure_is_one_line(case_id: str, compiled: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    case = CASES[case_id]
    out = tmp_path / "out"
    argv = case.args(compiled, out)
    _patch(monkeypatch, case.target, case.error)
    code = _main(monkeypatch, case.command, argv)
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {case.stage} stage failed: {case.message} {ADVICE}"]
    assert code == 1
    assert os.listdir(tmp_path) == []  # no output, no temporary sibling


def test_verbose_shows_the_traceback(compiled: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture) -> None:
    _patch(monkeypatch, "neuroncli.compiler.pipeline:partition",
           lambda: RuntimeError("injected failure"))
    code = _main(monkeypatch, "compile", _compile(tmp_path / "out", "-v"))
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0] == "Traceback (most recent call last):"
    assert err[-1] == (f"error: partition stage failed: RuntimeError: injected failure "
                       f"{ADVICE}")


def test_python_api_keeps_the_exception(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The library raises the original exception (marked with its stage), not a new type."""
    from neuroncli.errors import failed_stage
    _patch(monkeypatch, "neuroncli.compiler.pipeline:partition",
           lambda: KeyError("injected"))
    with pytest.raises(KeyError) as raised:
        neuroncli.saved_model.compile(MODEL, tmp_path / "out")
    assert failed_stage(raised.value) == "partition"
    assert os.listdir(tmp_path) == []


def test_unknown_stage_is_refused() -> None:
    from neuroncli.errors import stage
    with pytest.raises(ValueError):
        with stage("compile"):
            pass
