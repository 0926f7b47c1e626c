"""Each weight is stored once, and the 2 GB estimate counts only what the signature reads.

A compiled NeuronOp's ``graph_def`` keeps every node, attribute, dtype and shape, but not the
values of a ``Const`` whose ``NodeDef`` is over ``LARGE_CONSTANT_BYTES`` (AWS's
``erase_large_constants``); the program alone carries them, and whatever needs the numbers
reads the program.  The up-front estimate follows the signature to the variables it reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neuroncli
from neuroncli import proto
from neuroncli.compiler import weights
from neuroncli.format import executable as exe
from neuroncli.format import neuron_op
from neuroncli.format.subgraph import (
    LARGE_CONSTANT_BYTES, SubgraphError, erase_large_constants, full_subgraph,
)
from neuroncli.runtime.reference import run_savedmodel
from neuroncli.savedmodel import read_saved_model, select_meta_graph, select_signature
from neuroncli.savedmodel.reachable import MAX_CALL_DEPTH, read_variables
from tests.conftest import FIXTURES, script, tree_digest
from tests.test_compile_fixtures import _inputs

FLOAT = proto.DataType.values_by_name["DT_FLOAT"].number


def _const(graph_def, name: str, values: np.ndarray, splat: bool = False):
    node = graph_def.node.add(name=name, op="Const")
    node.attr["dtype"].type = FLOAT
    tensor = node.attr["value"].tensor
    tensor.dtype = FLOAT
    for dim in values.shape:
        tensor.tensor_shape.dim.add(size=dim)
    if splat:
        tensor.float_val.append(float(values.flat[0]))
    else:
        tensor.tensor_content = values.astype(np.float32).tobytes()
    return node


def _has_values(node) -> bool:
    tensor = node.attr["value"].tensor
    return any(f.name not in ("dtype", "tensor_shape", "version_number")
               for f, _ in tensor.ListFields())


def _segment() -> proto.GraphDef:
    #  x* -> matmul(x, w) -> add(., b) -> out         w: 16x32 (2 KiB), b: 32 floats, s: splat
    graph_def = proto.GraphDef()
    x = graph_def.node.add(name="input0", op="Placeholder")
    x.attr["dtype"].type = FLOAT
    rng = np.random.default_rng(0)
    _const(graph_def, "w", rng.random((16, 32)))
    _const(graph_def, "b", rng.random(32))
    _const(graph_def, "s", np.ones((64, 64)), splat=True)
    mm = graph_def.node.add(name="mm", op="MatMul", input=["input0", "w"])
    mm.attr["T"].type = FLOAT
    add = graph_def.node.add(name="out", op="AddV2", input=["mm", "b", "^s"])
    add.attr["T"].type = FLOAT
    return graph_def


# ----------------------------------------------------------------- erasing (protobuf only)

def test_erase_keeps_every_node_dtype_and_shape_but_not_large_values() -> None:
    graph_def = _segment()
    before = graph_def.SerializeToString(deterministic=True)
    light = erase_large_constants(graph_def)
    assert graph_def.SerializeToString(deterministic=True) == before  # input untouched
    assert [(n.name, n.op, list(n.input)) for n in light.node] == [
        (n.name, n.op, list(n.input)) for n in graph_def.node]
    old, new = ({n.name: n for n in g.node} for g in (graph_def, light))
    # w (2 KiB of values) loses them; b (128 bytes) and the splat s (one value) keep theirs
    assert not _has_values(new["w"]) and new["w"].attr["dtype"].type == FLOAT
    assert new["w"].attr["value"].tensor.dtype == FLOAT
    assert [d.size for d in new["w"].attr["value"].tensor.tensor_shape.dim] == [16, 32]
    assert new["w"].ByteSize() < 64
    for name in ("b", "s", "mm", "out", "input0"):
        assert new[name] == old[name], name


def test_threshold_is_on_the_whole_node_def_as_aws_does() -> None:
    graph_def = proto.GraphDef()
    node = _const(graph_def, "", np.zeros(240))  # 960 bytes of values
    node.name = "c" * (LARGE_CONSTANT_BYTES + 1 - node.ByteSize() - 2)  # tag, length, name
    assert node.ByteSize() == LARGE_CONSTANT_BYTES + 1
    bigger = graph_def.node.add()
    bigger.CopyFrom(node)
    node.name = node.name[1:]
    assert node.ByteSize() == LARGE_CONSTANT_BYTES
    light = erase_large_constants(graph_def)
    assert [_has_values(n) for n in light.node] == [True, False]


def _spec(graph_def_bytes: bytes, executable: bytes) -> neuron_op.NeuronOpSpec:
    return neuron_op.NeuronOpSpec(
        graph_def=graph_def_bytes, input_names=("input0:0",), input_dtypes=(FLOAT,),
        input_shapes=((1, 16),), output_names=("out:0",), output_dtypes=(FLOAT,),
        output_shapes=((1, 32),), executable=executable, input_batch_axis=(-1,),
        output_batch_axis=(-1,), model_config=(1, 1, 64, 10))


def test_the_full_subgraph_comes_from_the_program() -> None:
    full = _segment()
    erased = erase_large_constants(full).SerializeToString()
    header = exe.ExecutableHeader(batch_size=1, pipeline_cores=1, parameter_bytes=0, flops=0,
                                  input_names=("input0:0",), output_names=("out:0",))
    program = exe.pack(header, full.SerializeToString(deterministic=True))
    got = full_subgraph(_spec(erased, program), "op")
    assert got.graph_def == full and got.input_names == ("input0:0",)
    # nothing compiled it: the graph_def is whole
    assert full_subgraph(_spec(full.SerializeToString(), b"")).graph_def == full
    with pytest.raises(SubgraphError, match="cannot be rebuilt"):  # another toolchain's NEFF
        full_subgraph(_spec(erased, b"NEFF\x00\x01"), "op")
    tampered = bytearray(program)
    tampered[-5] ^= 0xFF
    with pytest.raises(SubgraphError, match="NeuronOp op: executable payload does not match"):
        full_subgraph(_spec(erased, bytes(tampered)), "op")


# ----------------------------------------------------------------------- compiled fixtures

@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    out = {}
    for name in ("keras_dense", "tf1_conv", "strings_dense"):
        folder = tmp_path_factory.mktemp(name)
        neuroncli.saved_model.compile(FIXTURES / name, folder / "c",
                                      model_feed_dict=_inputs(name),
                                      compiler_workdir=str(folder / "work"))
        out[name] = (folder / "c", folder / "work")
    return out


def _neuron_ops(model_dir: Path) -> list:
    meta_graph = read_saved_model(str(model_dir)).saved_model.meta_graphs[0]
    return [node for _, node in neuron_op.iter_neuron_op_nodes(meta_graph)]


def _workdir_segments(work: Path) -> list[proto.GraphDef]:
    index = json.loads((work / "segments.json").read_text())
    return [proto.GraphDef.FromString((work / s["folder"] / "graph_def.pb").read_bytes())
            for s in index if s["compiled"]]


@pytest.mark.parametrize("name", ["keras_dense", "tf1_conv", "strings_dense"])
def test_compiled_graph_def_has_the_structure_without_large_values(compiled: dict,
                                                                    name: str) -> None:
    target, work = compiled[name]
    full = {tuple(n.name for n in g.node): g for g in _workdir_segments(work)}
    ops = _neuron_ops(target)
    assert len(ops) == len(full) == 1
    for op in ops:
        light = proto.GraphDef.FromString(op.attr["graph_def"].s)
        whole = full[tuple(n.name for n in light.node)]  # the workdir keeps the whole segment
        erased = 0
        for a, b in zip(light.node, whole.node):
            assert (a.op, list(a.input), sorted(a.attr)) == (b.op, list(b.input), sorted(b.attr))
            if a.op != "Const":
                assert a == b
                continue
            ta, tb = a.attr["value"].tensor, b.attr["value"].tensor
            assert (ta.dtype, ta.tensor_shape) == (tb.dtype, tb.tensor_shape)
            if b.ByteSize() > LARGE_CONSTANT_BYTES:
                assert not _has_values(a) and _has_values(b)
                erased += 1
            else:
                assert a == b
        # keras_dense: the two kernels (2 KiB, 1 KiB); tf1_conv and strings_dense: none that big
        assert erased == {"keras_dense": 2}.get(name, 0)


@pytest.mark.parametrize("name", ["keras_dense", "tf1_conv", "strings_dense"])
def test_compiled_model_verifies_against_the_original(compiled: dict, name: str) -> None:
    result = subprocess.run([script("neuron-verify"), str(FIXTURES / name),
                             str(compiled[name][0]), "--inputs",
                             str(FIXTURES / f"{name}.inputs.npz")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_recompile_is_byte_identical(compiled: dict, tmp_path: Path) -> None:
    again = tmp_path / "again"
    neuroncli.saved_model.compile(FIXTURES / "keras_dense", again,
                                  model_feed_dict=_inputs("keras_dense"))
    assert tree_digest(again) == tree_digest(compiled["keras_dense"][0])


def test_rewrites_and_inspect_work_on_the_erased_model(compiled: dict, tmp_path: Path) -> None:
    target = compiled["keras_dense"][0]
    (op,) = _neuron_ops(target)
    x2, nc1 = tmp_path / "x2", tmp_path / "nc1"
    for command in (["tf-neuron-auto-multicore", str(target), "--num_cores", "2",
                     "--new_model_dir", str(x2)],
                    ["neuron-place", str(target), "--new_model_dir", str(nc1),
                     "--start-nc", "1", "--nc-count", "1"]):
        result = subprocess.run([script(command[0]), *command[1:]], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
    for rewritten in (x2, nc1):
        (new,) = _neuron_ops(rewritten)
        assert new.attr["graph_def"].s == op.attr["graph_def"].s
        assert new.attr["executable"].s == op.attr["executable"].s
    inspect = subprocess.run([script("neuron-inspect"), str(x2), "--json"],
                             capture_output=True, text=True, check=True)
    (desc,) = json.loads(inspect.stdout)["meta_graphs"][0]["neuron_ops"]
    header, _ = exe.read_header(op.attr["executable"].s)
    assert desc["executable_bytes"] == len(op.attr["executable"].s)
    assert desc["program"]["parameter_bytes"] == header.parameter_bytes >= 3232
    inputs = _inputs("keras_dense")
    model = neuroncli.load(x2)
    assert model.cores == (0, 1)
    np.testing.assert_allclose(model(**inputs)["output_0"],
                               run_savedmodel(FIXTURES / "keras_dense", inputs)["output_0"],
                               rtol=1e-5, atol=1e-6)


def _strings_then_dense(directory: Path) -> None:
    """A string parse whose rows are unknown until run time, then a 64x64 Dense (16 KiB):
    without example inputs the Dense segment has an unknown batch, and falls back to CPU."""
    code = f"""
