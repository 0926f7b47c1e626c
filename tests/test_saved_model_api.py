"""``neuroncli.saved_model.compile`` honours every argument of AWS's ``tfn.saved_model.compile``.

AWS's signature, in order: model_dir, new_model_dir, batch_size, model_shape_feed_dict,
model_feed_dict, tags, signature_def_key, minimum_segment_size, no_fuse_ops, compiler_args,
compiler_workdir.  Each test changes one argument and checks its effect on the compiled model.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli import proto
from neuroncli.errors import UserError
from neuroncli.format import neuron_op
from neuroncli.savedmodel import read_saved_model
from tests.conftest import FIXTURES, script

DENSE = FIXTURES / "keras_dense"


def _ops(model_dir: Path) -> list:
    meta_graph = read_saved_model(str(model_dir)).saved_model.meta_graphs[0]
    return [node for _, node in neuron_op.iter_neuron_op_nodes(meta_graph)]


def _input_shapes(model_dir: Path) -> list[list[int]]:
    return [[d.size for d in s.dim] for node in _ops(model_dir)
            for s in node.attr["input_shapes"].list.shape]


def test_positional_call_in_aws_order(tmp_path: Path) -> None:
    counts = neuroncli.saved_model.compile(DENSE, tmp_path / "out", 3, None, None, ["serve"],
                                           "serving_default", 2, None, [], None)
    assert (counts["ops_on_neuron"], counts["ops_total"], counts["neuron_ops"]) == (19, 26, 1)
    assert counts["OnNeuronRatio"] == 19 / 26
    assert _input_shapes(tmp_path / "out") == [[3, 16]]


def test_model_shape_feed_dict_and_model_feed_dict_set_the_shapes(tmp_path: Path) -> None:
    neuroncli.saved_model.compile(DENSE, tmp_path / "a", model_shape_feed_dict={"features": [5, 16]})
    assert _input_shapes(tmp_path / "a") == [[5, 16]]
    feed = {"features": np.zeros((7, 16), np.float32)}
    neuroncli.saved_model.compile(DENSE, tmp_path / "b", model_feed_dict=feed)
    assert _input_shapes(tmp_path / "b") == [[7, 16]]


def test_tags_and_signature_def_key_select_and_are_checked(tmp_path: Path) -> None:
    neuroncli.saved_model.compile(DENSE, tmp_path / "a", tags={"serve"}, signature_def_key="serve")
    saved = read_saved_model(str(tmp_path / "a")).saved_model
    assert list(saved.meta_graphs[0].signature_def) == ["serve"]
    with pytest.raises(UserError, match="no meta graph with tag set"):
        neuroncli.saved_model.compile(DENSE, tmp_path / "b", tags=["train"])
    with pytest.raises(UserError, match="no signature 'nope'"):
        neuroncli.saved_model.compile(DENSE, tmp_path / "c", signature_def_key="nope")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_minimum_segment_size_keeps_small_segments_on_cpu(tmp_path: Path) -> None:
    counts = neuroncli.saved_model.compile(DENSE, tmp_path / "out", minimum_segment_size=1000)
    assert counts["OnNeuronRatio"] == 0.0 and _ops(tmp_path / "out") == []


def test_no_fuse_ops_forces_nodes_onto_cpu(tmp_path: Path) -> None:
    neuroncli.saved_model.compile(DENSE, tmp_path / "base")
    inside = sorted(n.name for op in _ops(tmp_path / "base")
                    for n in proto.GraphDef.FromString(op.attr["graph_def"].s).node
                    if n.op == "MatMul")
    assert inside, "the fixture's MatMul nodes are on Neuron by default"
    report = neuroncli.saved_model.compile_with_report(
        DENSE, tmp_path / "out", neuroncli.saved_model.make_options(no_fuse_ops=inside[:1]))
    assert inside[0] in report.cpu_nodes["listed in no_fuse_ops"]
    assert all(inside[0] not in {n.name for n in proto.GraphDef.FromString(
        op.attr["graph_def"].s).node} for op in _ops(tmp_path / "out"))


def test_compiler_args_and_compiler_workdir(tmp_path: Path) -> None:
    neuroncli.saved_model.compile(DENSE, tmp_path / "out",
                                  compiler_args=["--neuroncore-pipeline-cores", "2"],
                                  compiler_workdir=str(tmp_path / "work"))
    (node,) = _ops(tmp_path / "out")
    assert list(node.attr["model_config"].list.i)[:2] == [2, 2]
    work = tmp_path / "work"
    assert {"graph_def_shaped.pb", "graph_def_fused.pb", "segments.json"} <= {
        p.name for p in work.iterdir()}
    fused = proto.GraphDef.FromString((work / "graph_def_fused.pb").read_bytes())
    assert [n.op for n in fused.node].count("NeuronOp") == 1
    with pytest.raises(UserError, match="unknown compiler flag '--fast'"):
        neuroncli.saved_model.compile(DENSE, tmp_path / "bad", compiler_args=["--fast"])


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b""
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("how", ["compiler_workdir", "NEURON_CC_FLAGS", "compiler_args"])
def test_workdir_inside_the_input_is_refused(how: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs are sacred through the Python API too, whichever way the work directory came,
    with the command line's message, and before any work: nothing written anywhere."""
    import shutil
    model = tmp_path / "model"
    shutil.copytree(DENSE, model)
    before = _tree(model)
    work = model / "work"
    kwargs: dict = {}
    if how == "compiler_workdir":
        kwargs["compiler_workdir"] = str(work)
    elif how == "compiler_args":
        kwargs["compiler_args"] = ["--workdir", str(work)]
    else:
        monkeypatch.setenv("NEURON_CC_FLAGS", f"--workdir {work}")
    with pytest.raises(UserError) as caught:
        neuroncli.saved_model.compile(model, tmp_path / "out", **kwargs)
    assert str(caught.value) == (f"compiler work directory {work}: is inside the input "
                                 f"directory {model}: choose a path outside it (inputs are "
                                 "never modified)")
    assert _tree(model) == before
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_verbose_compiler_flag_shows_the_compile_log(tmp_path: Path) -> None:
    def run(flags: str, out: str) -> subprocess.Popen:
        env = {**os.environ, "NEURON_CC_FLAGS": flags}
        return subprocess.Popen([script("neuron-compile"), str(DENSE), str(tmp_path / out)],
                                stderr=subprocess.PIPE, text=True, env=env)

    runs = [run("", "quiet"), run("--verbose info", "info"), run("--verbose=3", "debug")]
    quiet, info, debug = [p.communicate()[1] for p in runs]
    assert all(p.returncode == 0 for p in runs)
    assert "grappler:" not in quiet and "partition plan" not in info
    assert "info: segment segment0: " in info and "info: xla: lowered to HLO" in info
    assert "debug: partition plan:" in debug
