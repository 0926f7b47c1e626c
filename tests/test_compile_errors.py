"""Bad input to neuron-compile: one clear line, the documented exit code, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, script


def _copy_fixture(tmp_path: Path, name: str = "keras_dense") -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


def _run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "NEURON_CC_FLAGS"}
    full_env.update(env or {})
    return subprocess.run([script("neuron-compile"), *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def _setup(case: str, tmp_path: Path) -> tuple[list[str], dict, str, int]:
    """(args, env, expected text in the error line, exit code)."""
    out = str(tmp_path / "out")
    model = str(FIXTURES / "keras_dense")
    if case == "missing directory":
        return [str(tmp_path / "nope"), out], {}, "no such directory", 1
    if case == "no saved_model.pb":
        (tmp_path / "empty").mkdir()
        return [str(tmp_path / "empty"), out], {}, "no saved_model.pb", 1
    if case in ("truncated saved_model.pb", "random saved_model.pb"):
        copy = _copy_fixture(tmp_path)
        pb = copy / "saved_model.pb"
        data = pb.read_bytes()
        pb.write_bytes(data[: len(data) // 3] if case.startswith("truncated")
                       else bytes(range(256)) * 8)
        return [str(copy), out], {}, "not a valid SavedModel protobuf", 1
    if case == "unknown tag set":
        return [model, out, "--tag_set", "train,gpu"], {}, "no meta graph with tag set", 1
    if case == "unknown signature key":
        return [model, out, "--signature_def", "nope"], {}, "no signature 'nope'", 1
    if case == "output exists":
        (tmp_path / "out").mkdir()
        return [model, out], {}, "already exists: remove it or pass --force", 1
    if case == "output inside input":
        copy = _copy_fixture(tmp_path)
        return [str(copy), str(copy / "compiled")], {}, "inside the input directory", 1
    if case == "input-shape names no input":
        return ([model, out, "--input-shape", "nope=1,16"], {},
                "--input-shape names 'nope', which is not an input", 1)
    if case == "malformed NEURON_CC_FLAGS":
        return [model, out], {"NEURON_CC_FLAGS": "--workdir 'oops"}, "NEURON_CC_FLAGS is malformed", 1
    if case == "unknown NEURON_CC_FLAGS flag":
        return [model, out], {"NEURON_CC_FLAGS": "--fast"}, "unknown compiler flag '--fast'", 1
    if case == "batch size zero":
        return [model, out, "--batch-size", "0"], {}, "--batch-size", 2
    if case == "missing argument":
        return [model], {}, "Missing argument", 2
    raise AssertionError(case)


CASES = ["missing directory", "no saved_model.pb", "truncated saved_model.pb",
         "random saved_model.pb", "unknown tag set", "unknown signature key", "output exists",
         "output inside input", "input-shape names no input", "malformed NEURON_CC_FLAGS",
         "unknown NEURON_CC_FLAGS flag", "batch size zero", "missing argument"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_line(case: str, tmp_path: Path) -> None:
    args, env, expected, code = _setup(case, tmp_path)
    before = sorted(os.listdir(tmp_path))
    result = _run(args, env)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no temporaries


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    result = _run([str(tmp_path / "nope"), str(tmp_path / "out"), "-v"])
    assert result.returncode == 1 and "Traceback" in result.stderr
