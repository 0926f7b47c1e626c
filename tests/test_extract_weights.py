"""``--extract-weights`` and the 2 GB wall.

With the flag, weights stay out of ``saved_model.pb``: each is a ``VarHandleOp`` whose
``ReadVariableOp`` feeds the NeuronOps, and its value lives in the compiled model's
``variables/``; the runtime restores them at load.  Without it, a model whose compiled protobuf
would pass 2 GB is refused up front with a message naming the flag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli import proto
from neuroncli.compiler import weights
from neuroncli.errors import UserError
from neuroncli.format import neuron_op
from neuroncli.format.instances import GIB
from neuroncli.format.weights import is_saver_node
from neuroncli.inspection import inspect_saved_model
from neuroncli.runtime.reference import run_savedmodel
from neuroncli.savedmodel import read_saved_model
from tests.conftest import FIXTURES, script, tree_digest
from tests.test_compile_fixtures import _inputs

XW = "--extract-weights inf2.xlarge"


def _neuron_ops(model_dir: Path) -> list:
    meta_graph = read_saved_model(str(model_dir)).saved_model.meta_graphs[0]
    return [node for _, node in neuron_op.iter_neuron_op_nodes(meta_graph)]


def _largest_const(graph_def_bytes: bytes) -> int:
    graph_def = proto.GraphDef.FromString(graph_def_bytes)
    return max((n.attr["value"].tensor.ByteSize() for n in graph_def.node if n.op == "Const"),
               default=0)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name in ("keras_dense", "tf1_conv", "strings_dense"):
        target = tmp_path_factory.mktemp(name) / "xw"
        neuroncli.saved_model.compile(FIXTURES / name, target, compiler_args=XW,
                                      model_feed_dict=_inputs(name))
        out[name] = target
    return out


@pytest.mark.parametrize("name", ["keras_dense", "tf1_conv", "strings_dense"])
def test_weights_live_in_variables_and_outputs_match(extracted: dict, name: str) -> None:
    compiled = extracted[name]
    assert sorted(os.listdir(compiled / "variables")) == [
        "variables.data-00000-of-00001", "variables.index"]
    assert inspect_saved_model(compiled).variables_bytes == sum(
        p.stat().st_size for p in (compiled / "variables").iterdir())
    meta_graph = read_saved_model(str(compiled)).saved_model.meta_graphs[0]
    handles = [n.name for n in meta_graph.graph_def.node if n.op == "VarHandleOp"]
    assert handles, "every weight becomes a VarHandleOp"
    for node in _neuron_ops(compiled):
        # The biggest kernel of these fixtures is 1 KiB or more; frozen it would be a Const.
        assert _largest_const(node.attr["graph_def"].s) < 256
        assert "ReadVariableOp" not in {n.op for n in proto.GraphDef.FromString(
            node.attr["graph_def"].s).node}
    inputs = _inputs(name)
    got = neuroncli.load(compiled)(**inputs)
    want = run_savedmodel(FIXTURES / name, inputs)
    for key in want:
        if want[key].dtype.kind in "fc":
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(got[key], want[key])


def test_extracted_model_is_smaller_and_deterministic(extracted: dict, tmp_path: Path) -> None:
    frozen = tmp_path / "frozen"
    neuroncli.saved_model.compile(FIXTURES / "keras_dense", frozen,
                                  model_feed_dict=_inputs("keras_dense"))
    # Frozen, every weight is in saved_model.pb once (the program); extracted, none (the
    # handles and reads that replace them cost a few hundred bytes, and the restore ops for
    # TensorFlow's loaders, not counted here, about 100 bytes per weight).
    weight_bytes = (extracted["keras_dense"] / "variables"
                    / "variables.data-00000-of-00001").stat().st_size
    graph = read_saved_model(extracted["keras_dense"]).saved_model.meta_graphs[0].graph_def
    saver_bytes = sum(n.ByteSize() + 4 for n in graph.node if is_saver_node(n.name))
    saved = ((frozen / "saved_model.pb").stat().st_size
             - (extracted["keras_dense"] / "saved_model.pb").stat().st_size + saver_bytes)
    assert 0.75 * weight_bytes <= saved <= 1.1 * weight_bytes
    again = tmp_path / "again"
    neuroncli.saved_model.compile(FIXTURES / "keras_dense", again, compiler_args=XW,
                                  model_feed_dict=_inputs("keras_dense"))
    assert tree_digest(again) == tree_digest(extracted["keras_dense"])


def test_model_config_follows_the_instance_memory(extracted: dict) -> None:
    (node,) = _neuron_ops(extracted["keras_dense"])
    assert list(node.attr["model_config"].list.i)[2] == 64  # kilobytes of weights: the cap
    assert weights.max_num_duplicates(3 * GIB, "inf2.xlarge") == 5 * 2
    assert weights.max_num_duplicates(3 * GIB, "inf2.48xlarge") == 64
    assert weights.max_num_duplicates(GIB, "inf1.6xlarge") == 2 * 16  # 2 GiB per inf1 core
    with pytest.raises(UserError, match="do not fit in one NeuronCore of inf1.2xlarge"):
        weights.max_num_duplicates(3 * GIB, "inf1.2xlarge")


def test_dynamic_batch_shards_inputs_never_weights(tmp_path: Path) -> None:
    compiled = tmp_path / "dyn"
    neuroncli.saved_model.compile(FIXTURES / "keras_dense", compiled,
                                  compiler_args=f"{XW} --dynamic-batch-size")
    (node,) = _neuron_ops(compiled)
    placeholders = {n.name: n.op for n in proto.GraphDef.FromString(
        node.attr["graph_def"].s).node}
    axes = list(node.attr["input_batch_axis"].list.i)
    assert axes.count(0) == 1 and axes.count(-1) == len(axes) - 1 and len(placeholders) > 1
    x = np.random.default_rng(0).random((5, 16), dtype=np.float32)
    got = neuroncli.load(compiled)(features=x)["output_0"]
    np.testing.assert_allclose(got, run_savedmodel(FIXTURES / "keras_dense",
                                                   {"features": x})["output_0"], rtol=1e-5)


def test_rewrites_carry_the_variables_and_a_missing_checkpoint_is_clear(
        extracted: dict, tmp_path: Path) -> None:
    replicated = tmp_path / "x2"
    result = subprocess.run([script("tf-neuron-auto-multicore"), str(extracted["tf1_conv"]),
                             "--num_cores", "2", "--new_model_dir", str(replicated)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    inputs = _inputs("tf1_conv")
    model = neuroncli.load(replicated)
    assert model.cores == (0, 1)
    np.testing.assert_allclose(model(**inputs)["probs"],
                               run_savedmodel(FIXTURES / "tf1_conv", inputs)["probs"],
                               rtol=1e-5, atol=1e-6)
    broken = tmp_path / "broken"
    shutil.copytree(extracted["tf1_conv"], broken)
    shutil.rmtree(broken / "variables")
    with pytest.raises(UserError, match="keeps its weights in variables/"):
        neuroncli.load(broken)


def test_trace_with_extract_weights_saves_its_variables(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    import tensorflow as tf
    kernel = tf.Variable(np.random.default_rng(1).random((8, 4), dtype=np.float32))

    @tf.function
    def score(x):
        return tf.nn.relu(tf.matmul(x, kernel) - 1.0)

    monkeypatch.setenv("NEURON_CC_FLAGS", XW)
    x = tf.constant(np.random.default_rng(2).random((2, 8), dtype=np.float32))
    traced = neuroncli.trace(score, x)
    np.testing.assert_allclose(traced(x).numpy(), score(x).numpy(), rtol=1e-6)
    traced.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "variables" / "variables.index").is_file()
    loaded = neuroncli.load(tmp_path / "saved")
    np.testing.assert_allclose(loaded(x).numpy(), score(x).numpy(), rtol=1e-6)  # as traced


def _inflate_read_variable(src: Path, dst: Path) -> None:
    """Copy a model and make a variable its signature *reads* declare 50000x50000 float32
    (10 GB): the 2 GB check reads declared shapes only, so no real weights are needed.  TF2:
    the first variable bound to the serving function; TF1: the conv kernel."""
    shutil.copytree(src, dst)
    saved_model = proto.SavedModel.FromString((dst / "saved_model.pb").read_bytes())
    meta_graph = saved_model.meta_graphs[0]
    objects = meta_graph.object_graph_def
    if len(objects.nodes):
        output = meta_graph.signature_def["serving_default"].outputs["output_0"].name
        (call,) = [n for n in meta_graph.graph_def.node if n.name == output.split(":")[0]]
        bound = objects.concrete_functions[call.attr["f"].func.name].bound_inputs
        shape = objects.nodes[bound[0]].variable.shape
    else:
        (kernel,) = [n for n in meta_graph.graph_def.node if n.name == "conv/kernel"]
        shape = kernel.attr["shape"].shape
    shape.Clear()
    shape.dim.add(size=50000)
    shape.dim.add(size=50000)
    (dst / "saved_model.pb").write_bytes(saved_model.SerializeToString())


@pytest.mark.parametrize("name", ["keras_dense", "tf1_conv"])
def test_past_2gb_is_refused_up_front_naming_extract_weights(name: str, tmp_path: Path) -> None:
    model = tmp_path / "huge"
    _inflate_read_variable(FIXTURES / name, model)
    env = {k: v for k, v in os.environ.items() if k != "NEURON_CC_FLAGS"}
    result = subprocess.run([script("neuron-compile"), str(model), str(tmp_path / "out")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "past protobuf's 2 GB limit" in lines[0]
    assert "--extract-weights" in lines[0] and "10.00 GB of weights" in lines[0]
    assert not (tmp_path / "out").exists()
    # ... before TensorFlow is imported
    probe = ("import sys, neuroncli\n"
             "try:\n"
             f"    neuroncli.saved_model.compile({str(model)!r}, {str(tmp_path / 'out')!r})\n"
             "except ValueError as exc:\n"
             "    print('refused' if 'past protobuf' in str(exc) else exc)\n"
             "print('TF' if 'tensorflow' in sys.modules else 'NOTF')")
    out = subprocess.run([os.sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env)
    assert out.stdout.split() == ["refused", "NOTF"], out.stderr


# ----------------------------------------------------------------------------- slow: 2.7 GB

def _build_big_model(directory: Path) -> None:
    """Five 8192x16384 float32 kernels (2.7 GB) in a chain, saved by tf.saved_model.save;
    built in a child process so the test process does not keep the weights."""
    code = f"""