import os; os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf
class M(tf.Module):
    def __init__(self):
        self.kernel = tf.Variable(np.random.default_rng(5).random((64, 64), dtype=np.float32))
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="csv")])
    def serve(self, csv):
        values = tf.strings.to_number(tf.strings.split(csv, ",").to_tensor("0"))
        return {{"y": tf.nn.relu(tf.matmul(tf.reshape(values, [-1, 64]), self.kernel))}}
m = M()
tf.saved_model.save(m, {str(directory)!r}, signatures={{"serving_default": m.serve}})
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cpu_fallback_keeps_its_constants(tmp_path: Path) -> None:
    _strings_then_dense(tmp_path / "model")
    counts = neuroncli.saved_model.compile(tmp_path / "model", tmp_path / "fb")
    assert counts["neuron_ops"] == 0
    with pytest.raises(ValueError, match="1 segment.s. failed to compile"):  # fell back
        neuroncli.saved_model.compile(tmp_path / "model", tmp_path / "strict",
                                      compiler_args="--must-compile")
    graph_def = read_saved_model(str(tmp_path / "fb")).saved_model.meta_graphs[0].graph_def
    (kernel,) = [n for n in graph_def.node if n.op == "Const"
                 and n.ByteSize() > LARGE_CONSTANT_BYTES]
    assert len(kernel.attr["value"].tensor.tensor_content) == 64 * 64 * 4
    csv = np.array([",".join(str(i % 7) for i in range(64))] * 3)
    np.testing.assert_allclose(neuroncli.load(tmp_path / "fb")(csv=csv)["y"],
                               run_savedmodel(tmp_path / "model", {"csv": csv})["y"],
                               rtol=1e-5)


