"""``neuron-verify`` / ``verify()`` on the committed fixtures: passes on honest compiles,
fails (exit 1) on tampered ones and on another model's compile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuroncli.errors import UserError
from neuroncli.runtime.inputs import load_npz
from neuroncli.runtime.verify import verify
from tests.test_runtime_cli import run
from tests.test_runtime_support import compile_model, corrupt_checksum, tamper_weight

pytestmark = pytest.mark.timeout(300)
FIXTURES = ["keras_dense", "tf1_conv", "strings_dense"]


@pytest.fixture(scope="module")
def compiled(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verify")
    return {name: compile_model(fixtures_dir / name, root / name, batch_size=2)
            for name in FIXTURES}


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_verifies_with_its_inputs_and_random_ones(
        name: str, fixtures_dir: Path, compiled: dict[str, Path]) -> None:
    given = verify(fixtures_dir / name, compiled[name],
                   inputs=load_npz(fixtures_dir / f"{name}.inputs.npz"))
    assert given.passed, given.outputs
    assert given.inputs == "given" and given.runs == 1 and given.rtol == 1e-5
    randoms = verify(fixtures_dir / name, compiled[name], runs=2, batch=2, seed=3)
    assert randoms.passed and randoms.runs == 2, randoms.outputs


def test_cli_passes_and_prints_the_table(fixtures_dir: Path, compiled: dict[str, Path]) -> None:
    out = run("neuron-verify", str(fixtures_dir / "tf1_conv"), str(compiled["tf1_conv"]),
              "--inputs", str(fixtures_dir / "tf1_conv.inputs.npz"))
    assert out.returncode == 0, out.stderr
    for word in ("probs", "mean", "max abs error", "max rel error", "PASS"):
        assert word in out.stdout
    assert out.stderr.strip().splitlines()[-1].startswith("PASSED |")


def test_tampered_weight_fails_with_exit_1(fixtures_dir: Path, compiled: dict[str, Path],
                                           tmp_path: Path) -> None:
    tampered = tamper_weight(compiled["keras_dense"], tmp_path / "tampered")
    out = run("neuron-verify", str(fixtures_dir / "keras_dense"), str(tampered),
              "--random", "--runs", "2", "--json")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert doc["passed"] is False and doc["outputs"][0]["mismatches"] > 0
    assert "differ from the original" in out.stderr


def test_tampered_checksum_fails_with_exit_1(fixtures_dir: Path, compiled: dict[str, Path],
                                             tmp_path: Path) -> None:
    broken = corrupt_checksum(compiled["keras_dense"], tmp_path / "broken")
    out = run("neuron-verify", str(fixtures_dir / "keras_dense"), str(broken))
    assert out.returncode == 1
    assert "checksum" in out.stderr and "Traceback" not in out.stderr


def test_another_models_compile_is_a_clear_error(fixtures_dir: Path,
                                                 compiled: dict[str, Path]) -> None:
    out = run("neuron-verify", str(fixtures_dir / "keras_dense"), str(compiled["tf1_conv"]))
    assert out.returncode == 1
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "signatures do not correspond" in errors[0]


def test_nan_equals_nan_and_is_reported(fixtures_dir: Path, compiled: dict[str, Path]) -> None:
    image = np.ones((2, 8, 8, 3), np.float32)
    image[1] = np.nan
    report = verify(fixtures_dir / "tf1_conv", compiled["tf1_conv"],
                    inputs={"image": image, "bias_map": np.zeros((2, 8, 8, 4), np.float32)})
    nans = {o.key: o.nan_count for o in report.outputs}
    assert report.passed and nans == {"mean": 4, "probs": 256}
    assert all("NaN matched" in o.note for o in report.outputs)


def test_bad_arguments(fixtures_dir: Path, compiled: dict[str, Path]) -> None:
    with pytest.raises(UserError, match="runs must be at least 1"):
        verify(fixtures_dir / "keras_dense", compiled["keras_dense"], runs=0)
    out = run("neuron-verify", str(fixtures_dir / "keras_dense"),
              str(compiled["keras_dense"]), "--inputs", "x.npz", "--runs", "3")
    assert out.returncode == 2 and "--inputs excludes" in out.stderr
