"""The default operator list is AWS's, exactly; ``supported_op_types`` changes it.

The model: MatMul -> Sin -> Log -> ResizeBilinear -> GatherV2 -> MatMul.  Sin, Log,
ResizeBilinear and GatherV2 are outside AWS's list: by default they stay on CPU (each with
its reason) and the MatMuls compile in their own NeuronOps; with ``+simulator`` everything
compiles into one NeuronOp.  Outputs equal the original either way.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli.format import neuron_op
from neuroncli.runtime.verify import verify
from neuroncli.savedmodel import read_saved_model
from tests.conftest import script

tf = pytest.importorskip("tensorflow")

OUTSIDE_AWS = ("Sin", "Log", "ResizeBilinear", "GatherV2")


@pytest.fixture(scope="module")
def module() -> tf.Module:
    rng = np.random.default_rng(7)
    w1 = tf.constant(rng.standard_normal((8, 16)).astype(np.float32))
    w2 = tf.constant(rng.standard_normal((24, 5)).astype(np.float32))
    columns = tf.constant([3, 0, 7, 12, 5, 9, 1, 2, 15, 4, 8, 11, 6, 10, 14, 13, 0, 3, 5, 7,
                           9, 11, 13, 15])

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
        def serve(self, x):
            h = tf.sin(tf.matmul(x, w1))
            h = tf.math.log(h * h + 1.0)
            image = tf.reshape(h, [1, 4, 4, 1])
            image = tf.image.resize(image, [8, 8], method="bilinear")
            flat = tf.reshape(image, [1, 64])
            picked = tf.gather(flat, columns, axis=1)
            return {"y": tf.matmul(picked, w2)}

    return Model()


@pytest.fixture(scope="module")
def model_dir(module: tf.Module, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ops") / "model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def _op_types(compiled: Path) -> tuple[list[str], list[set[str]]]:
    """Op types of the compiled graph outside NeuronOps, and inside each NeuronOp."""
    from neuroncli import proto
    meta_graph = read_saved_model(str(compiled)).saved_model.meta_graphs[0]
    outside = sorted(n.op for n in meta_graph.graph_def.node)
    inside = [{n.op for n in proto.GraphDef.FromString(node.attr["graph_def"].s).node}
              for _, node in neuron_op.iter_neuron_op_nodes(meta_graph)]
    return outside, inside


def test_default_keeps_the_four_on_cpu_with_the_reason(model_dir: Path, tmp_path: Path) -> None:
    report = neuroncli.saved_model.compile_with_report(
        model_dir, tmp_path / "out", neuroncli.saved_model.make_options())
    outside, inside = _op_types(tmp_path / "out")
    for op in OUTSIDE_AWS:
        assert op in outside, op
        assert not any(op in ops for ops in inside), op
        reason = f"op type {op} is not in AWS's supported operator list"
        assert [n.rsplit("/", 1)[-1] for n in report.cpu_nodes[reason]] == [
            {"Sin": "Sin", "Log": "Log", "ResizeBilinear": "ResizeBilinear",
             "GatherV2": "GatherV2"}[op]]
    # The cuts leave five NeuronOps: the MatMuls and the AWS-listed ops between the four.
    compute = sorted(tuple(sorted(ops - {"Placeholder", "Identity", "Const"})) for ops in inside)
    assert compute == [("AddV2", "Mul"), ("MatMul",), ("MatMul",), ("Reshape",), ("Reshape",)]
    assert outside.count("NeuronOp") == 5
    assert report.supported_op_types == ("AWS's supported operator list (75 operator types), "
                                         "and constant-foldable nodes")
    assert verify(model_dir, tmp_path / "out", runs=2).passed


def test_simulator_opt_in_puts_them_in_one_neuron_op(model_dir: Path, tmp_path: Path) -> None:
    counts = neuroncli.saved_model.compile(model_dir, tmp_path / "out",
                                           supported_op_types=["+simulator"])
    outside, inside = _op_types(tmp_path / "out")
    assert outside.count("NeuronOp") == 1
    assert set(OUTSIDE_AWS) <= inside[0]
    assert not set(OUTSIDE_AWS) & set(outside)
    assert counts["neuron_ops"] == 1
    assert verify(model_dir, tmp_path / "out", runs=2).passed


def test_cli_option_adds_one_op_and_json_says_why(model_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run([script("neuron-compile"), str(model_dir), str(tmp_path / "out"),
                           "--supported_op_types", "+Sin,+Log", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["supported_op_types"] == ("AWS's supported operator list + Log + Sin "
                                         "(77 operator types), and constant-foldable nodes")
    reasons = {r.split(" is not")[0] for r in doc["cpu_nodes"] if " is not in " in r}
    assert reasons == {"op type ResizeBilinear", "op type GatherV2"}
    outside, inside = _op_types(tmp_path / "out")
    assert {"Sin", "Log", "MatMul"} <= inside[0] and "Sin" not in outside


def test_cli_rejects_a_bad_list_with_one_line(model_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run([script("neuron-compile"), str(model_dir), str(tmp_path / "out"),
                           "--supported_op_types", "+simulatr"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: supported_op_types: 'simulatr' is neither an operator type (CamelCase, e.g. "
        "GatherV2) nor a named set (simulator)"]
    assert not (tmp_path / "out").exists()


def test_inspect_and_analyze_model_use_the_same_list(module: tf.Module, model_dir: Path,
                                                     tmp_path: Path, capsys) -> None:
    report = neuroncli.saved_model.compile_with_report(
        model_dir, tmp_path / "out", neuroncli.saved_model.make_options())
    refused = {r.split()[2]: len(n) for r, n in report.cpu_nodes.items()
               if r.endswith("is not in AWS's supported operator list")}
    assert refused == {"GatherV2": 1, "Log": 1, "ResizeBilinear": 1, "Sin": 1}
    done = subprocess.run([script("neuron-inspect"), str(tmp_path / "out"), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout)["meta_graphs"][0]
    assert meta["outside_aws_op_list"] == refused
    result = neuroncli.analyze_model(module.serve, tf.zeros([1, 8]))
    assert {op: n for op, n in result["unsupported"].items()
            if op != "Placeholder"} == refused
    assert result["supported"]["MatMul"] == 2
