"""Auto-multicore in process (``neuroncli.rewrite.multicore``), on hand-built compiled models.

The command-line tests run the installed console script; these call the library functions
directly so that a mutation of them is seen (``make mutate``).  Protobuf only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroncli import proto
from neuroncli.errors import UserError
from neuroncli.format.neuron_op import ATTR_AUTO_MULTICORE, NEURON_OP
from neuroncli.format.placement import MAX_CORES
from neuroncli.rewrite.multicore import auto_multicore_saved_model, tag_saved_model

COMMAND = "tf-neuron-auto-multicore"


def _neuron_op(nodes: object, name: str, config: tuple | None = (1, 1, 64, 10)) -> None:
    node = nodes.add(name=name, op=NEURON_OP)
    node.attr["executable"].s = b"program"
    if config is not None:
        node.attr["model_config"].list.i.extend(config)


def _model(config: tuple | None = (1, 1, 64, 10)) -> object:
    """Two meta graphs; NeuronOps at top level and inside a library function."""
    sm = proto.SavedModel()
    mg = sm.meta_graphs.add()
    mg.meta_info_def.tags.append("serve")
    mg.graph_def.node.add(name="x", op="Placeholder")
    _neuron_op(mg.graph_def.node, "neuron_op_top", config)
    mg.graph_def.node.add(name="y", op="Identity", input=["neuron_op_top"])
    fn = mg.graph_def.library.function.add()
    fn.signature.name = "__inference_f_1"
    fn.node_def.add(name="pre", op="Cast")
    _neuron_op(fn.node_def, "neuron_op_fn")
    gpu = sm.meta_graphs.add()
    gpu.meta_info_def.tags.extend(["serve", "gpu"])
    _neuron_op(gpu.graph_def.node, "neuron_op_gpu")
    return sm


def _write(directory: Path, sm: object) -> Path:
    directory.mkdir()
    (directory / "saved_model.pb").write_bytes(sm.SerializeToString())
    return directory


def _tags(sm: object) -> dict:
    """NodeDef name -> its ``_automatic_multicore`` (None when absent), everywhere."""
    found = {}
    for mg in sm.meta_graphs:
        nodes = list(mg.graph_def.node)
        for fn in mg.graph_def.library.function:
            nodes.extend(fn.node_def)
        for node in nodes:
            attr = node.attr.get(ATTR_AUTO_MULTICORE)
            found[node.name] = None if attr is None else attr.i
    return found


@pytest.mark.parametrize("cores", [1, 3, MAX_CORES])
def test_every_neuron_op_is_tagged_and_nothing_else(tmp_path: Path, cores: int) -> None:
    src = _write(tmp_path / "m", _model())
    before = (src / "saved_model.pb").read_bytes()
    report = auto_multicore_saved_model(str(src), str(tmp_path / "out"), cores)
    written = proto.SavedModel.FromString((tmp_path / "out" / "saved_model.pb").read_bytes())
    assert _tags(written) == {"x": None, "neuron_op_top": cores, "y": None, "pre": None,
                              "neuron_op_fn": cores, "neuron_op_gpu": cores}
    assert (src / "saved_model.pb").read_bytes() == before
    assert (report.command, report.model_dir, report.new_model_dir) == \
        (COMMAND, str(src), str(tmp_path / "out"))
    assert [(s.tags, s.neuron_ops, s.detail) for s in report.meta_graphs] == [
        (("serve",), 2, {"tagged": 2, "replicas": cores}),
        (("serve", "gpu"), 1, {"tagged": 1, "replicas": cores})]


def test_an_existing_output_needs_force(tmp_path: Path) -> None:
    src = _write(tmp_path / "m", _model())
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        auto_multicore_saved_model(str(src), str(out), 2)
    assert (out / "keep").read_text() == "mine"
    auto_multicore_saved_model(str(src), str(out), 2, force=True)
    assert not (out / "keep").exists()
    assert _tags(proto.SavedModel.FromString((out / "saved_model.pb").read_bytes()))[
        "neuron_op_top"] == 2


@pytest.mark.parametrize("config", [None, (4,), (2, 1, 64, 10)])
def test_programs_for_one_core_can_be_replicated(tmp_path: Path, config: tuple | None) -> None:
    src = _write(tmp_path / "m", _model(config))
    auto_multicore_saved_model(str(src), str(tmp_path / "out"), 2)
    written = proto.SavedModel.FromString((tmp_path / "out" / "saved_model.pb").read_bytes())
    assert _tags(written)["neuron_op_top"] == 2


@pytest.mark.parametrize("config", [(4, 2, 1, 10), (4, 2)])
def test_a_pipeline_program_is_refused_and_nothing_is_written(tmp_path: Path,
                                                              config: tuple) -> None:
    src = _write(tmp_path / "m", _model(config))
    with pytest.raises(UserError) as caught:
        auto_multicore_saved_model(str(src), str(tmp_path / "out"), 2)
    assert str(caught.value) == (
        "NeuronOp 'neuron_op_top' (graph) was compiled for 2 pipeline cores "
        "(--neuroncore-pipeline-cores) and cannot be replicated: recompile without pipeline "
        "cores to use auto-multicore")
    assert not (tmp_path / "out").exists()


def test_tag_saved_model_tags_a_copy() -> None:
    sm = _model()
    before = sm.SerializeToString()
    tagged = tag_saved_model(sm, 5)
    assert _tags(tagged) == {"x": None, "neuron_op_top": 5, "y": None, "pre": None,
                             "neuron_op_fn": 5, "neuron_op_gpu": 5}
    assert sm.SerializeToString() == before
    with pytest.raises(UserError, match=r"^num_cores must be an integer from 1 to 64, got 0"):
        tag_saved_model(sm, 0)


def test_tag_saved_model_refuses_an_uncompiled_model() -> None:
    sm = proto.SavedModel()
    sm.meta_graphs.add().graph_def.node.add(name="x", op="Placeholder")
    with pytest.raises(UserError) as caught:
        tag_saved_model(sm, 2)
    assert str(caught.value) == "not a compiled model (no NeuronOp): compile it first"
