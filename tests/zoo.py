"""Larger test/benchmark models built on the fly (never committed) and cached on disk.

``build(name, root)`` returns ``root/name``, a TF2 SavedModel (``keras.Model.export``: tag
``serve``, signatures ``serving_default`` and ``serve``, one float32 input with batch dim
``None``, one output ``output_0``), building it only when ``root/name/saved_model.pb`` is
missing.  Models (all weights random and seeded; biases, LayerNorm/BatchNorm gamma and beta
random and nonzero; BatchNorm moving statistics calibrated on a random batch and then
perturbed, so activations stay O(1) through deep nets instead of exploding or saturating):

==============  =============================================  ============  ===========
name            model                                          input key     input shape
==============  =============================================  ============  ===========
``resnet50``    keras.applications.ResNet50, 1000 classes      ``image``     [N,224,224,3]
``mobilenetv2`` keras.applications.MobileNetV2 alpha=0.35      ``image``     [N,96,96,3]
``transformer`` MHA(4 heads, key_dim 8) + LN + FFN(64, gelu)   ``sequence``  [N,16,32]
                + LN -> GlobalAveragePooling1D -> Dense(10)
``dense``       MLP 256 -> 1024 -> 1024 -> 256 -> 10, softmax  ``features``  [N,256]
==============  =============================================  ============  ===========

Building runs in a child Python process (``python tests/zoo.py --build-one NAME DIR``), so the
calling pytest worker or benchmark never imports Keras nor keeps its memory, and writes to a
temporary sibling of ``root/name`` that is renamed into place under an exclusive
``fcntl.flock`` on ``root/name.lock``: concurrent pytest-xdist workers build each model once
and never see a half-written directory.  Timings go to stderr and to ``root/name.build.json``.

``random_inputs(model_dir, batch, seed)`` makes a feed dict from the serving signature alone
(protobuf only; the model is not loaded or run).

Run ``.venv/bin/python tests/zoo.py [--root build/zoo] [NAME ...]`` to build and time models.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

MODELS = ("resnet50", "mobilenetv2", "transformer", "dense")
SEED = 20240
_BUILD_TIMEOUT_S = 1800

_built: dict[tuple[str, str], Path] = {}
_built_lock = threading.Lock()
#: ``name -> seconds`` for models built by this process (cache hits are not listed).
BUILD_SECONDS: dict[str, dict[str, float]] = {}


# --------------------------------------------------------------------------- public API

def build(name: str, root: str | os.PathLike) -> Path:
    """Path of the SavedModel ``root/name``, building it first if it is not there yet."""
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(MODELS)}")
    root = Path(root).resolve()
    final = root / name
    key = (name, str(root))
    with _built_lock:
        cached = _built.get(key)
        if cached is not None and (cached / "saved_model.pb").is_file():
            return cached
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f"{name}.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                if not (final / "saved_model.pb").is_file():
                    _build_locked(name, root, final)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        _built[key] = final
        return final


def random_inputs(model_dir: str | os.PathLike, batch: int = 1, seed: int = 0, *,
                  signature_def_key: str | None = None, tags: Iterable[str] | None = None,
                  unknown_dim: int | None = None) -> dict[str, np.ndarray]:
    """Random inputs for a SavedModel's signature, read from ``saved_model.pb`` only.

    The leading unknown dimension becomes ``batch``; any other unknown dimension becomes
    ``unknown_dim`` (a ``ValueError`` when not given).  Floats are standard normal, integers
    uniform in [0, 10), bools fair coins, strings decimal numbers as bytes (object arrays).
    """
    from neuroncli.savedmodel import read_saved_model, select_meta_graph, select_signature

    loaded = read_saved_model(model_dir)
    meta_graph = select_meta_graph(loaded.saved_model, None if tags is None else list(tags))
    _, signature = select_signature(meta_graph, signature_def_key)
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for key in sorted(signature.inputs):
        info = signature.inputs[key]
        if info.tensor_shape.unknown_rank:
            raise ValueError(f"input {key!r} has unknown rank: pass inputs explicitly")
        shape = []
        for axis, dim in enumerate(info.tensor_shape.dim):
            if dim.size >= 0:
                shape.append(int(dim.size))
            elif axis == 0:
                shape.append(batch)
            elif unknown_dim is not None:
                shape.append(unknown_dim)
            else:
                raise ValueError(f"input {key!r} dimension {axis} is unknown: "
                                 "pass unknown_dim=")
        feeds[key] = _random_array(int(info.dtype), tuple(shape), rng, key)
    return feeds


# --------------------------------------------------------------------------- build driver

def _build_locked(name: str, root: Path, final: Path) -> None:
    parent = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        target = parent / name
        start = time.perf_counter()
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--build-one", name, str(target)],
            capture_output=True, text=True, env=env, timeout=_BUILD_TIMEOUT_S)
        total = time.perf_counter() - start
        if proc.returncode != 0 or not (target / "saved_model.pb").is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
            raise RuntimeError(f"zoo: building {name!r} failed (exit {proc.returncode}):\n"
                               f"{tail}")
        timings = json.loads(proc.stdout.strip().splitlines()[-1])
        timings["total_s"] = round(total, 2)
        if final.exists():  # a half-finished directory from some earlier crash
            shutil.rmtree(final)
        os.replace(target, final)
        (root / f"{name}.build.json").write_text(json.dumps(timings, indent=1) + "\n")
        BUILD_SECONDS[name] = timings
        print(f"zoo: built {name} in {total:.1f} s (build {timings['build_s']:.1f} s, "
              f"export {timings['export_s']:.1f} s, {timings['size_mb']:.1f} MB) -> {final}",
              file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _build_one(name: str, target: Path) -> dict[str, float]:
    """In the child process: construct, randomize and export one model to ``target``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    import keras

    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    model, calibration = _BUILDERS[name](keras, rng)
    _randomize(model, rng, calibration)
    built = time.perf_counter()
    model.export(str(target), verbose=False)
    exported = time.perf_counter()
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return {"build_s": round(built - start, 2), "export_s": round(exported - built, 2),
            "size_mb": round(size / 1e6, 2), "params": int(model.count_params())}