def test_compiled_resnet50_holds_each_weight_once(zoo_root: Path, tmp_path: Path) -> None:
    from tests import zoo
    original = zoo.build("resnet50", zoo_root)
    target = tmp_path / "resnet50"
    neuroncli.saved_model.compile(original, target)
    meta_graph = select_meta_graph(read_saved_model(str(original)).saved_model, None)
    _, signature = select_signature(meta_graph)
    weight_bytes = weights.read_weight_bytes(meta_graph, signature)
    assert weight_bytes == 102_546_848  # 25.6 M float32 parameters, BatchNorm statistics too
    size = (target / "saved_model.pb").stat().st_size
    assert weight_bytes <= size <= 1.2 * weight_bytes  # was 2.0x: graph_def and program
    for op in _neuron_ops(target):
        light = proto.GraphDef.FromString(op.attr["graph_def"].s)
        assert all(n.ByteSize() <= LARGE_CONSTANT_BYTES or not _has_values(n)
                   for n in light.node if n.op == "Const")


# ------------------------------------------------------------------ the up-front estimate

def _meta_and_signature(model_dir: Path) -> tuple:
    saved_model = proto.SavedModel.FromString((model_dir / "saved_model.pb").read_bytes())
    meta_graph = saved_model.meta_graphs[0]
    return saved_model, meta_graph, select_signature(meta_graph)[1]


