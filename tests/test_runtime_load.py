"""``neuroncli.runtime.load`` on a small compiled model: calls, placement, memory, faults."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import neuroncli.runtime as rt
from neuroncli.errors import UserError
from neuroncli.runtime.reference import ReferenceModel
from tests.test_runtime_support import compile_model, corrupt_checksum, set_int_attrs

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def dense(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_model(fixtures_dir / "keras_dense",
                         tmp_path_factory.mktemp("dense") / "compiled", batch_size=2)


@pytest.fixture(scope="module")
def reference(fixtures_dir: Path) -> ReferenceModel:
    with ReferenceModel(fixtures_dir / "keras_dense") as model:
        yield model


@pytest.fixture(scope="module")
def features(fixtures_dir: Path) -> np.ndarray:
    with np.load(fixtures_dir / "keras_dense.inputs.npz") as data:
        return data["features"]


def runtime(instance: str = "inf1.xlarge", **options: object) -> rt.NeuronRuntime:
    return rt.NeuronRuntime(instance, environ={}, **options)


def test_call_forms_match_the_original(dense: Path, reference: ReferenceModel,
                                       features: np.ndarray) -> None:
    import tensorflow as tf
    want = reference({"features": features})["output_0"]
    with rt.load(dense, runtime=runtime()) as model:
        assert len(model.programs) >= 1
        for got in (model(features=features), model(features), model({"features": features}),
                    model(features=tf.constant(features)),
                    model(features=features.astype(np.float64))):
            assert set(got) == {"output_0"} and isinstance(got["output_0"], np.ndarray)
            np.testing.assert_allclose(got["output_0"], want, rtol=1e-5, atol=1e-6)


def test_signature_cores_stats_and_unload(dense: Path, features: np.ndarray) -> None:
    model = rt.load(dense, runtime=runtime("inf2.xlarge"))
    assert model.signature.key == "serving_default"
    assert list(model.signature.inputs) == ["features"]
    assert model.signature.inputs["features"].shape == (None, 16)
    assert model.cores == (0, 1) and model.replicas == ((0,), (1,))
    model(features=features)
    stats = model.stats()
    assert stats.calls == 1 and sum(stats.core_calls.values()) == 1
    assert set(stats.device_bytes) == {0, 1} and all(v > 0 for v in stats.device_bytes.values())
    assert all(c.bytes_loaded > 0 for c in model.runtime.core_stats())
    model.unload()
    assert all(c.bytes_loaded == 0 for c in model.runtime.core_stats())
    with pytest.raises(UserError, match="unloaded"):
        model(features=features)


def test_round_robin_runs_eight_calls_twice_on_each_of_four_cores(
        dense: Path, features: np.ndarray) -> None:
    with rt.load(dense, runtime=runtime("inf1.xlarge")) as model:
        assert len(model.replicas) == 4
        for _ in range(8):
            model(features=features)
        assert model.stats().core_calls == {0: 2, 1: 2, 2: 2, 3: 2}
        assert [c.calls for c in model.runtime.core_stats()] == [2, 2, 2, 2]


def test_visible_cores_1_3_run_the_default_replicas_there_only(
        dense: Path, features: np.ndarray) -> None:
    sim = rt.NeuronRuntime("inf1.xlarge", environ={"NEURON_RT_VISIBLE_CORES": "1,3"})
    assert [c.physical for c in sim.cores] == [1, 3]
    with rt.load(dense, runtime=sim) as model:
        for _ in range(4):
            model(features=features)
        assert model.replicas == ((0,), (1,))
        assert {c.physical: c.calls for c in sim.core_stats()} == {1: 2, 3: 2}


def test_wrong_shape_and_inputs_are_clear_errors_and_leave_it_usable(
        dense: Path, features: np.ndarray) -> None:
    with rt.load(dense, runtime=runtime()) as model:
        # A Dense stack keeps rows independent: compiled at batch 2, batch 1 runs (padded).
        assert model(features=features[:1])["output_0"].shape == (1, 8)
        with pytest.raises(UserError, match=r"signature expects \(\?, 16\)"):
            model(features=np.zeros((2, 15), np.float32))
        with pytest.raises(UserError, match="missing"):
            model(other=features)
        with pytest.raises(UserError, match="float32 but got"):
            model(features=np.array([["a"] * 16] * 2))
        assert model(features=features)["output_0"].shape == (2, 8)


def test_memory_overflow_is_clear_and_leaves_the_runtime_usable(
        dense: Path, features: np.ndarray) -> None:
    probe = rt.load(dense, runtime=runtime(), warmup=False)
    need = probe.stats().device_bytes[0]
    probe.unload()
    sim = runtime("inf1.xlarge", core_memory_bytes=need + need // 2)
    first = rt.load(dense, runtime=sim, nc_count=2)
    with pytest.raises(UserError) as err:
        rt.load(dense, runtime=sim, start_nc=1, nc_count=2)
    text = str(err.value)
    assert "NeuronCore 1" in text and f"{need} bytes" in text and f"{need // 2} bytes" in text
    assert [c.bytes_loaded for c in sim.core_stats()] == [need, need, 0, 0]
    second = rt.load(dense, runtime=sim, start_nc=2, nc_count=2)  # fits elsewhere
    assert second(features=features)["output_0"].shape == (2, 8)
    first.unload()
    third = rt.load(dense, runtime=sim, start_nc=0, nc_count=2)
    assert third.cores == (0, 1)
    third.unload()
    second.unload()


def test_placement_attributes_and_overrides(dense: Path, tmp_path: Path) -> None:
    sim = runtime("inf1.xlarge")
    auto = set_int_attrs(dense, tmp_path / "auto3", _automatic_multicore=3)
    with rt.load(auto, runtime=sim) as model:
        assert model.replicas == ((0,), (1,), (2,))
    with rt.load(auto, runtime=sim, start_nc=3, nc_count=1) as model:
        assert model.replicas == ((3,),)
    tagged = set_int_attrs(dense, tmp_path / "tagged", _neuroncli_start_nc=2,
                           _neuroncli_nc_count=2)
    with rt.load(tagged, runtime=sim) as model:
        assert model.replicas == ((2,), (3,))
    for count, message in ((0, "is below 1"), (5, "exceeds the 4 visible")):
        bad = set_int_attrs(dense, tmp_path / f"auto{count}", _automatic_multicore=count)
        with pytest.raises(UserError, match=message):
            rt.load(bad, runtime=sim)
    assert all(c.bytes_loaded == 0 for c in sim.core_stats())


@pytest.mark.parametrize("start_nc, nc_count, multicore, replicas", [
    (1, 2, False, ((1,), (2,))), (None, None, True, ((0,), (1,), (2,), (3,))),
    (3, -1, False, ((3,),)),
])
def test_models_placed_by_neuron_place_load_where_they_were_pinned(
        dense: Path, tmp_path: Path, start_nc: int | None, nc_count: int | None,
        multicore: bool, replicas: tuple) -> None:
    from neuroncli.rewrite import PlacementRequest, place_saved_model
    placed = tmp_path / "placed"
    place_saved_model(str(dense), str(placed),
                      PlacementRequest.from_options(start_nc, nc_count, multicore))
    with rt.load(placed, runtime=runtime("inf1.xlarge")) as model:
        assert model.replicas == replicas


def test_set_neuron_cores_moves_a_loaded_model(dense: Path, features: np.ndarray) -> None:
    sim = runtime("inf1.xlarge")
    with rt.load(dense, runtime=sim, nc_count=1, start_nc=0) as model:
        model(features=features)
        rt.set_neuron_cores(model, start_nc=2, nc_count=2)
        assert model.replicas == ((2,), (3,))
        loaded = [c.bytes_loaded > 0 for c in sim.core_stats()]
        assert loaded == [False, False, True, True]
        for _ in range(4):
            model(features=features)
        assert model.stats().core_calls == {0: 1, 2: 2, 3: 2}
        with pytest.raises(UserError, match="needs visible cores 3-4"):
            rt.set_neuron_cores(model, start_nc=3, nc_count=2)
        assert model.replicas == ((2,), (3,))  # a failed move changes nothing


def test_tampered_executable_fails_loudly(dense: Path, tmp_path: Path) -> None:
    broken = corrupt_checksum(dense, tmp_path / "broken")
    with pytest.raises(UserError, match="does not match its checksum"):
        rt.load(broken, runtime=runtime())


def test_pipeline_program_spans_consecutive_cores(fixtures_dir: Path, tmp_path: Path,
                                                  features: np.ndarray) -> None:
    piped = compile_model(fixtures_dir / "keras_dense", tmp_path / "piped",
                          compiler_args="--neuroncore-pipeline-cores 2")
    sim = runtime("inf1.xlarge")
    with rt.load(piped, runtime=sim) as model:
        assert model.replicas == ((0, 1),)
        model(features=features)
        assert model.stats().core_calls == {0: 1, 1: 1}
        with pytest.raises(UserError, match="cannot be replicated"):
            model.set_neuron_cores(0, 4)
    with pytest.raises(UserError, match="pipeline cores but this process sees 1"):
        rt.load(piped, runtime=runtime("inf1.xlarge", visible_cores="2"))


def test_timeout_waiting_for_a_busy_core(dense: Path, features: np.ndarray) -> None:
    sim = runtime("inf2.xlarge", timeout=0.3)
    with rt.load(dense, runtime=sim) as model:
        assert sim.pool.acquire((0, 1), time.monotonic() + 1)  # another inference holds both
        try:
            with pytest.raises(rt.InferenceTimeout, match="timed out after 0.3 s waiting"):
                model(features=features)
        finally:
            sim.pool.release_group((0, 1))
        assert model(features=features)["output_0"].shape == (2, 8)


def test_failed_cores_move_work_and_all_failed_is_clear(dense: Path,
                                                        features: np.ndarray) -> None:
    sim = runtime("inf2.xlarge")
    with rt.load(dense, runtime=sim) as model:
        rt.fail_core(0, runtime=sim)
        for _ in range(3):
            model(features=features)
        assert model.stats().core_calls == {1: 3}
        rt.fail_core(1, runtime=sim)
        with pytest.raises(rt.CoreUnavailable, match="no healthy NeuronCore left"):
            model(features=features)
        rt.restore_core(0, runtime=sim)
        rt.restore_core(1, runtime=sim)
        model(features=features)
