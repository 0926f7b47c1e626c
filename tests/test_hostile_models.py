"""Hostile models: paths that leave the model directory, and stateful ops run at compile time.

A model whose files (``variables/``, ``assets/``, ``assets.extra/`` entries) or whose
``asset_file_def`` names point outside it must be refused with one ``error:`` line (exit 1) or
processed without reading or writing anything outside, by ``neuron-compile``,
``tf-neuron-auto-multicore`` and ``neuron-place``.  Two proofs of "never read": links to an
outside *sentinel* file whose bytes would show up in the output if copied, and links to an
outside named pipe (a *trap*) that a watcher thread sees the moment anyone opens it to read.

Compiling must run none of the model's stateful ops: models whose signature, resource
initializer, ``main_op`` or restore op writes a sentinel file are compiled and the file must
never appear (positive controls show that TensorFlow's own loaders do write it).  Finally a
source scan: no pickle, ``eval``/``exec`` or pickled ``np.load`` anywhere in ``neuroncli/``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from neuroncli import proto
from tests.conftest import FIXTURES, ROOT, script, tree_digest

SENTINEL = b"neuroncli-sentinel-" + secrets.token_hex(16).encode()


# ---- the outside world ---------------------------------------------------------------------

class Traps:
    """Named pipes nobody should open.  A reader's open blocks until a writer comes, and a
    non-blocking open for writing succeeds only while a reader waits: the watcher thread
    keeps trying, counts every reader and lets it go (it reads end-of-file)."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.opened: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def add(self, path: Path) -> Path:
        os.mkfifo(path)
        self.paths.append(path)
        return path

    def _watch(self) -> None:
        while not self._stop.is_set():
            for path in list(self.paths):
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # ENXIO: no reader (or the pipe is gone)
                    continue
                self.opened.append(str(path))
                os.close(fd)
            time.sleep(0.001)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Outside:
    """Things outside every model: a sentinel file, a trap, a directory holding both."""

    root: Path
    secret: Path
    pipe: Path
    folder: Path
    traps: Traps

    def listing(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.root)): (b"" if p.is_fifo() or p.is_dir()
                                                else p.read_bytes())
                for p in sorted(self.root.rglob("*"))}


@pytest.fixture
def outside(tmp_path: Path):
    root = tmp_path / "outside"
    folder = root / "folder"
    folder.mkdir(parents=True)
    traps = Traps()
    found = Outside(root, root / "secret.bin", traps.add(root / "pipe"), folder, traps)
    found.secret.write_bytes(SENTINEL)
    (folder / "secret.bin").write_bytes(SENTINEL)
    traps.add(folder / "variables.index")
    traps.add(folder / "vocab.txt")
    yield found
    traps.close()


# ---- hostile variants of a model -----------------------------------------------------------