def _variable_bytes(node) -> int:
    return _variable_bytes_of(node.variable.shape)


def _variable_bytes_of(shape) -> int:
    return int(np.prod([d.size for d in shape.dim])) * 4  # float32


def test_estimate_counts_the_read_variables_not_keras_duplicates() -> None:
    # Keras 3's export declares every weight twice: the model's variables, read by the
    # signature, and ``_all_variables/...`` duplicates that nothing reads.
    _, meta_graph, signature = _meta_and_signature(FIXTURES / "keras_dense")
    objects = meta_graph.object_graph_def
    variables = [i for i, n in enumerate(objects.nodes) if n.WhichOneof("kind") == "variable"]
    (sig_call,) = [n for n in meta_graph.graph_def.node
                   if n.name == signature.outputs["output_0"].name.split(":")[0]]
    read = list(objects.concrete_functions[sig_call.attr["f"].func.name].bound_inputs)
    unused = [i for i in variables if i not in read]
    assert len(read) == len(unused) == 4
    used_bytes = sum(_variable_bytes(objects.nodes[i]) for i in read)
    assert used_bytes == 3232 == sum(_variable_bytes(objects.nodes[i]) for i in unused)
    assert weights.read_weight_bytes(meta_graph, signature) == used_bytes
    for index, grows in ((unused[0], False), (read[0], True)):
        shape = objects.nodes[index].variable.shape
        saved = proto.TensorShapeProto()
        saved.CopyFrom(shape)
        shape.Clear()
        shape.dim.add(size=50000)
        shape.dim.add(size=50000)
        extra = 50000 * 50000 * 4 - _variable_bytes_of(saved) if grows else 0
        assert weights.read_weight_bytes(meta_graph, signature) == used_bytes + extra
        shape.CopyFrom(saved)


def test_estimate_follows_tf1_outputs_to_their_variables() -> None:
    # tf1_conv: probs <- conv(image, kernel) + bias; an unread VariableV2 does not count.
    _, meta_graph, signature = _meta_and_signature(FIXTURES / "tf1_conv")
    assert weights.read_weight_bytes(meta_graph, signature) == 448
    orphan = meta_graph.graph_def.node.add(name="orphan", op="VariableV2")
    orphan.attr["dtype"].type = FLOAT
    orphan.attr["shape"].shape.dim.add(size=1 << 20)
    assert weights.read_weight_bytes(meta_graph, signature) == 448
    meta_graph.graph_def.node.add(name="orphan/read", op="Identity", input=["orphan"])
    (out,) = [n for n in meta_graph.graph_def.node
              if n.name == signature.outputs["probs"].name.split(":")[0]]
    out.input.append("^orphan/read")  # a control edge is followed too, as freezing does
    assert weights.read_weight_bytes(meta_graph, signature) == 448 + 4 * (1 << 20)


