"""tf-neuron-auto-multicore, neuron-place, neuron-inspect: exact, protobuf-only, safe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import neuroncli
from neuroncli.format import neuron_op
from neuroncli.format.counts import count_meta_graph
from neuroncli.format.neuron_op import iter_neuron_op_nodes
from neuroncli.savedmodel import read_saved_model
from tests.conftest import FIXTURES, aws_style_saved_model, script, tree_digest


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tf1_conv compiled (it has a variables/ dir in the original; we add one to copy)."""
    out = tmp_path_factory.mktemp("c") / "tf1_conv_neuron"
    neuroncli.saved_model.compile(FIXTURES / "tf1_conv", out)
    (out / "variables").mkdir()
    (out / "variables" / "variables.index").write_bytes(b"index bytes")
    (out / "assets").mkdir()
    (out / "assets" / "vocab.txt").write_text("a\nb\n")
    return out


@pytest.fixture(scope="module")
def aws_style(compiled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled model rewritten AWS-TF2-style: NeuronOps inside a library function."""
    out = tmp_path_factory.mktemp("aws") / "aws_model"
    out.mkdir()
    (out / "saved_model.pb").write_bytes(aws_style_saved_model(compiled))
    return out


def _run(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([script(name), *args], capture_output=True, text=True, timeout=120)


def _tags(path: Path, attr: str) -> list[tuple[str, str, int]]:
    sm = read_saved_model(path).saved_model
    return [(",".join(mg.meta_info_def.tags), where, node.attr[attr].i if attr in node.attr else None)
            for mg in sm.meta_graphs for where, node in iter_neuron_op_nodes(mg)]


def test_auto_multicore_exact_command(compiled: Path, tmp_path: Path) -> None:
    before = tree_digest(compiled)
    result = _run("tf-neuron-auto-multicore", str(compiled), "--num_cores", "8",
                  "--new_model_dir", str(tmp_path / "modified"))
    assert result.returncode == 0, result.stderr
    assert "1 NeuronOp(s) tagged, 8 replicas" in result.stdout
    assert _tags(tmp_path / "modified", neuron_op.ATTR_AUTO_MULTICORE) == [("serve", "graph", 8)]
    assert (tmp_path / "modified" / "variables" / "variables.index").read_bytes() == b"index bytes"
    assert (tmp_path / "modified" / "assets" / "vocab.txt").read_text() == "a\nb\n"
    assert tree_digest(compiled) == before


def test_auto_multicore_tags_library_functions_in_every_meta_graph(aws_style: Path,
                                                                     tmp_path: Path) -> None:
    result = _run("tf-neuron-auto-multicore", str(aws_style), "--num-cores", "3",
                  "--new-model-dir", str(tmp_path / "m"), "--json")
    assert result.returncode == 0, result.stderr
    tags = _tags(tmp_path / "m", neuron_op.ATTR_AUTO_MULTICORE)
    assert tags == [("serve", "graph", 3), ("serve", "function:__inference_neuron_graph_42", 3),
                    ("serve,gpu", "graph", 3),
                    ("serve,gpu", "function:__inference_neuron_graph_42", 3)]
    doc = json.loads(result.stdout)
    assert [m["neuron_ops"] for m in doc["meta_graphs"]] == [2, 2]


def test_only_the_tag_changes(compiled: Path, tmp_path: Path) -> None:
    _run("tf-neuron-auto-multicore", str(compiled), "--num_cores", "2", "--new_model_dir",
         str(tmp_path / "m"))
    a = read_saved_model(compiled).saved_model
    b = read_saved_model(tmp_path / "m").saved_model
    for _, node in iter_neuron_op_nodes(b.meta_graphs[0]):
        del node.attr[neuron_op.ATTR_AUTO_MULTICORE]
    assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def test_place_writes_placement(compiled: Path, tmp_path: Path) -> None:
    before = tree_digest(compiled)
    result = _run("neuron-place", str(compiled), "--new_model_dir", str(tmp_path / "p"),
                  "--start-nc", "1", "--nc-count", "2")
    assert result.returncode == 0, result.stderr
    assert _tags(tmp_path / "p", neuron_op.ATTR_START_NC) == [("serve", "graph", 1)]
    assert _tags(tmp_path / "p", neuron_op.ATTR_NC_COUNT) == [("serve", "graph", 2)]
    result = _run("neuron-place", str(compiled), "--new_model_dir", str(tmp_path / "q"),
                  "--multicore")
    assert result.returncode == 0 and "every visible core" in result.stdout
    assert _tags(tmp_path / "q", neuron_op.ATTR_NC_COUNT) == [("serve", "graph", 0)]
    shown = _run("neuron-inspect", str(tmp_path / "p"), "--json")
    assert shown.returncode == 0, shown.stderr
    (op,) = json.loads(shown.stdout)["meta_graphs"][0]["neuron_ops"]
    assert op["placement"] == "nc 1, 2 core(s)"
    assert _run("neuron-inspect", str(compiled)).returncode == 0
    assert tree_digest(compiled) == before  # place and inspect leave the input untouched


def test_inspect(aws_style: Path, compiled: Path) -> None:
    result = _run("neuron-inspect", str(aws_style), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [m["tags"] for m in doc["meta_graphs"]] == [["serve"], ["serve", "gpu"]]
    ops = doc["meta_graphs"][0]["neuron_ops"]
    assert [o["location"] for o in ops] == ["graph", "function:__inference_neuron_graph_42"]
    assert ops[0]["replicas"] == "1" and ops[0]["program"]["batch_size"] == 1
    counts = count_meta_graph(read_saved_model(compiled).saved_model.meta_graphs[0])
    text = _run("neuron-inspect", str(compiled))
    assert (f"operations: {counts.graph_nodes} in graph, {counts.on_neuron} of {counts.total} "
            f"on Neuron; OnNeuronRatio {counts.ratio:.4f}") in text.stdout
    assert "signature 'serving_default'" in text.stdout


def test_pipeline_model_is_refused(compiled: Path, tmp_path: Path) -> None:
    sm = read_saved_model(compiled).saved_model
    for _, node in iter_neuron_op_nodes(sm.meta_graphs[0]):
        node.attr["model_config"].list.i[1] = 2
    model = tmp_path / "pipeline"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(sm.SerializeToString())
    for cmd in (["tf-neuron-auto-multicore", str(model), "--num_cores", "2", "--new_model_dir"],
                ["neuron-place", str(model), "--nc-count", "2", "--new_model_dir"]):
        result = _run(cmd[0], *cmd[1:], str(tmp_path / "out"))
        assert result.returncode == 1 and "cannot be replicated" in result.stderr
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, code, text", [
    (["--num_cores", "0"], 2, "0 is not in the range 1<=x<=64"),
    (["--num_cores", "-1"], 2, "-1 is not in the range"),
    (["--num_cores", "abc"], 2, "'abc' is not a valid integer"),
    (["--num_cores", "65"], 2, "65 is not in the range"),
    ([], 2, "Missing option '--num_cores'"),
])
def test_auto_multicore_bad_numbers(compiled: Path, tmp_path: Path, args: list, code: int,
                                    text: str) -> None:
    result = _run("tf-neuron-auto-multicore", str(compiled), *args, "--new_model_dir",
                  str(tmp_path / "o"))
    assert result.returncode == code and text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, code, text", [
    (["--nc-count", "0"], 2, "0 cores is no placement"),
    (["--start-nc", "-2"], 2, "-2 is not in the range x>=-1"),
    (["--multicore", "--start-nc", "1"], 2, "cannot be combined"),
    ([], 2, "say where to place the model"),
])
def test_place_bad_arguments(compiled: Path, tmp_path: Path, args: list, code: int,
                             text: str) -> None:
    result = _run("neuron-place", str(compiled), *args, "--new_model_dir", str(tmp_path / "o"))
    assert result.returncode == code, result.stderr
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_uncompiled_missing_corrupt_and_existing(compiled: Path, tmp_path: Path) -> None:
    cases = [
        (str(FIXTURES / "keras_dense"), "not a compiled model (no NeuronOp): run neuron-compile"),
        (str(tmp_path / "missing"), "no such directory"),
    ]
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff\x01junk")
    cases.append((str(corrupt), "not a valid SavedModel protobuf"))
    for model, text in cases:
        for cmd in (["tf-neuron-auto-multicore", model, "--num_cores", "2", "--new_model_dir"],
                    ["neuron-place", model, "--multicore", "--new_model_dir"]):
            result = _run(cmd[0], *cmd[1:], str(tmp_path / "out"))
            assert result.returncode == 1 and text in result.stderr, (cmd, result.stderr)
            assert not (tmp_path / "out").exists()
    (tmp_path / "exists").mkdir()
    result = _run("tf-neuron-auto-multicore", str(compiled), "--num_cores", "2",
                  "--new_model_dir", str(tmp_path / "exists"))
    assert result.returncode == 1 and "already exists" in result.stderr


def test_rewrite_commands_never_import_tensorflow(compiled: Path, tmp_path: Path) -> None:
    # Run each console script's module in a process that then checks sys.modules.
    probe = ("import runpy, sys\n"
             "target, argv = sys.argv[1], sys.argv[2:]\n"
             "sys.argv = [target, *argv]\n"
             "try:\n"
             "    runpy.run_module(target, run_name='__main__')\n"
             "except SystemExit as e:\n"
             "    assert e.code == 0, e.code\n"
             "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    for module, args in (
            ("neuroncli.cli.auto_multicore", [str(compiled), "--num_cores", "2",
                                              "--new_model_dir", str(tmp_path / "a")]),
            ("neuroncli.cli.place", [str(compiled), "--multicore", "--new_model_dir",
                                     str(tmp_path / "b")]),
            ("neuroncli.cli.inspect", [str(compiled), "--json"])):
        result = subprocess.run([sys.executable, "-c", probe, module, *args],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
