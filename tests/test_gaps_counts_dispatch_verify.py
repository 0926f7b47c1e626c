"""Three behaviours a planted bug once slipped past the whole suite (issue 17):

- ``neuron-inspect`` computes ``OnNeuronRatio`` from the wire view (``count_view``); it must
  give exactly the counts ``neuron-compile`` reported for the same model, and for AWS-style
  models exactly what the parsed-proto formula (``count_meta_graph``) gives;
- round robin skips a failed core without favouring the replica after it;
- ``neuron-verify`` fails when only a later output is wrong, and names that output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import neuroncli.runtime as rt
from neuroncli import proto
from neuroncli.format.counts import count_meta_graph
from neuroncli.savedmodel import read_saved_model, write_saved_model
from tests.conftest import FIXTURES, aws_style_saved_model, script
from tests.test_runtime_support import compile_model

FIXTURE_NAMES = ("keras_dense", "strings_dense", "tf1_conv")


def _run(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([script(name), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Each fixture compiled by the CLI with its sample inputs (strings_dense needs them to
    shape its segment), with its ``--json`` report."""
    root = tmp_path_factory.mktemp("gaps")
    out = {}
    for name in FIXTURE_NAMES:
        done = _run("neuron-compile", str(FIXTURES / name), str(root / name), "--json",
                    "--inputs", str(FIXTURES / f"{name}.inputs.npz"))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["neuron_ops"] >= 1
        out[name] = (root / name, json.loads(done.stdout))
    return out


def _inspect(path: Path) -> dict:
    done = _run("neuron-inspect", str(path), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_inspect_counts_equal_the_compile_report(reports: dict, name: str) -> None:
    path, report = reports[name]
    (meta,) = _inspect(path)["meta_graphs"]
    assert meta["ops_total"] == report["ops_total"]
    assert meta["ops_on_neuron"] == report["ops_on_neuron"]
    assert meta["on_neuron_ratio"] == pytest.approx(report["OnNeuronRatio"], abs=5e-5)
    assert len(meta["neuron_ops"]) == report["neuron_ops"]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_inspect_counts_of_aws_style_models(reports: dict, name: str, tmp_path: Path) -> None:
    """NeuronOps both in the graph and in a library function, two meta graphs."""
    path, report = reports[name]
    model = tmp_path / "aws"
    model.mkdir()
    data = aws_style_saved_model(path)
    (model / "saved_model.pb").write_bytes(data)
    metas = _inspect(model)["meta_graphs"]
    parsed = proto.SavedModel.FromString(data).meta_graphs
    assert len(metas) == len(parsed) == 2
    for meta, meta_graph in zip(metas, parsed):
        counts = count_meta_graph(meta_graph)
        assert (meta["ops_total"], meta["ops_on_neuron"]) == (counts.total, counts.on_neuron)
        # every node is there twice (graph and function): twice the compile report's counts
        assert meta["ops_total"] == 2 * report["ops_total"]
        assert meta["ops_on_neuron"] == 2 * report["ops_on_neuron"]


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_model(FIXTURES / "keras_dense", tmp_path_factory.mktemp("rr") / "c",
                         batch_size=2)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("failed", [0, 1, 3])
def test_round_robin_stays_even_around_a_failed_core(dense: Path, failed: int) -> None:
    sim = rt.NeuronRuntime("inf1.xlarge", environ={})
    x = np.ones((2, 16), np.float32)
    with rt.load(dense, runtime=sim) as model:
        assert len(model.replicas) == 4
        rt.fail_core(failed, runtime=sim)
        before = dict(model.stats().core_calls)
        for _ in range(300):
            model(features=x)
        after = model.stats().core_calls
        spread = {c: after.get(c, 0) - before.get(c, 0) for c in range(4)}
    assert spread == {c: (0 if c == failed else 100) for c in range(4)}


def _shift_output(src: Path, dst: Path, key: str) -> Path:
    """Copy a compiled model with 1.0 added to signature output ``key`` on the CPU side."""
    shutil.copytree(src, dst)
    saved_model = read_saved_model(dst).saved_model
    meta = saved_model.meta_graphs[0]
    info = meta.signature_def["serving_default"].outputs[key]
    one = meta.graph_def.node.add(name="tamper_one", op="Const")
    one.attr["dtype"].type = info.dtype
    one.attr["value"].tensor.dtype = info.dtype
    one.attr["value"].tensor.float_val.append(1.0)
    add = meta.graph_def.node.add(name="tamper_add", op="AddV2", input=[info.name, "tamper_one"])
    add.attr["T"].type = info.dtype
    info.name = "tamper_add:0"
    write_saved_model(str(dst), saved_model)
    return dst


def test_verify_fails_when_only_the_last_output_differs(reports: dict, tmp_path: Path) -> None:
    compiled, _ = reports["tf1_conv"]
    original = FIXTURES / "tf1_conv"
    keys = sorted(read_saved_model(compiled).saved_model.meta_graphs[0]
                  .signature_def["serving_default"].outputs)
    assert keys == ["mean", "probs"]  # verify reports outputs in this order
    tampered = _shift_output(compiled, tmp_path / "tampered", keys[-1])
    done = _run("neuron-verify", str(original), str(tampered), "--random", "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    verdicts = {o["key"]: o["passed"] for o in doc["outputs"]}
    assert verdicts == {"mean": True, "probs": False}
    assert doc["passed"] is False
    human = _run("neuron-verify", str(original), str(tampered), "--random")
    assert human.returncode == 1
    lines = {line.split()[1]: line for line in human.stdout.splitlines()
             if line.startswith("│")}
    assert "FAIL" in lines["probs"] and "PASS" in lines["mean"]
