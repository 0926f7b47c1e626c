"""Seed models of the ``saved_model.pb`` fuzzer: the fixtures, raw and compiled, built once.

Compiling needs TensorFlow, which the fuzzer itself never imports: :func:`load_seeds` builds
the seeds in a child process the first time and caches their ``saved_model.pb`` bytes under
``build/fuzz-seeds/<key>/``, keyed by the fixtures, neuroncli's sources and :data:`RECIPE`
(bump it when the list below changes): the compiler is deterministic, so one tree gives the
same seeds on every machine, and case ``i`` of a run is a function of ``(seed, i)`` and the
tree.  Seeds are plain ``<name>.pb`` files.

- ``raw-<fixture>``: the committed fixture (TF1 and TF2, no NeuronOp);
- ``neuron-<fixture>``: compiled with default options (``neuron-strings_dense`` has no
  NeuronOp: everything stays on CPU);
- ``aws-keras_dense``: NeuronOps inside a library function and a second meta graph, the way
  AWS's TF2 models look;
- ``pipeline-tf1_conv``: compiled for 2 pipeline cores (cannot be replicated);
- ``tagged-tf1_conv``: already auto-multicore tagged and placed (every private attribute).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ("keras_dense", "strings_dense", "tf1_conv")
RECIPE = 1


def seeds_key() -> str:
    """The fixtures, the recipe and neuroncli's sources: what the seeds' bytes depend on."""
    digest = hashlib.sha256(f"recipe {RECIPE}".encode())
    sources = sorted((ROOT / "neuroncli").rglob("*.py"))
    for path in [ROOT / "fixtures" / name / "saved_model.pb" for name in FIXTURES] + sources:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _aws_style(compiled: Path, out: Path) -> None:
    from tests.conftest import aws_style_saved_model
    out.write_bytes(aws_style_saved_model(compiled))


def _build(directory: str) -> None:
    """Write every seed's ``<name>.pb`` into ``directory`` (runs in a child: imports TF)."""
    import neuroncli
    from neuroncli.rewrite import PlacementRequest, auto_multicore_saved_model, place_saved_model

    dest, work = Path(directory), Path(tempfile.mkdtemp(prefix="fuzz-seeds-"))
    try:
        for name in FIXTURES:
            fixture = ROOT / "fixtures" / name
            shutil.copyfile(fixture / "saved_model.pb", dest / f"raw-{name}.pb")
            neuroncli.saved_model.compile(fixture, work / name)
            shutil.copyfile(work / name / "saved_model.pb", dest / f"neuron-{name}.pb")
        _aws_style(work / "keras_dense", dest / "aws-keras_dense.pb")
        neuroncli.saved_model.compile(ROOT / "fixtures" / "tf1_conv", work / "pipeline",
                                      compiler_args="--neuroncore-pipeline-cores 2")
        shutil.copyfile(work / "pipeline" / "saved_model.pb", dest / "pipeline-tf1_conv.pb")
        auto_multicore_saved_model(str(work / "tf1_conv"), str(work / "x4"), 4)
        place_saved_model(str(work / "x4"), str(work / "placed"), PlacementRequest(1, 2))
        shutil.copyfile(work / "placed" / "saved_model.pb", dest / "tagged-tf1_conv.pb")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def seed_dir(cache_root: str | os.PathLike | None = None) -> Path:
    """The directory of the current seeds, built on first use (a few seconds)."""
    cache = Path(cache_root or ROOT / "build" / "fuzz-seeds") / seeds_key()
    if not cache.is_dir():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.tmp-", dir=cache.parent))
        try:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
            done = subprocess.run([sys.executable, "-c",
                                   f"from tests.fuzz_seeds import _build; _build({str(tmp)!r})"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
            if done.returncode:
                raise RuntimeError(f"building the fuzz seeds failed:\n{done.stderr[-4000:]}")
            try:
                os.rename(tmp, cache)  # atomic: concurrent builders race harmlessly
            except OSError:
                if not cache.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(cache)
    return cache


def _prune(current: Path, max_age: float = 86400.0) -> None:
    """Drop seed sets of older trees (one per source change) unused for a day."""
    for other in current.parent.iterdir():
        try:
            if other != current and time.time() - other.stat().st_mtime > max_age:
                shutil.rmtree(other, ignore_errors=True)
        except OSError:
            pass


def read_seeds(directory: str | os.PathLike) -> dict[str, bytes]:
    """``{name: saved_model.pb bytes}`` of a seed directory."""
    seeds = {p.stem: p.read_bytes() for p in sorted(Path(directory).glob("*.pb"))}
    if not seeds:
        raise RuntimeError(f"{directory}: no fuzz seeds")
    return seeds


def load_seeds(cache_root: str | os.PathLike | None = None) -> dict[str, bytes]:
    return read_seeds(seed_dir(cache_root))