# --------------------------------------------------------------------------- models

def _resnet50(keras: Any, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    image = keras.Input(shape=(224, 224, 3), name="image", dtype="float32")
    model = keras.applications.ResNet50(weights=None, input_tensor=image, classes=1000)
    return model, rng.standard_normal((8, 224, 224, 3)).astype(np.float32)


def _mobilenetv2(keras: Any, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    image = keras.Input(shape=(96, 96, 3), name="image", dtype="float32")
    model = keras.applications.MobileNetV2(weights=None, input_tensor=image, alpha=0.35,
                                           classes=1000)
    return model, rng.standard_normal((16, 96, 96, 3)).astype(np.float32)


def _transformer(keras: Any, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    layers = keras.layers
    x = keras.Input(shape=(16, 32), name="sequence", dtype="float32")
    attn = layers.MultiHeadAttention(num_heads=4, key_dim=8, name="mha")(x, x)
    h = layers.LayerNormalization(name="ln1")(layers.Add(name="res1")([x, attn]))
    ff = layers.Dense(64, activation="gelu", name="ff1")(h)
    ff = layers.Dense(32, name="ff2")(ff)
    h = layers.LayerNormalization(name="ln2")(layers.Add(name="res2")([h, ff]))
    pooled = layers.GlobalAveragePooling1D(name="pool")(h)
    logits = layers.Dense(10, name="logits")(pooled)
    return keras.Model(x, logits, name="transformer"), np.zeros((0, 16, 32), np.float32)


def _dense(keras: Any, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    layers = keras.layers
    x = keras.Input(shape=(256,), name="features", dtype="float32")
    h = layers.Dense(1024, activation="relu", name="fc1")(x)
    h = layers.Dense(1024, activation="relu", name="fc2")(h)
    h = layers.Dense(256, activation="relu", name="fc3")(h)
    probs = layers.Activation("softmax", name="probs")(layers.Dense(10, name="logits")(h))
    return keras.Model(x, probs, name="dense"), np.zeros((0, 256), np.float32)


_BUILDERS: dict[str, Callable[[Any, np.random.Generator], tuple[Any, np.ndarray]]] = {
    "resnet50": _resnet50,
    "mobilenetv2": _mobilenetv2,
    "transformer": _transformer,
    "dense": _dense,
}


def _randomize(model: Any, rng: np.random.Generator, calibration: np.ndarray) -> None:
    """Random nonzero biases/betas and gammas; BatchNorm statistics from a random batch.

    Kernels keep their (seeded) random initializers.  BatchNorm moving mean/variance are set
    to the statistics of ``calibration`` (one training-mode pass with momentum 0), then
    perturbed, so the inference graph normalizes to roughly unit scale like a trained model.
    """
    for var in model.weights:
        leaf = var.path.rsplit("/", 1)[-1]
        shape = tuple(var.shape)
        if leaf in ("bias", "beta"):
            var.assign((rng.standard_normal(shape) * 0.1).astype(var.dtype))
        elif leaf == "gamma":
            var.assign(rng.uniform(0.5, 1.5, shape).astype(var.dtype))
    bns = [layer for layer in _all_layers(model) if layer.__class__.__name__ ==
           "BatchNormalization"]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(calibration, training=True)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
        mean = np.asarray(bn.moving_mean)
        var = np.asarray(bn.moving_variance)
        bn.moving_mean.assign(
            (mean + rng.standard_normal(mean.shape) * 0.05 * np.sqrt(var + 1e-3))
            .astype(np.float32))
        bn.moving_variance.assign((var * rng.uniform(0.8, 1.25, var.shape) + 1e-3)
                                  .astype(np.float32))


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


# --------------------------------------------------------------------------- inputs

_FLOATS = {1: np.float32, 2: np.float64, 19: np.float16}
_INTS = {3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64, 17: np.uint16,
         22: np.uint32, 23: np.uint64}


def _random_array(dtype: int, shape: tuple[int, ...], rng: np.random.Generator,
                  key: str) -> np.ndarray:
    if dtype in _FLOATS:
        return rng.standard_normal(shape).astype(_FLOATS[dtype])
    if dtype in _INTS:
        return rng.integers(0, 10, shape).astype(_INTS[dtype])
    if dtype == 10:  # DT_BOOL
        return rng.random(shape) < 0.5
    if dtype == 7:  # DT_STRING
        values = rng.standard_normal(shape)
        return np.vectorize(lambda v: f"{v:.3f}".encode(), otypes=[object])(values) \
            if values.size else np.empty(shape, dtype=object)
    raise ValueError(f"input {key!r}: no random generator for DataType {dtype}")


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build (and time) zoo models.")
    parser.add_argument("names", nargs="*",
                        metavar="NAME", help=f"models to build (default: all): {MODELS}")
    parser.add_argument("--root", type=Path, default=Path("build/zoo"))
    parser.add_argument("--build-one", nargs=2, metavar=("NAME", "DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_one:
        name, target = args.build_one
        timings = _build_one(name, Path(target))
        print(json.dumps(timings), flush=True)
        return 0
    for name in args.names or MODELS:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        start = time.perf_counter()
        path = build(name, args.root)
        timings = BUILD_SECONDS.get(name)
        state = json.dumps(timings) if timings else "cached"
        print(f"{name}: {path} ({time.perf_counter() - start:.1f} s; {state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