import os; os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
class Big(tf.Module):
    def __init__(self):
        self.kernels = [tf.Variable(tf.random.stateless_uniform(
            [8192, 16384] if i % 2 == 0 else [16384, 8192], seed=[i, 7], minval=-0.01,
            maxval=0.01)) for i in range(5)]
    @tf.function(input_signature=[tf.TensorSpec([None, 8192], tf.float32, name="x")])
    def serve(self, x):
        for k in self.kernels:
            x = tf.tanh(tf.matmul(x, k))
        return {{"y": x}}
m = Big()
tf.saved_model.save(m, {str(directory)!r}, signatures={{"serving_default": m.serve}})
"""
    subprocess.run([os.sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_a_model_past_2gb_compiles_and_runs_with_extract_weights(tmp_path: Path) -> None:
    model = tmp_path / "big"
    _build_big_model(model)
    env = {k: v for k, v in os.environ.items() if k != "NEURON_CC_FLAGS"}
    refused = subprocess.run([script("neuron-compile"), str(model), str(tmp_path / "no")],
                             capture_output=True, text=True, env=env)
    assert refused.returncode == 1 and "--extract-weights" in refused.stderr
    compiled = tmp_path / "big_neuron"
    env["NEURON_CC_FLAGS"] = XW
    done = subprocess.run([script("neuron-compile"), str(model), str(compiled)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert (compiled / "saved_model.pb").stat().st_size < 10 * 2**20
    (node,) = _neuron_ops(compiled)
    # 2.5 GiB of weights: 6 copies fit in a 16 GiB core, times 2 cores
    assert list(node.attr["model_config"].list.i)[2] == 12
    x = np.random.default_rng(3).random((1, 8192), dtype=np.float32)
    got = neuroncli.load(compiled)(x=x)["y"]
    want = run_savedmodel(model, {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
