"""Every command that writes a model writes the same bytes for the same input and flags.

Each case runs twice in fresh processes with *different* ``PYTHONHASHSEED`` values, so that
an iteration over a set or a dict keyed by strings, an ``id()`` or a random temporary name
leaking into the output would show up as a difference.  Whole output trees are compared
(names and bytes of every file), ``variables/`` included.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import neuroncli
from tests.conftest import FIXTURES, script


def _tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _twice(command: list[str], tmp_path: Path, flags: str = "") -> list[tuple[Path, str]]:
    """Run ``command`` (``{out}`` replaced by an output path) with two hash seeds,
    concurrently; returns each run's output path and stdout."""
    outs = (tmp_path / "seed1", tmp_path / "seed2")
    procs = []
    for seed, out in zip(("1", "4242"), outs):
        env = {**os.environ, "PYTHONHASHSEED": seed, "NEURON_CC_FLAGS": flags}
        args = [a.replace("{out}", str(out)) for a in command]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    stdouts = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        stdouts.append(out)
    return list(zip(outs, stdouts))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("compiled") / "tf1_conv"
    neuroncli.saved_model.compile(FIXTURES / "tf1_conv", target)
    return target


@pytest.mark.parametrize("fixture,flags", [
    ("keras_dense", ""),
    ("tf1_conv", "--dynamic-batch-size --neuroncore-pipeline-cores 2"),
    ("strings_dense", "--extract-weights inf2.xlarge"),
])
def test_neuron_compile_is_byte_identical(fixture: str, flags: str, tmp_path: Path) -> None:
    (a, _), (b, _) = _twice([script("neuron-compile"), str(FIXTURES / fixture), "{out}", "-q",
                             "--inputs", str(FIXTURES / f"{fixture}.inputs.npz")],
                            tmp_path, flags)
    assert _tree(a) == _tree(b)
    assert "saved_model.pb" in _tree(a)


@pytest.mark.parametrize("command", [
    ["tf-neuron-auto-multicore", "{model}", "--num_cores", "3", "--new_model_dir", "{out}"],
    ["neuron-place", "{model}", "--new_model_dir", "{out}", "--start-nc", "1", "--nc-count",
     "2"],
])
def test_rewrites_are_byte_identical(command: list[str], compiled: Path, tmp_path: Path) -> None:
    args = [script(command[0])] + [a.replace("{model}", str(compiled)) for a in command[1:]]
    (a, _), (b, _) = _twice(args, tmp_path)
    assert _tree(a) == _tree(b)


def test_json_reports_are_identical_but_for_paths_and_timing(tmp_path: Path) -> None:
    runs = _twice([script("neuron-compile"), str(FIXTURES / "keras_dense"), "{out}", "--json"],
                  tmp_path)
    docs = []
    for _, stdout in runs:
        doc = json.loads(stdout)
        doc.pop("seconds")
        doc.pop("new_model_dir")
        docs.append(doc)
    assert docs[0] == docs[1] and docs[0]["segments"]
