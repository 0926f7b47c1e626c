"""Shared test fixtures: paths to the bundled models, the zoo cache and the console scripts."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BIN = Path(sys.executable).parent
# Zoo models (ResNet50, ...) are built once per machine and shared by xdist workers.
ZOO = Path(os.environ.get("NEURONCLI_ZOO", ROOT / "build" / "zoo"))


@pytest.fixture(autouse=True)
def default_ctrl_c() -> object:
    """Every test starts and ends with Python's own Ctrl-C handler.  Tests that run a command
    in process (fuzz cases, stage errors) would otherwise leave the command's "ignore Ctrl-C
    once the outcome is decided" in the xdist worker, and every later subprocess of that
    worker would inherit SIGINT ignored (the Ctrl-C tests then fail)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def zoo_root() -> Path:
    ZOO.mkdir(parents=True, exist_ok=True)
    return ZOO


def script(name: str) -> str:
    """Path of an installed console script of this venv."""
    return str(BIN / name)

def tree_digest(path: str | os.PathLike) -> str:
    """SHA-256 over a directory tree: every entry's relative path, each file's bytes, each
    symlink's target (never followed).  Equal digests: the tree is untouched."""
    import hashlib
    root = Path(path)
    h = hashlib.sha256()
    for entry in sorted(root.rglob("*")):
        h.update(str(entry.relative_to(root)).encode())
        if entry.is_symlink():
            h.update(b"link:" + os.readlink(entry).encode())
        elif entry.is_file():
            h.update(entry.read_bytes())
    return h.hexdigest()


def aws_style_saved_model(compiled: str | os.PathLike) -> bytes:
    """A compiled model's ``saved_model.pb`` rewritten the way AWS's TF2 models are laid out:
    its NeuronOps (and every other node) also inside a library function, plus a second meta
    graph tagged ``{serve,gpu}``."""
    from neuroncli.savedmodel import read_saved_model
    sm = read_saved_model(compiled).saved_model
    mg = sm.meta_graphs[0]
    fn = mg.graph_def.library.function.add()
    fn.signature.name = "__inference_neuron_graph_42"
    for node in mg.graph_def.node:
        fn.node_def.add().CopyFrom(node)
    second = sm.meta_graphs.add()
    second.CopyFrom(mg)
    del second.meta_info_def.tags[:]
    second.meta_info_def.tags.extend(["serve", "gpu"])
    return sm.SerializeToString()
