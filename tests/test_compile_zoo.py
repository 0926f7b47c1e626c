"""neuron-compile on real Keras models (random weights), built on the fly by tests/zoo.py.

The rewrite must be exact: the compiled graph with every NeuronOp expanded back into its
subgraph computes what the original SavedModel computes (max relative error below 1e-5).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import neuroncli
from neuroncli.runtime.reference import run_savedmodel
from tests import zoo
from tests.numerics import assert_outputs_close, run_expanded

MODELS = ["resnet50", "mobilenetv2", "transformer"]
MIN_RATIO = {"resnet50": 0.95, "mobilenetv2": 0.95}


@pytest.fixture(scope="module", params=MODELS)
def compiled(request: pytest.FixtureRequest, zoo_root: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path, dict]:
    name = request.param
    original = zoo.build(name, zoo_root)
    target = tmp_path_factory.mktemp(name) / "compiled"
    counts = neuroncli.saved_model.compile(original, target, batch_size=2)
    return name, original, target, counts


def test_rewrite_is_numerically_exact(compiled: tuple) -> None:
    name, original, target, _ = compiled
    inputs = zoo.random_inputs(original, batch=2, seed=1)
    assert_outputs_close(run_savedmodel(original, inputs), run_expanded(str(target), inputs),
                         rtol=1e-5)


def test_on_neuron_ratio(compiled: tuple) -> None:
    name, _, _, counts = compiled
    assert counts["neuron_ops"] >= 1
    assert counts["OnNeuronRatio"] >= MIN_RATIO.get(name, 0.5), counts
