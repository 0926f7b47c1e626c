"""Conventions a newcomer tries first: ``-h``/``--help`` and ``--version`` on every console
script, missing output parents created (atomically, and removed again when nothing is
written), and a ``neuron-inspect`` replica line that tells the truth."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT, script

SCRIPTS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([script(argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_and_version_on_every_console_script(name: str) -> None:
    for flag in ("-h", "--help"):
        done = _run(name, flag)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"Usage: {name} ") and "--version" in done.stdout
    done = _run(name, "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"{name}, version {version('neuroncli')}")


def test_subcommands_take_dash_h_too() -> None:
    done = _run("neuron", "compile", "-h")
    assert done.returncode == 0 and done.stdout.startswith("Usage: neuron compile ")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "missing" / "parents" / "compiled"
    done = _run("neuron-compile", str(FIXTURES / "tf1_conv"), str(out), "-q")
    assert done.returncode == 0, done.stderr
    return out


def test_compile_creates_missing_parents(compiled: Path) -> None:
    assert (compiled / "saved_model.pb").is_file()
    again = _run("neuron-compile", str(FIXTURES / "tf1_conv"), str(compiled), "-q")
    assert again.returncode == 1 and "already exists: remove it or pass --force" in again.stderr


def test_rewrites_create_missing_parents(compiled: Path, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "x4"
    done = _run("tf-neuron-auto-multicore", str(compiled), "--num_cores", "4",
                "--new_model_dir", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert (out / "saved_model.pb").is_file()


def test_nothing_written_leaves_no_new_parents(compiled: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "dirs" / "gated"
    done = _run("neuron-compile", str(FIXTURES / "keras_dense"), str(out),
                "--min-on-neuron-ratio", "0.99", "-q")
    assert done.returncode == 3, done.stderr
    assert list(tmp_path.iterdir()) == []
    bad = _run("tf-neuron-auto-multicore", str(compiled), "--num_cores", "4",
               "--new_model_dir", str(compiled / "inside" / "x"))
    assert bad.returncode == 1 and "inside the input directory" in bad.stderr
    assert not (compiled / "inside").exists()


def _replicas(model: Path) -> list[str]:
    done = _run("neuron-inspect", str(model), "--json")
    assert done.returncode == 0, done.stderr
    return [op["replicas"] for meta in json.loads(done.stdout)["meta_graphs"]
            for op in meta["neuron_ops"]]


def test_inspect_replica_line_tells_the_truth(compiled: Path, tmp_path: Path) -> None:
    assert _replicas(compiled) == ["default (up to 4)"]
    cases = {
        "placed2": ("neuron-place", "--start-nc", "0", "--nc-count", "2"),
        "placed1": ("neuron-place", "--start-nc", "1", "--nc-count", "-1"),
        "multicore": ("neuron-place", "--multicore"),
        "auto3": ("tf-neuron-auto-multicore", "--num_cores", "3"),
    }
    for name, (command, *flags) in cases.items():
        done = _run(command, str(compiled), "--new_model_dir", str(tmp_path / name), *flags)
        assert done.returncode == 0, done.stderr
    assert _replicas(tmp_path / "placed2") == ["2 (placed)"]
    assert _replicas(tmp_path / "placed1") == ["1 (placed)"]
    assert _replicas(tmp_path / "multicore") == ["one per visible core (placed)"]
    assert _replicas(tmp_path / "auto3") == ["3"]


def test_inspect_replica_line_of_a_pipeline_model(tmp_path: Path) -> None:
    out = tmp_path / "piped"
    done = subprocess.run([script("neuron-compile"), str(FIXTURES / "tf1_conv"), str(out), "-q"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NEURON_CC_FLAGS": "--neuroncore-pipeline-cores=2"})
    assert done.returncode == 0, done.stderr
    assert _replicas(out) == ["1 (pipeline program over 2 cores: not replicated)"]
