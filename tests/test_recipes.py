"""The CI story: gates that fail a build and write nothing, the Makefile recipe in
``examples/neuron.mk``, and shell completion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import neuroncli
from neuroncli.errors import UserError
from tests.conftest import BIN, FIXTURES, ROOT, script

DENSE = FIXTURES / "keras_dense"


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name)


def test_low_on_neuron_ratio_exits_3_prints_the_report_and_writes_nothing(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run([script("neuron-compile"), str(DENSE), str(out),
                             "--min-on-neuron-ratio", "0.99"], capture_output=True, text=True)
    assert result.returncode == 3
    assert "OnNeuronRatio: 0.7308" in result.stdout  # the report, to see what stayed on CPU
    assert result.stderr.strip().splitlines() == [
        "error: OnNeuronRatio 0.7308 is below --min-on-neuron-ratio 0.99: nothing was written"]
    assert not out.exists() and _leftovers(tmp_path) == []
    passed = subprocess.run([script("neuron-compile"), str(DENSE), str(out), "--json",
                             "--min-on-neuron-ratio", "0.5"], capture_output=True, text=True)
    assert passed.returncode == 0 and json.loads(passed.stdout)["OnNeuronRatio"] > 0.5
    assert (out / "saved_model.pb").is_file()


def test_a_gate_that_raises_leaves_no_output(tmp_path: Path) -> None:
    seen: list[str] = []

    def refuse(report: object, directory: str) -> None:
        seen.append(sorted(os.listdir(directory)))  # the complete model, not yet in place
        raise UserError("refused")

    options = neuroncli.saved_model.make_options()
    with pytest.raises(UserError, match="refused"):
        neuroncli.saved_model.compile_with_report(DENSE, tmp_path / "out", options,
                                                  accept=refuse)
    assert seen == [["saved_model.pb"]]
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-f", str(ROOT / "examples" / "neuron.mk"), f"BIN={BIN}",
                           f"MODEL={DENSE}", f"INPUTS={FIXTURES / 'keras_dense.inputs.npz'}",
                           f"OUT={tmp_path / 'ci'}", *args], capture_output=True, text=True,
                          cwd=ROOT)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_makefile_recipe_builds_verifies_replicates_and_inspects(tmp_path: Path) -> None:
    first = _make(tmp_path, "CORES=2")
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "ci" / "verify.json").read_text())["passed"] is True
    inspect = json.loads((tmp_path / "ci" / "inspect.json").read_text())
    (op,) = inspect["meta_graphs"][0]["neuron_ops"]
    assert op["replicas"] == "2" and op["inputs"][0]["shape"] == [2, 16]
    again = _make(tmp_path, "CORES=2")
    assert again.returncode == 0 and "neuron-compile" not in again.stdout  # up to date


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_makefile_recipe_fails_the_build_on_a_low_ratio(tmp_path: Path) -> None:
    failed = _make(tmp_path, "MIN_RATIO=0.99")
    assert failed.returncode != 0
    assert "is below --min-on-neuron-ratio 0.99: nothing was written" in failed.stderr
    assert not (tmp_path / "ci" / "compiled").exists()


def test_shell_completion_for_every_command() -> None:
    env = {**os.environ, "_NEURON_COMPLETE": "bash_source"}
    source = subprocess.run([script("neuron")], env=env, capture_output=True, text=True)
    assert source.returncode == 0 and "_neuron_completion()" in source.stdout
    env = {**os.environ, "_NEURON_COMPLETE": "bash_complete", "COMP_WORDS": "neuron comp",
           "COMP_CWORD": "1"}
    words = subprocess.run([script("neuron")], env=env, capture_output=True, text=True)
    assert "plain,compile" in words.stdout.splitlines()
    env = {**os.environ, "_TF_NEURON_AUTO_MULTICORE_COMPLETE": "bash_complete",
           "COMP_WORDS": "tf-neuron-auto-multicore x --num", "COMP_CWORD": "2"}
    words = subprocess.run([script("tf-neuron-auto-multicore")], env=env, capture_output=True,
                           text=True)
    assert "plain,--num_cores" in words.stdout.splitlines()
