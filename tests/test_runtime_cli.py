"""``neuron-run`` as a user runs it: a subprocess, JSON or tables on stdout, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_runtime_support import compile_model

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.timeout(300)


def command(name: str) -> list[str]:
    """The console script once installed, else its module (``python -m``)."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    module = {"neuron-run": "neuroncli.cli.run", "neuron-verify": "neuroncli.cli.verify"}[name]
    return [sys.executable, "-m", module]


def run(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("NEURON_RT_", "NEURON_SIM_"))}
    full_env.update(env or {})
    return subprocess.run([*command(name), *args], capture_output=True, text=True,
                          env=full_env, timeout=240)


@pytest.fixture(scope="module")
def dense(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_model(fixtures_dir / "keras_dense",
                         tmp_path_factory.mktemp("cli") / "compiled", batch_size=2)


def test_json_round_robin_on_four_cores(dense: Path) -> None:
    out = run("neuron-run", str(dense), "--random", "--repeat", "8",
              "--instance-type", "inf1.xlarge", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["core_calls"] == {"0": 2, "1": 2, "2": 2, "3": 2}
    assert doc["outputs"] == {"output_0": {"shape": [2, 8], "dtype": "float32"}}
    assert set(doc["latency_ms"]) >= {"p50", "p90", "p99"}
    assert doc["throughput"] > 0 and doc["calls"] == 8
    assert out.stderr.strip().splitlines()[-1].startswith("PASSED |")


def test_visible_cores_env_and_threads(dense: Path) -> None:
    out = run("neuron-run", str(dense), "--repeat", "4", "--threads", "2", "--json",
              env={"NEURON_RT_VISIBLE_CORES": "1,3", "NEURON_SIM_INSTANCE_TYPE": "inf1.xlarge"})
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["visible_cores"] == [1, 3] and doc["instance_type"] == "inf1.xlarge"
    assert {c["physical"]: c["calls"] for c in doc["cores"]} == {1: 4, 3: 4}


def test_human_output_with_inputs_file(dense: Path, fixtures_dir: Path) -> None:
    out = run("neuron-run", str(dense), "--inputs", str(fixtures_dir / "keras_dense.inputs.npz"),
              "--repeat", "3")
    assert out.returncode == 0, out.stderr
    for word in ("output_0", "(2, 8)", "Latency: p50", "Throughput:", "busy %", "16.0 GiB"):
        assert word in out.stdout, out.stdout


@pytest.mark.parametrize("args, code, message", [
    (["--instance-type", "inf9.huge"], 1, "unknown instance type 'inf9.huge'"),
    (["--inputs", "x.npz", "--random"], 2, "exclude each other"),
    (["--inputs", "missing.npz"], 1, "missing.npz: no such file"),
])
def test_errors_are_one_line(dense: Path, args: list[str], code: int, message: str) -> None:
    out = run("neuron-run", str(dense), *args)
    assert out.returncode == code
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr


def test_wrong_shape_inputs_are_one_line(dense: Path, tmp_path: Path) -> None:
    import numpy as np
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.zeros((3, 15), np.float32))  # any batch runs (dynamic batch)
    out = run("neuron-run", str(dense), "--inputs", str(bad))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "'features'" in out.stderr and "(3, 15)" in out.stderr
