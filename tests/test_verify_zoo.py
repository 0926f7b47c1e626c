"""Keras ResNet50, MobileNetV2 and a small transformer (random weights, tests/zoo.py):
the compiled model verifies against the original at rtol 1e-5 on the simulated runtime, and
a tampered compile does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroncli.runtime.verify import verify
from tests import zoo
from tests.test_runtime_cli import run
from tests.test_runtime_support import compile_model, tamper_weight

pytestmark = pytest.mark.timeout(600)
MODELS = ["resnet50", "mobilenetv2", "transformer"]


@pytest.fixture(scope="module", params=MODELS)
def pair(request: pytest.FixtureRequest, zoo_root: Path,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    name = request.param
    original = zoo.build(name, zoo_root)
    target = compile_model(original, tmp_path_factory.mktemp(name) / "compiled", batch_size=1)
    return name, original, target


def test_compiled_zoo_model_verifies(pair: tuple[str, Path, Path], tmp_path: Path) -> None:
    name, original, compiled = pair
    report = verify(original, compiled, runs=2, rtol=1e-5)
    assert report.passed, report.outputs
    assert all(o.mismatches == 0 for o in report.outputs)
    tampered = tamper_weight(compiled, tmp_path / "tampered")
    assert not verify(original, tampered, runs=1).passed


def test_cli_exit_codes_on_the_transformer(zoo_root: Path, tmp_path: Path) -> None:
    original = zoo.build("transformer", zoo_root)
    compiled = compile_model(original, tmp_path / "compiled", batch_size=1)
    ok = run("neuron-verify", str(original), str(compiled), "--runs", "2")
    assert ok.returncode == 0, ok.stderr
    tampered = tamper_weight(compiled, tmp_path / "tampered")
    bad = run("neuron-verify", str(original), str(tampered))
    assert bad.returncode == 1 and "FAIL" in bad.stdout
    other = run("neuron-verify", str(zoo.build("mobilenetv2", zoo_root)), str(compiled))
    assert other.returncode == 1 and "signatures do not correspond" in other.stderr
