"""Placement: AWS's documented examples with set_neuron_cores / set_multicore and the
contexts, neuron-place at load, and tf-neuron-auto-multicore on ResNet50 over 8 cores."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli.errors import UserError
from neuroncli.runtime import NeuronRuntime, set_default_runtime
from tests import zoo
from tests.conftest import FIXTURES, script


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("placement") / "dense_neuron"
    neuroncli.saved_model.compile(FIXTURES / "keras_dense", out)
    return out


@pytest.fixture
def runtime() -> NeuronRuntime:
    """A fresh inf2.24xlarge runtime seeing cores 0-3, as NEURON_RT_VISIBLE_CORES=0-3."""
    rt = NeuronRuntime("inf2.24xlarge", visible_cores="0-3")
    previous = set_default_runtime(rt)
    yield rt
    set_default_runtime(previous)


EXAMPLE = {"features": np.ones((1, 16), np.float32)}


def _cores_of_calls(model, calls: int) -> list[int]:
    """Which core each call ran on, from the per-core counters."""
    seen = []
    for _ in range(calls):
        before = dict(model.stats().core_calls)
        model(**EXAMPLE)
        after = model.stats().core_calls
        (core,) = [c for c in after if after[c] != before.get(c, 0)]
        seen.append(core)
    return seen


def test_single_load_set_neuron_cores(compiled: Path, runtime: NeuronRuntime) -> None:
    model = neuroncli.load(compiled)
    neuroncli.set_neuron_cores(model, start_nc=0, nc_count=1)
    assert _cores_of_calls(model, 3) == [0, 0, 0]


def test_multiple_core_replication_set_neuron_cores(compiled: Path, runtime) -> None:
    model = neuroncli.load(compiled)
    neuroncli.set_neuron_cores(model, start_nc=2, nc_count=2)
    assert _cores_of_calls(model, 3) == [2, 3, 2]


def test_multiple_model_load_set_neuron_cores(compiled: Path, runtime) -> None:
    model1, model2 = neuroncli.load(compiled), neuroncli.load(compiled)
    neuroncli.set_neuron_cores(model1, start_nc=2)
    neuroncli.set_neuron_cores(model2, start_nc=0)
    assert _cores_of_calls(model1, 2) == [2, 2]
    assert _cores_of_calls(model2, 2) == [0, 0]


def test_set_multicore(compiled: Path, runtime) -> None:
    model = neuroncli.load(compiled)
    neuroncli.set_multicore(model)
    assert _cores_of_calls(model, 5) == [0, 1, 2, 3, 0]


def test_contexts_mirror_the_docs(compiled: Path, runtime) -> None:
    with neuroncli.neuron_cores_context(start_nc=0, nc_count=1):
        single = neuroncli.load(compiled)
    with neuroncli.neuron_cores_context(start_nc=2, nc_count=2):
        replicated = neuroncli.load(compiled)
    with neuroncli.neuron_cores_context(start_nc=2):
        model1 = neuroncli.load(compiled)
    with neuroncli.neuron_cores_context(start_nc=0):
        model2 = neuroncli.load(compiled)
    with neuroncli.multicore_context():
        everywhere = neuroncli.load(compiled)
    # calls made outside the contexts keep the placement chosen at load
    assert _cores_of_calls(single, 3) == [0, 0, 0]
    assert _cores_of_calls(replicated, 3) == [2, 3, 2]
    assert _cores_of_calls(model1, 2) == [2, 2] and _cores_of_calls(model2, 2) == [0, 0]
    assert _cores_of_calls(everywhere, 4) == [0, 1, 2, 3]


def test_neuron_place_then_move(compiled: Path, runtime, tmp_path: Path) -> None:
    subprocess.run([script("neuron-place"), str(compiled), "--new_model_dir",
                    str(tmp_path / "p"), "--start-nc", "1", "--nc-count", "2"], check=True)
    model = neuroncli.load(tmp_path / "p")
    assert _cores_of_calls(model, 4) == [1, 2, 1, 2]
    assert set(model.stats().device_bytes) == {1, 2}
    used_before = runtime.pool.usage()
    neuroncli.set_neuron_cores(model, 2, 1)
    assert _cores_of_calls(model, 2) == [2, 2]
    used_after = runtime.pool.usage()
    assert used_after[1] == 0 < used_before[1]  # core 1's memory was freed
    assert set(model.stats().device_bytes) == {2}


def test_least_used_start_puts_two_models_on_different_cores(compiled: Path, runtime) -> None:
    a = neuroncli.load(compiled, start_nc=-1, nc_count=-1)
    b = neuroncli.load(compiled, start_nc=-1, nc_count=-1)
    assert a.cores != b.cores and len(a.cores) == len(b.cores) == 1


@pytest.mark.parametrize("start_nc, nc_count, text", [
    (0, 0, "nc_count must be -1"), (0, -2, "nc_count must be -1"),
    (-2, 1, "start_nc must be -1"), (3, 2, "visible"),
])
def test_invalid_placements_raise_value_error(compiled: Path, runtime, start_nc: int,
                                              nc_count: int, text: str) -> None:
    model = neuroncli.load(compiled)
    with pytest.raises(ValueError, match=text):
        neuroncli.set_neuron_cores(model, start_nc, nc_count)
    assert model(**EXAMPLE)["output_0"].shape == (1, 8)  # still usable where it was


def test_auto_multicore_api(compiled: Path, runtime) -> None:
    model = neuroncli.load(compiled, start_nc=0, nc_count=1)
    copy = neuroncli.auto_multicore(model, EXAMPLE, 3)
    assert copy.cores == (0, 1, 2)
    np.testing.assert_allclose(copy(**EXAMPLE)["output_0"], model(**EXAMPLE)["output_0"])
    for bad in (0, 65, 2.0, True):
        with pytest.raises(ValueError, match="num_cores must be an integer from 1 to 64"):
            neuroncli.auto_multicore(model, EXAMPLE, bad)


def _replica_tags(model_dir: Path) -> list[int]:
    from neuroncli.format import neuron_op
    from neuroncli.savedmodel import read_saved_model
    meta_graph = read_saved_model(str(model_dir)).saved_model.meta_graphs[0]
    return [node.attr[neuron_op.ATTR_AUTO_MULTICORE].i if
            neuron_op.ATTR_AUTO_MULTICORE in node.attr else None
            for _, node in neuron_op.iter_neuron_op_nodes(meta_graph)]


def test_auto_multicore_survives_save_and_reload(compiled: Path, runtime,
                                                 tmp_path: Path) -> None:
    model = neuroncli.load(compiled, start_nc=0, nc_count=1)
    copy = neuroncli.auto_multicore(model, EXAMPLE, 3)
    copy.save(tmp_path / "x3")
    assert _replica_tags(tmp_path / "x3") == [3]
    assert _replica_tags(compiled) == [None]  # the input is untouched
    model.unload()
    copy.unload()
    reloaded = neuroncli.load(tmp_path / "x3")
    assert reloaded.cores == (0, 1, 2)
    assert _cores_of_calls(reloaded, 6) == [0, 1, 2, 0, 1, 2]


def test_auto_multicore_of_a_compiled_model_by_path(compiled: Path, runtime,
                                                    tmp_path: Path) -> None:
    copy = neuroncli.auto_multicore(str(compiled), EXAMPLE, 2)
    assert copy.cores == (0, 1)
    copy.save(tmp_path / "x2")
    copy.unload()
    assert _replica_tags(tmp_path / "x2") == [2]
    assert neuroncli.load(tmp_path / "x2").cores == (0, 1)


def test_exact_auto_multicore_command_on_resnet50(zoo_root: Path, tmp_path: Path) -> None:
    resnet = tmp_path / "resnet"
    neuroncli.saved_model.compile(zoo.build("resnet50", zoo_root), resnet)
    result = subprocess.run([script("tf-neuron-auto-multicore"), "./resnet", "--num_cores", "8",
                             "--new_model_dir", "./modified_resnet"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rt = NeuronRuntime("inf2.24xlarge")
    model = neuroncli.runtime.load(tmp_path / "modified_resnet", runtime=rt)
    assert model.cores == tuple(range(8))
    x = model.random_inputs(batch=1, seed=0)
    for _ in range(16):
        model(**x)
    assert dict(model.stats().core_calls) == {c: 2 for c in range(8)}
    model.unload()


def test_placement_past_the_visible_cores_is_refused_at_load(compiled: Path, runtime,
                                                             tmp_path: Path) -> None:
    subprocess.run([script("neuron-place"), str(compiled), "--new_model_dir",
                    str(tmp_path / "p"), "--start-nc", "5"], check=True)
    with pytest.raises(UserError, match="visible"):
        neuroncli.load(tmp_path / "p")
    assert not any(runtime.pool.usage())  # nothing reserved by the failed load
