"""Dynamic batch: client batches 1, 3 and 7 against a batch-2 compile give the original's
outputs; shards spread over the replicas; inputs must agree on the batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neuroncli.runtime as rt
from neuroncli.errors import UserError
from neuroncli.runtime.reference import ReferenceModel
from tests.test_runtime_support import compile_model

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def dense_dynamic(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_model(fixtures_dir / "keras_dense",
                         tmp_path_factory.mktemp("dyn") / "dense", batch_size=2,
                         compiler_args="--dynamic-batch-size")


@pytest.fixture(scope="module")
def conv_dynamic(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Path:
    # The environment spelling, as users set it.
    mp = pytest.MonkeyPatch()
    mp.setenv("NEURON_CC_FLAGS", "--dynamic-batch-size")
    try:
        return compile_model(fixtures_dir / "tf1_conv",
                             tmp_path_factory.mktemp("dyn") / "conv", batch_size=2)
    finally:
        mp.undo()


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_dense_batches_match_the_original(dense_dynamic: Path, fixtures_dir: Path,
                                          batch: int) -> None:
    x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)
    want = ReferenceModel(fixtures_dir / "keras_dense")({"features": x})["output_0"]
    with rt.load(dense_dynamic, runtime=rt.NeuronRuntime("inf2.xlarge", environ={})) as model:
        got = model(features=x)["output_0"]
        assert got.shape == (batch, 8)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        executions = sum(model.stats().core_calls.values())
        assert executions == -(-batch // 2)


def test_shards_spread_over_the_replicas(dense_dynamic: Path) -> None:
    with rt.load(dense_dynamic, runtime=rt.NeuronRuntime("inf1.xlarge", environ={})) as model:
        model(features=np.ones((7, 16), np.float32))
        assert model.stats().core_calls == {0: 1, 1: 1, 2: 1, 3: 1}
        assert model(features=np.ones((0, 16), np.float32))["output_0"].shape == (0, 8)


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_two_input_model_batches_match_the_original(conv_dynamic: Path, fixtures_dir: Path,
                                                    batch: int) -> None:
    rng = np.random.default_rng(batch)
    feed = {"image": rng.standard_normal((batch, 8, 8, 3)).astype(np.float32),
            "bias_map": rng.standard_normal((batch, 8, 8, 4)).astype(np.float32)}
    want = ReferenceModel(fixtures_dir / "tf1_conv")(feed)
    with rt.load(conv_dynamic, runtime=rt.NeuronRuntime("inf2.xlarge", environ={})) as model:
        got = model(feed)
    for key in ("probs", "mean"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_inputs_disagreeing_on_the_batch_are_a_clear_error(conv_dynamic: Path) -> None:
    with rt.load(conv_dynamic, runtime=rt.NeuronRuntime("inf2.xlarge", environ={})) as model:
        with pytest.raises(UserError, match="disagree on the batch size"):
            model(image=np.zeros((3, 8, 8, 3), np.float32),
                  bias_map=np.zeros((2, 8, 8, 4), np.float32))
        ok = model(image=np.zeros((3, 8, 8, 3), np.float32),
                   bias_map=np.zeros((3, 8, 8, 4), np.float32))
        assert ok["probs"].shape == (3, 8, 8, 4)