def _tf2_meta_graph(depth: int = 1) -> tuple:
    """A hand-built TF2 meta graph: ``y = call f(x, h1, h2)`` where ``f`` passes its captures
    down ``depth`` nested calls to a function that reads only the first (``h2``, 1 MiB,
    is captured but never read).  Object graph: node 1 is h1's variable, node 2 is h2's."""
    meta_graph = proto.MetaGraphDef()
    graph_def = meta_graph.graph_def
    graph_def.node.add(name="x", op="Placeholder")
    for name, size in (("h1", 8), ("h2", 1 << 18)):
        handle = graph_def.node.add(name=name, op="VarHandleOp")
        handle.attr["dtype"].type = FLOAT
        handle.attr["shape"].shape.dim.add(size=size)
    call = graph_def.node.add(name="y", op="StatefulPartitionedCall", input=["x", "h1", "h2"])
    call.attr["f"].func.name = "f0"
    for level in range(depth):
        function = graph_def.library.function.add()
        function.signature.name = f"f{level}"
        for arg in ("x", "r1", "r2"):
            function.signature.input_arg.add(name=arg)
        if level + 1 < depth:
            inner = function.node_def.add(name="call", op="PartitionedCall",
                                          input=["x", "r1", "r2"])
            inner.attr["f"].func.name = f"f{level + 1}"
            function.ret["out"] = "call:output:0"
        else:
            function.node_def.add(name="read", op="ReadVariableOp", input=["r1"])
            function.node_def.add(name="mm", op="MatMul", input=["x", "read:value:0"])
            function.ret["out"] = "mm:product:0"
    objects = meta_graph.object_graph_def
    objects.nodes.add().user_object.identifier = "root"
    for size in (8, 1 << 18):
        variable = objects.nodes.add().variable
        variable.dtype = FLOAT
        variable.shape.dim.add(size=size)
    objects.concrete_functions["f0"].bound_inputs.extend([1, 2])
    signature = meta_graph.signature_def["serving_default"]
    signature.outputs["y"].name = "y:0"
    return meta_graph, signature


@pytest.mark.parametrize("depth", [1, 3, 500])
def test_estimate_follows_captures_through_nested_calls(depth: int) -> None:
    meta_graph, signature = _tf2_meta_graph(depth)
    found = sorted(v.key for v in read_variables(meta_graph, signature))
    if depth <= MAX_CALL_DEPTH:
        assert found == ["object:1"]
        assert weights.read_weight_bytes(meta_graph, signature) == 32
    else:  # too deep to follow (a hostile library): assumed read, and no RecursionError
        assert found == ["object:1", "object:2"]


@pytest.mark.parametrize("name", ["keras_dense", "tf1_conv", "mobilenetv2", "transformer"])
def test_estimate_matches_what_freezing_produces(name: str, zoo_root: Path) -> None:
    from neuroncli.compiler.freeze import freeze
    from tests import zoo
    model = FIXTURES / name if (FIXTURES / name).is_dir() else zoo.build(name, zoo_root)
    meta_graph = select_meta_graph(read_saved_model(str(model)).saved_model, None)
    key, signature = select_signature(meta_graph)
    estimate = weights.read_weight_bytes(meta_graph, signature)
    frozen = freeze(str(model), meta_graph, key, signature)
    consts = sum(int(np.prod([d.size for d in n.attr["value"].tensor.tensor_shape.dim]))
                 * proto.dtype_size(n.attr["value"].tensor.dtype)
                 for n in frozen.graph_def.node if n.op == "Const")
    # the frozen graph adds a few small constants of its own (axes, shapes, epsilons)
    assert estimate <= consts <= 1.03 * estimate


# ---------------------------------------------------------------------------- slow: VGG16

def _export_vgg16(directory: Path) -> None:
    """Keras 3's VGG16 with random (seeded) weights, exported with ``model.export``: 138 M
    parameters, 553 MB, which its export declares twice.  Built in a child process."""
    code = f"""
import os; os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
keras.utils.set_random_seed(14)
model = keras.applications.VGG16(weights=None)
model.export({str(directory)!r}, verbose=False)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_vgg16_compiles_with_defaults_and_verifies(tmp_path: Path) -> None:
    model = tmp_path / "vgg16"
    _export_vgg16(model)
    meta_graph = select_meta_graph(read_saved_model(str(model)).saved_model, None)
    _, signature = select_signature(meta_graph)
    declared = sum(_variable_bytes(n) for n in meta_graph.object_graph_def.nodes
                   if n.WhichOneof("kind") == "variable")
    read = weights.read_weight_bytes(meta_graph, signature)
    assert read == 138_357_544 * 4 and declared == 2 * read  # was refused at 1.11 GB
    compiled = tmp_path / "vgg16_neuron"
    result = subprocess.run([script("neuron-compile"), str(model), str(compiled), "--verify",
                             "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # once, not twice (a little under: TensorFlow stores the zero biases as no values)
    assert 0.99 * read <= (compiled / "saved_model.pb").stat().st_size <= 1.01 * read
