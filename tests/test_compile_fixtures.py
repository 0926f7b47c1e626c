"""neuron-compile on the bundled fixtures: numerics of the rewrite, determinism, the report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli.format import neuron_op
from neuroncli.runtime.reference import run_savedmodel
from neuroncli.savedmodel import read_saved_model
from tests.conftest import FIXTURES, script, tree_digest
from tests.numerics import assert_outputs_close, run_expanded

# The compile report of each fixture (AWS's formula, AWS's operator list): exact, so that a
# change in partitioning or counting shows up here.  (session ops, on Neuron, total)
EXPECTED_COUNTS = {
    "keras_dense": (26, 19, 26),
    "tf1_conv": (13, 11, 15),  # +2: the IdentityN nodes named like the original outputs
    "strings_dense": (39, 9, 39),
}

CASES = {
    # fixture -> extra compile arguments
    "keras_dense": {},
    "tf1_conv": {},
    "strings_dense": {"model_feed_dict": "npz"},
}


def _inputs(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.inputs.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    out = {}
    for name, extra in CASES.items():
        kwargs = {}
        inputs = _inputs(name)
        if extra.get("model_feed_dict") == "npz":
            kwargs["model_feed_dict"] = inputs
        else:
            kwargs["batch_size"] = next(iter(inputs.values())).shape[0]
        target = tmp_path_factory.mktemp(name) / "compiled"
        counts = neuroncli.saved_model.compile(FIXTURES / name, target, **kwargs)
        out[name] = (target, counts)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_expanded_compiled_graph_matches_original(compiled: dict, name: str) -> None:
    inputs = _inputs(name)
    expected = run_savedmodel(FIXTURES / name, inputs)
    actual = run_expanded(str(compiled[name][0]), inputs)
    assert_outputs_close(expected, actual, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_fixture_gets_a_neuron_op(compiled: dict, name: str) -> None:
    path, counts = compiled[name]
    graph_def = read_saved_model(path).saved_model.meta_graphs[0].graph_def
    ops = [n for n in graph_def.node if n.op == neuron_op.NEURON_OP]
    assert counts["neuron_ops"] == len(ops) >= 1
    for node in ops:
        spec = neuron_op.from_attrs(node.attr)
        assert spec.executable and spec.graph_def
        data_inputs = [i for i in node.input if not i.startswith("^")]
        assert len(spec.input_names) == len(data_inputs) == len(spec.input_dtypes)
        assert spec.model_config[1] == 1 and spec.model_config[2] in (1, 64)
        assert node.name.startswith("neuron_op_")
    session, on_neuron, total = EXPECTED_COUNTS[name]
    assert (counts["ops_session"], counts["ops_on_neuron"], counts["ops_total"]) == \
        (session, on_neuron, total)
    assert counts["OnNeuronRatio"] == on_neuron / total


def test_input_directory_is_untouched(tmp_path: Path) -> None:
    before = tree_digest(FIXTURES / "tf1_conv")
    neuroncli.saved_model.compile(FIXTURES / "tf1_conv", tmp_path / "out")
    assert tree_digest(FIXTURES / "tf1_conv") == before


def test_compiling_twice_gives_identical_bytes(tmp_path: Path) -> None:
    for run in ("a", "b"):
        subprocess.run([script("neuron-compile"), str(FIXTURES / "keras_dense"),
                        str(tmp_path / run), "-q"], check=True)
    assert (tmp_path / "a" / "saved_model.pb").read_bytes() == \
        (tmp_path / "b" / "saved_model.pb").read_bytes()


def test_json_report_has_the_documented_keys(tmp_path: Path) -> None:
    out = subprocess.run([script("neuron-compile"), str(FIXTURES / "keras_dense"),
                          str(tmp_path / "o"), "--json"], capture_output=True, text=True,
                         check=True)
    doc = json.loads(out.stdout)
    for key in ("OnNeuronRatio", "neuron_ops", "ops_total", "ops_on_neuron", "segments",
                "cpu_nodes"):
        assert key in doc
    session, on_neuron, total = EXPECTED_COUNTS["keras_dense"]
    assert (doc["ops_on_neuron"], doc["ops_total"], doc["neuron_ops"]) == (on_neuron, total, 1)
    assert doc["OnNeuronRatio"] == pytest.approx(on_neuron / total, abs=5e-5)
    assert "PASSED" in out.stderr


def test_human_report_lists_counts_and_cpu_nodes(tmp_path: Path) -> None:
    out = subprocess.run([script("neuron-compile"), str(FIXTURES / "tf1_conv"),
                          str(tmp_path / "o")], capture_output=True, text=True, check=True)
    assert "Number of operations in TensorFlow session:" in out.stdout
    assert "Number of operations after tf.neuron optimizations:" in out.stdout
    assert "Number of operations placed on Neuron runtime:" in out.stdout
    assert "signature input (2): bias_map, image" in out.stdout
    assert "OnNeuronRatio:" in out.stdout


def test_failed_segment_falls_back_to_cpu_and_must_compile_refuses(tmp_path: Path) -> None:
    # Without example inputs the Dense after the string parsing has an unknown batch: the
    # backend rejects that segment, which is expanded back onto the CPU.
    counts = neuroncli.saved_model.compile(FIXTURES / "strings_dense", tmp_path / "fallback")
    assert counts["neuron_ops"] == 0 and counts["OnNeuronRatio"] == 0.0
    inputs = _inputs("strings_dense")
    assert_outputs_close(run_savedmodel(FIXTURES / "strings_dense", inputs),
                         run_expanded(str(tmp_path / "fallback"), inputs))
    result = subprocess.run([script("neuron-compile"), str(FIXTURES / "strings_dense"),
                             str(tmp_path / "strict"), "--must-compile"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "--must-compile: 1 segment(s) failed to compile: segment 0" in result.stderr
    assert "unknown shape" in result.stderr and not (tmp_path / "strict").exists()


def test_compiler_workdir_layout(tmp_path: Path) -> None:
    work = tmp_path / "work"
    neuroncli.saved_model.compile(FIXTURES / "tf1_conv", tmp_path / "out",
                                  compiler_workdir=str(work))
    names = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert names == ["graph_def_fused.pb", "graph_def_shaped.pb", "segment000/compile.log",
                     "segment000/executable.neff", "segment000/graph_def.pb",
                     "segment000/graph_def_optimized.pb", "segments.json"]
    assert "xla: lowered to HLO" in (work / "segment000" / "compile.log").read_text()


def test_compile_verify_flag_runs_the_simulator_against_the_original(tmp_path: Path) -> None:
    result = subprocess.run([script("neuron-compile"), str(FIXTURES / "keras_dense"),
                             str(tmp_path / "o"), "--verify", "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["verify"]["passed"] is True and doc["neuron_ops"] == 1
