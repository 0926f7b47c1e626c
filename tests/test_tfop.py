"""The NeuronOp op library: compiled models through TensorFlow's own loaders.

tf.saved_model.load (TF2 and TF1 fixtures, trace().save() outputs), keras.layers.TFSMLayer,
tf.compat.v1.saved_model.load + sess.run by tensor names, placed and auto-multicore'd
models, dynamic batch through the kernel, the kernel's errors, and without the library
TensorFlow's own "Op type not registered".  Numbers are compared with neuroncli.load and the
original model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neuroncli
import neuroncli.runtime as rt
from neuroncli.format.executable import FORMAT_VERSION, MAGIC, pack, read_header
from neuroncli.runtime.reference import ReferenceModel
from neuroncli.savedmodel import read_saved_model
from neuroncli.tfop import load_library
from tests.conftest import script
from tests.test_runtime_support import compile_model, edit_neuron_ops

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.timeout(600)



def _inputs(fixtures_dir: Path, name: str, rows: int) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / f"{name}.inputs.npz") as data:
        return {k: np.resize(data[k], (rows, *data[k].shape[1:])) for k in data.files}


@pytest.fixture(scope="module")
def library() -> object:
    return load_library()


@pytest.fixture(scope="module")
def compiled(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tfop")
    return {name: compile_model(fixtures_dir / name, root / name, batch_size=1)
            for name in ("keras_dense", "tf1_conv", "strings_dense")}


def _simulated(model_dir: Path, feeds: dict) -> dict[str, np.ndarray]:
    with rt.load(model_dir, runtime=rt.NeuronRuntime("inf2.xlarge", environ={})) as model:
        return model(**feeds)


@pytest.mark.parametrize("name", ["keras_dense", "tf1_conv", "strings_dense"])
def test_tf_saved_model_load_matches_neuroncli_and_the_original(
        library: object, compiled: dict, fixtures_dir: Path, name: str) -> None:
    feeds = _inputs(fixtures_dir, name, 1)
    if name == "strings_dense":
        feeds = {k: v.astype(object) for k, v in feeds.items()}
    serving = tf.saved_model.load(str(compiled[name])).signatures["serving_default"]
    got = {k: v.numpy() for k, v in serving(**{k: tf.constant(v) for k, v in feeds.items()})
           .items()}
    simulated = _simulated(compiled[name], feeds)
    original = ReferenceModel(fixtures_dir / name)(feeds)
    assert sorted(got) == sorted(original)
    for key in got:
        if got[key].dtype == object:
            assert got[key].tolist() == original[key].tolist() == simulated[key].tolist()
            continue
        np.testing.assert_array_equal(got[key], simulated[key])
        np.testing.assert_allclose(got[key], original[key], rtol=1e-5, atol=1e-6)


def test_keras_tfsm_layer(library: object, compiled: dict, fixtures_dir: Path) -> None:
    layer = keras.layers.TFSMLayer(str(compiled["keras_dense"]), call_endpoint="serving_default")
    x = _inputs(fixtures_dir, "keras_dense", 1)["features"]
    got = layer(tf.constant(x))["output_0"].numpy()
    np.testing.assert_allclose(got, ReferenceModel(fixtures_dir / "keras_dense")(
        {"features": x})["output_0"], rtol=1e-5, atol=1e-6)


def test_tf1_loader_and_session_run_by_tensor_names(library: object, compiled: dict,
                                                    fixtures_dir: Path) -> None:
    feeds = _inputs(fixtures_dir, "tf1_conv", 1)
    # A TF1 client fetches the tensor names it knew from the original model.
    original = read_saved_model(fixtures_dir / "tf1_conv").saved_model
    signature = original.meta_graphs[0].signature_def["serving_default"]
    names = {k: signature.outputs[k].name for k in ("probs", "mean")}
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        tf.compat.v1.saved_model.load(sess, ["serve"], str(compiled["tf1_conv"]))
        got = sess.run(names, {signature.inputs[k].name: v for k, v in feeds.items()})
        assert any(op.type == "NeuronOp" for op in sess.graph.get_operations())
    want = ReferenceModel(fixtures_dir / "tf1_conv")(feeds)
    for key in names:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_aws_trace_example_reloads_with_tf_saved_model_load(library: object,
                                                            tmp_path: Path) -> None:
    # AWS's trace page, with tf.saved_model.load in place of Keras 2's load_model.
    input0 = keras.layers.Input((3,))
    dense0 = keras.layers.Dense(3, bias_initializer="random_normal")(input0)
    model = keras.Model(inputs=[input0], outputs=[dense0])
    example_inputs = tf.random.uniform([1, 3])
    model_neuron = neuroncli.trace(model, example_inputs)
    model_dir = tmp_path / "model_neuron"
    model_neuron.save(model_dir)
    model_neuron_reloaded = tf.saved_model.load(str(model_dir))
    x = tf.random.uniform([1, 3], seed=7)
    (got,) = model_neuron_reloaded.signatures["serving_default"](x).values()
    np.testing.assert_allclose(got.numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.numpy(), model_neuron(x).numpy(), rtol=1e-6)


def test_placed_and_auto_multicore_models_load(library: object, compiled: dict,
                                               fixtures_dir: Path, tmp_path: Path) -> None:
    source = compiled["keras_dense"]
    for argv in ([script("tf-neuron-auto-multicore"), str(source), "--num_cores", "4",
                  "--new_model_dir", str(tmp_path / "mc")],
                 [script("neuron-place"), str(source), "--new_model_dir", str(tmp_path / "pl"),
                  "--start-nc", "1", "--nc-count", "2"]):
        done = subprocess.run(argv, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    x = _inputs(fixtures_dir, "keras_dense", 1)["features"]
    want = ReferenceModel(fixtures_dir / "keras_dense")({"features": x})["output_0"]
    for name in ("mc", "pl"):
        serving = tf.saved_model.load(str(tmp_path / name)).signatures["serving_default"]
        np.testing.assert_allclose(serving(features=tf.constant(x))["output_0"].numpy(), want,
                                   rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def dynamic(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_model(fixtures_dir / "tf1_conv", tmp_path_factory.mktemp("dyn") / "conv",
                         batch_size=2, compiler_args="--dynamic-batch-size")


def test_dynamic_batch_shards_through_the_kernel(library: object, dynamic: Path,
                                                 fixtures_dir: Path) -> None:
    serving = tf.saved_model.load(str(dynamic)).signatures["serving_default"]
    # AWS's shape function: a dynamic-batch output has an unknown batch dimension.
    assert serving.structured_outputs["probs"].shape.as_list() == [None, 8, 8, 4]
    reference = ReferenceModel(fixtures_dir / "tf1_conv")
    for rows in (1, 2, 3, 7):
        feeds = {k: np.random.default_rng(rows).standard_normal(v.shape).astype(np.float32)
                 for k, v in _inputs(fixtures_dir, "tf1_conv", rows).items()}
        got = serving(**{k: tf.constant(v) for k, v in feeds.items()})
        simulated = _simulated(dynamic, feeds)
        want = reference(feeds)
        for key in ("probs", "mean"):
            assert got[key].shape[0] == rows
            np.testing.assert_array_equal(got[key].numpy(), simulated[key])
            np.testing.assert_allclose(got[key].numpy(), want[key], rtol=1e-5, atol=1e-6)
    empty = serving(image=tf.zeros([0, 8, 8, 3]), bias_map=tf.zeros([0, 8, 8, 4]))
    assert empty["probs"].shape == (0, 8, 8, 4) and empty["mean"].shape == (0, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="inputs disagree on the batch"):
        serving(image=tf.zeros([3, 8, 8, 3]), bias_map=tf.zeros([2, 8, 8, 4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expects \(\?, 8, 8, 3\)"):
        serving(image=tf.zeros([3, 8, 8, 5]), bias_map=tf.zeros([3, 8, 8, 4]))


class _BatchMean(tf.Module):
    """Rows centred on the batch mean: the compiler keeps its batch static."""

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="features")])
    def __call__(self, features: tf.Tensor) -> tf.Tensor:
        h = tf.nn.relu(features * 2.0)
        return tf.tanh(h - tf.reduce_mean(h, axis=0, keepdims=True))


def test_a_fixed_shape_program_refuses_another_batch(library: object, tmp_path: Path) -> None:
    module = _BatchMean()
    tf.saved_model.save(module, str(tmp_path / "model"),
                        signatures=module.__call__.get_concrete_function())
    compile_model(tmp_path / "model", tmp_path / "static", batch_size=1)
    serving = tf.saved_model.load(str(tmp_path / "static")).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"has shape \(2, 16\) but the program was compiled for exactly "
                             r"\(1, 16\).*--dynamic-batch-size"):
        serving(features=tf.zeros([2, 16]))


def _corrupt(node) -> None:
    data = bytearray(node.attr["executable"].s)
    data[-1] ^= 0xFF
    node.attr["executable"].s = bytes(data)


def _foreign(node) -> None:  # what AWS's neuron-cc writes: a NEFF, not our container
    node.attr["executable"].s = b"NEFF" + b"\0" * 60 + node.attr["executable"].s[64:]


def _newer(node) -> None:
    header, offset = read_header(node.attr["executable"].s)
    blob = pack(header, node.attr["executable"].s[offset:])
    node.attr["executable"].s = MAGIC + (FORMAT_VERSION + 1).to_bytes(2, "little") + blob[10:]


def _uncompiled(node) -> None:
    node.attr["executable"].s = b""


@pytest.mark.parametrize("edit, message", [
    (_corrupt, "does not match its checksum"),
    (_foreign, "not a neuroncli program .*needs Neuron hardware"),
    (_newer, f"format version {FORMAT_VERSION + 1} is not supported"),
    (_uncompiled, "never compiled"),
])
def test_bad_executables_are_invalid_argument(library: object, compiled: dict,
                                              tmp_path: Path, edit, message: str) -> None:
    broken = edit_neuron_ops(compiled["keras_dense"], tmp_path / "broken", edit)
    serving = tf.saved_model.load(str(broken)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"NeuronOp neuron_op_.*{message}"):
        serving(features=tf.zeros([1, 16]))


_LOAD = ("import sys, numpy as np\n"
         "m = tf.saved_model.load(sys.argv[1])\n"
         "out = m.signatures['serving_default'](features=tf.ones([1, 16]))\n"
         "print(float(np.sum(out['output_0'].numpy())))\n")


@pytest.mark.parametrize("prologue", [
    "import neuroncli\nassert 'tensorflow' not in sys.modules\nimport tensorflow as tf\n",
    "import tensorflow as tf\nimport neuroncli\n",
    "import neuroncli.tensorflow\nimport tensorflow as tf\n",
    # neuroncli.load imports TensorFlow itself, after neuroncli.proto has looked the wheel up
    # with importlib.util.find_spec (which must not use up the import hook)
    "import neuroncli\nimport importlib.util\nimportlib.util.find_spec('tensorflow')\n"
    "neuroncli.load(sys.argv[1])\nimport tensorflow as tf\n",
], ids=["neuroncli-first", "tensorflow-first", "import-neuroncli.tensorflow",
        "neuroncli.load-imports-tensorflow"])
def test_either_import_order_registers_the_op(library: object, compiled: dict,
                                              prologue: str) -> None:
    code = "import sys\n" + prologue + _LOAD
    done = subprocess.run([sys.executable, "-c", code, str(compiled["keras_dense"])],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert abs(float(done.stdout.split()[-1]) - 1.0) < 1e-5  # softmax rows sum to 1


def test_tensorflow_alone_still_says_op_type_not_registered(compiled: dict) -> None:
    code = "import sys\nimport tensorflow as tf\n" + _LOAD
    done = subprocess.run([sys.executable, "-c", code, str(compiled["keras_dense"])],
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "Op type not registered 'NeuronOp'" in done.stderr


_FAKE_TF = ("import sys, types\n"
            "from neuroncli.tfop import build\n"
            "tf = types.SimpleNamespace(__version__='0.0-test', __file__=sys.argv[1] + '/tf.py',\n"
            "    sysconfig=types.SimpleNamespace(get_compile_flags=lambda: ['-DX'],\n"
            "                                    get_link_flags=lambda: []))\n")
# A stand-in compiler: records each run, takes a while (so the two builds overlap), and
# writes the output file it was asked for.
_FAKE_CXX = """#!/bin/sh
echo run >> "$(dirname "$0")/runs"
sleep 2
while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
echo library > "$out"
"""


def test_concurrent_first_uses_build_once(tmp_path: Path) -> None:
    compiler = tmp_path / "fake-cxx"
    compiler.write_text(_FAKE_CXX)
    compiler.chmod(0o755)
    code = _FAKE_TF + "r = build.ensure_built(tf)\nprint(r.built, r.path)\n"
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "CXX": str(compiler)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    built = sorted(out.split()[0] for out, _ in results)
    paths = {out.split()[1] for out, _ in results}
    assert built == ["False", "True"] and len(paths) == 1
    assert (tmp_path / "runs").read_text().count("run") == 1
    library = Path(paths.pop())
    assert library.read_text() == "library\n"
    assert library.parent.name.startswith("tfop-tf0.0-test-")  # keyed by the TF version


@pytest.mark.parametrize("broken, notice", [
    ("compiler", "neuroncli: no C++ compiler (g++, or set CXX) to build the NeuronOp library: "
                 "tf.saved_model.load cannot run compiled models in this process; "
                 "neuroncli.load still works"),
    ("cache", "neuroncli: cannot write the NeuronOp library's cache"),
])
def test_without_the_library_one_line_and_neuroncli_load_still_works(
        compiled: dict, tmp_path: Path, broken: str, notice: str) -> None:
    code = ("import sys\nimport neuroncli\nimport tensorflow as tf\nimport numpy as np\n"
            "m = neuroncli.load(sys.argv[1])\n"
            "print(float(np.sum(m(features=np.ones((1, 16), np.float32))['output_0'])))\n"
            "tf.saved_model.load(sys.argv[1]).signatures['serving_default']("
            "features=tf.ones([1, 16]))\n")
    (tmp_path / "a-file").write_text("")
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XDG_CACHE_HOME": str(tmp_path / ("a-file" if broken == "cache" else "cache")),
           "CXX": str(tmp_path / "no-such-compiler")}
    done = subprocess.run([sys.executable, "-c", code, str(compiled["keras_dense"])],
                          capture_output=True, text=True, env=env)
    notices = [ln for ln in done.stderr.splitlines() if ln.startswith("neuroncli:")]
    assert len(notices) == 1 and notices[0].startswith(notice), done.stderr
    assert abs(float(done.stdout.split()[0]) - 1.0) < 1e-5
    assert done.returncode != 0 and "Op type not registered 'NeuronOp'" in done.stderr


@pytest.mark.parametrize("name", ["keras_dense", "tf1_conv"])
def test_extracted_weights_are_restored_by_tensorflows_loaders(
        library: object, fixtures_dir: Path, tmp_path: Path, name: str) -> None:
    # --extract-weights: the weights live in variables/; the compiled meta graph's saver_def
    # lets both TensorFlow loaders restore them before the NeuronOps read them as inputs.
    target = tmp_path / name
    neuroncli.saved_model.compile(fixtures_dir / name, target,
                                  compiler_args="--extract-weights inf2.xlarge")
    feeds = _inputs(fixtures_dir, name, 1)
    want = ReferenceModel(fixtures_dir / name)(feeds)
    simulated = _simulated(target, feeds)
    serving = tf.saved_model.load(str(target)).signatures["serving_default"]
    got = serving(**{k: tf.constant(v) for k, v in feeds.items()})
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        meta_graph = tf.compat.v1.saved_model.load(sess, ["serve"], str(target))
        signature = meta_graph.signature_def["serving_default"]
        session = sess.run({k: v.name for k, v in signature.outputs.items()},
                           {signature.inputs[k].name: v for k, v in feeds.items()})
    for key in want:
        np.testing.assert_array_equal(got[key].numpy(), simulated[key])
        np.testing.assert_array_equal(session[key], simulated[key])
        np.testing.assert_allclose(simulated[key], want[key], rtol=1e-5, atol=1e-6)


def test_concurrent_calls_share_one_kernel(library: object, dynamic: Path,
                                           fixtures_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor
    serving = tf.saved_model.load(str(dynamic)).signatures["serving_default"]
    reference = ReferenceModel(fixtures_dir / "tf1_conv")
    batches = []
    for rows in (1, 3, 4, 5, 2, 7, 1, 6):
        rng = np.random.default_rng(100 + rows)
        batches.append({"image": rng.standard_normal((rows, 8, 8, 3)).astype(np.float32),
                        "bias_map": rng.standard_normal((rows, 8, 8, 4)).astype(np.float32)})

    def call(feeds: dict) -> dict:
        return {k: v.numpy() for k, v in serving(**feeds).items()}

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, batches * 3))
    for feeds, got in zip(batches * 3, results):
        want = reference(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_console_scripts_neither_build_nor_mention_the_library(compiled: dict,
                                                               tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "CXX": str(tmp_path / "no-compiler")}
    done = subprocess.run([script("neuron-run"), str(compiled["keras_dense"])],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "neuroncli:" not in done.stderr and "NeuronOp library" not in done.stderr
    assert not (tmp_path / "cache" / "neuroncli").exists() or not any(
        (tmp_path / "cache" / "neuroncli").glob("tfop-*"))