def _replace(path: Path, make: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    make(path)


def _set_asset_filename(model: Path, filename: str) -> None:
    """Point the model's asset_file_def (every meta graph; one is added if none) at
    ``filename``."""
    pb = model / "saved_model.pb"
    sm = proto.SavedModel.FromString(pb.read_bytes())
    for mg in sm.meta_graphs:
        if not mg.asset_file_def:
            mg.asset_file_def.add().tensor_info.name = "asset_path:0"
        for asset in mg.asset_file_def:
            asset.filename = filename
    pb.write_bytes(sm.SerializeToString())


VARIANTS: dict[str, Callable[[Path, Outside], None]] = {
    "variables file links to an outside file": lambda m, o: _replace(
        m / "variables" / "extra.bin", lambda p: p.symlink_to(o.secret)),
    "variables index links to an outside pipe": lambda m, o: _replace(
        m / "variables" / "variables.index", lambda p: p.symlink_to(o.pipe)),
    "variables dir links outside": lambda m, o: _replace(
        m / "variables", lambda p: p.symlink_to(o.folder, target_is_directory=True)),
    "assets file links to an outside file": lambda m, o: _replace(
        m / "assets" / "vocab.txt", lambda p: p.symlink_to(o.secret)),
    "assets subdir links outside": lambda m, o: _replace(
        m / "assets" / "sub", lambda p: p.symlink_to(o.folder, target_is_directory=True)),
    "assets.extra file links to an outside pipe": lambda m, o: _replace(
        m / "assets.extra" / "tf_serving_warmup_requests", lambda p: p.symlink_to(o.pipe)),
    "a pipe inside variables": lambda m, o: _replace(
        m / "variables" / "pipe", lambda p: o.traps.add(p)),
    "asset_file_def climbs out with ..": lambda m, o: _set_asset_filename(
        m, os.path.relpath(o.folder / "vocab.txt", m / "assets")),
    "asset_file_def is an absolute path": lambda m, o: _set_asset_filename(
        m, str(o.folder / "vocab.txt")),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compiled") / "keras_dense_neuron"
    done = subprocess.run([script("neuron-compile"), str(FIXTURES / "keras_dense"), str(out),
                           "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def table_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF2 model whose lookup table TensorFlow fills from its asset when it loads it."""
    import tensorflow as tf
    root = tmp_path_factory.mktemp("table")
    vocab = root / "vocab.txt"
    vocab.write_text("a\nb\n")

    class Model(tf.Module):
        def __init__(self) -> None:
            init = tf.lookup.TextFileInitializer(
                str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER)
            self.table = tf.lookup.StaticHashTable(init, -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, s: tf.Tensor) -> dict:
            return {"ids": self.table.lookup(s)}

    model = Model()
    tf.saved_model.save(model, str(root / "model"), signatures={"serving_default": model.serve})
    return root / "model"


def _commands(compiled: Path, table_model: Path) -> dict[str, tuple[Path, Callable]]:
    return {
        "neuron-compile TF2": (FIXTURES / "keras_dense", lambda m, o: [
            script("neuron-compile"), str(m), str(o)]),
        "neuron-compile TF1": (FIXTURES / "tf1_conv", lambda m, o: [
            script("neuron-compile"), str(m), str(o)]),
        "neuron-compile TF2 table": (table_model, lambda m, o: [
            script("neuron-compile"), str(m), str(o)]),
        "tf-neuron-auto-multicore": (compiled, lambda m, o: [
            script("tf-neuron-auto-multicore"), str(m), "--num_cores", "2",
            "--new_model_dir", str(o)]),
        "neuron-place": (compiled, lambda m, o: [
            script("neuron-place"), str(m), "--new_model_dir", str(o), "--start-nc", "0",
            "--nc-count", "1"]),
    }


COMMANDS = ["neuron-compile TF2", "neuron-compile TF1", "tf-neuron-auto-multicore",
            "neuron-place"]
CASES = [(c, v) for c in COMMANDS for v in VARIANTS if not v.startswith("asset_file_def")] + [
    (c, v) for c in ("neuron-compile TF2 table", "neuron-compile TF1",
                     "tf-neuron-auto-multicore", "neuron-place")
    for v in VARIANTS if v.startswith("asset_file_def")]


@pytest.mark.parametrize("command,variant", CASES)
def test_paths_leaving_the_model(command: str, variant: str, compiled: Path, table_model: Path,
                                 outside: Outside, tmp_path: Path) -> None:
    base, make_args = _commands(compiled, table_model)[command]
    model = tmp_path / "model"
    shutil.copytree(base, model)
    VARIANTS[variant](model, outside)
    before_model, before_outside = tree_digest(model), outside.listing()
    out = tmp_path / "out"
    done = subprocess.run(make_args(model, out), capture_output=True, text=True, timeout=300)
    assert outside.traps.opened == [], f"{command} opened {outside.traps.opened}"
    assert outside.listing() == before_outside, "something was written outside"
    assert tree_digest(model) == before_model, "the input model changed"
    if done.returncode != 0:
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
        assert not out.exists()
        return
    for file in out.rglob("*"):
        assert not file.is_symlink(), file
        if file.is_file():
            assert SENTINEL not in file.read_bytes(), f"{file} holds the outside sentinel"


def test_a_model_directory_reached_through_a_link_is_fine(compiled: Path,
                                                          tmp_path: Path) -> None:
    """Only what is inside the model is checked: the model directory itself may be a link."""
    real = tmp_path / "real"
    shutil.copytree(compiled, real)
    (real / "variables").mkdir()
    (real / "variables" / "variables.index").write_bytes(b"index")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    done = subprocess.run([script("tf-neuron-auto-multicore"), str(tmp_path / "link"),
                           "--num_cores", "2", "--new_model_dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "variables" / "variables.index").read_bytes() == b"index"


# ---- stateful ops at compile time ----------------------------------------------------------

@pytest.fixture(scope="module")
def stateful_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name -> (model, the sentinel file its stateful op writes).  Each is checked to write
    its sentinel under TensorFlow's own loader (a positive control), which is then removed."""
    import tensorflow as tf
    root = tmp_path_factory.mktemp("stateful")
    models: dict[str, tuple[Path, Path]] = {}

    def sentinel(name: str) -> Path:
        return root / f"sentinel_{name}"

    class Signature(tf.Module):
        """The serving function writes a file, then computes."""

        def __init__(self) -> None:
            self.w = tf.Variable(tf.ones([4, 3]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x: tf.Tensor) -> dict:
            tf.io.write_file(str(sentinel("signature")), tf.strings.as_string(tf.reduce_sum(x)))
            return {"y": tf.matmul(x, self.w) + 1.0}

    class DynamicSignature(tf.Module):
        """The write is a control input of a tensor whose shape only a run can tell, the
        kind ``--inputs`` makes the compiler compute."""

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x: tf.Tensor) -> dict:
            write = tf.io.write_file(str(sentinel("dynamic")), "ran")
            with tf.control_dependencies([write]):
                unique = tf.unique(tf.reshape(x, [-1])).y
            return {"y": unique * 2.0}

    class WritingResource(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self) -> tf.Tensor:
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self) -> tf.Operation:
            tf.io.write_file(str(sentinel("initializer")), "ran")
            return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)

    class Initializer(tf.Module):
        """A resource whose initializer (run by tf.saved_model.load) writes a file."""

        def __init__(self) -> None:
            self.resource = WritingResource()
            self.w = tf.Variable(tf.ones([4, 3]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x: tf.Tensor) -> dict:
            scale = tf.raw_ops.ReadVariableOp(resource=self.resource.resource_handle,
                                              dtype=tf.float32)
            return {"y": tf.matmul(x, self.w) * scale}

    for name, cls in (("signature", Signature), ("dynamic", DynamicSignature),
                      ("initializer", Initializer)):
        module = cls()
        tf.saved_model.save(module, str(root / name), signatures={"serving_default":
                                                                  module.serve})
        models[name] = (root / name, sentinel(name))
    for name in ("main_op", "restore_op", "variable_control_input"):
        models[name] = (_tf1_writing_model(tf, root / name, sentinel(name), name),
                        sentinel(name))
    x = np.ones([1, 4], np.float32)
    # positive controls: TensorFlow's loaders and calls do run these writes
    for name in ("signature", "dynamic", "initializer"):
        loaded = tf.saved_model.load(str(models[name][0]))
        loaded.signatures["serving_default"](tf.constant(x))
    for name in ("main_op", "restore_op", "variable_control_input"):
        with tf.compat.v1.Session(graph=tf.Graph()) as sess:
            tf.compat.v1.saved_model.load(sess, ["serve"], str(models[name][0]))
    for name, (_, written) in models.items():
        assert written.exists(), f"positive control: {name} did not write its sentinel"
        written.unlink()
    np.savez(root / "x.npz", x=x)
    return models


def _tf1_writing_model(tf, path: Path, sentinel: Path, how: str) -> Path:
    """A TF1 SavedModel (builder) whose ``main_op``, restore op, or variable's control input
    writes ``sentinel``."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        w = v1.get_variable("w", initializer=tf.ones([4, 3]))
        y = tf.identity(tf.matmul(x, w) + 1.0, name="y")
        write = tf.io.write_file(str(sentinel), "ran", name="evil_write")
        main_op = tf.group(v1.global_variables_initializer(), write, name="evil_main")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            signature = v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": signature},
                main_op=main_op if how == "main_op" else None)
            builder.save()
    if sentinel.exists():
        sentinel.unlink()
    if how != "main_op":
        pb = path / "saved_model.pb"
        sm = proto.SavedModel.FromString(pb.read_bytes())
        mg = sm.meta_graphs[0]
        if how == "restore_op":  # the saver's restore op also runs the write
            restore = mg.graph_def.node.add(name="evil_restore", op="NoOp")
            restore.input.extend(["^" + mg.saver_def.restore_op_name.split(":")[0],
                                  "^evil_write"])
            mg.saver_def.restore_op_name = "evil_restore"
        else:  # anything that touches the variable runs the write first
            (variable,) = [n for n in mg.graph_def.node if n.name == "w"]
            variable.input.append("^evil_write")
        pb.write_bytes(sm.SerializeToString())
    return path


# Loading a model for the freeze would run some of its graph (resource initializers, the TF1
# restore op and what variables read) and the shape pass on --inputs runs more: each case is a
# WriteFile hidden in one of those places (neuroncli.compiler.sandbox refuses or avoids it).
@pytest.mark.parametrize("name,extra", [
    ("signature", ()),
    ("signature", ("--inputs", "x.npz")),
    ("dynamic", ()),
    ("dynamic", ("--inputs", "x.npz")),
    ("initializer", ()),
    ("main_op", ()),
    ("restore_op", ()),
    ("variable_control_input", ()),
])
def test_compile_runs_none_of_the_models_stateful_ops(
        name: str, extra: tuple[str, ...], stateful_models: dict, tmp_path: Path) -> None:
    model, sentinel = stateful_models[name]
    args = [a if a != "x.npz" else str(model.parent / "x.npz") for a in extra]
    done = subprocess.run([script("neuron-compile"), str(model), str(tmp_path / "out"), *args],
                          capture_output=True, text=True, timeout=300)
    assert not sentinel.exists(), f"compiling {name} ran its write"
    if done.returncode != 0:  # refusing the model is fine too, with one clear line
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("error: ")


# ---- no code execution from model data -----------------------------------------------------

_FORBIDDEN = [
    (re.compile(r"\bimport\s+(c?pickle|dill|marshal|shelve)\b|\bfrom\s+(c?pickle|dill|marshal|"
                r"shelve)\b"), "a pickle-family module"),
    (re.compile(r"(?<![\w.])(eval|exec)\s*\("), "eval/exec"),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load(allow_pickle=True)"),
    (re.compile(r"\byaml\.(unsafe_)?load\s*\("), "yaml.load"),
    (re.compile(r"\b(keras\.models\.)?load_model\s*\("), "keras load_model (runs Lambda code)"),
]


def test_no_code_execution_from_model_data() -> None:
    found = []
    for path in sorted((ROOT / "neuroncli").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, what in _FORBIDDEN:
                if pattern.search(code):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
    assert found == []


def test_npz_inputs_are_read_without_pickles(tmp_path: Path) -> None:
    from neuroncli.errors import UserError
    from neuroncli.runtime.inputs import load_npz
    source = (ROOT / "neuroncli" / "runtime" / "inputs.py").read_text()
    assert "allow_pickle=False" in source
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match="not a readable .npz"):
        load_npz(tmp_path / "objects.npz")
    np.savez(tmp_path / "plain.npz", x=np.ones(3, np.float32))
    assert load_npz(tmp_path / "plain.npz")["x"].tolist() == [1.0, 1.0, 1.0]
