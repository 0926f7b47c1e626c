"""Build the NeuronOp op library against the installed TensorFlow, once, into a cache.

The library is compiled from the C++ sources in ``cc/`` with TensorFlow's own flags
(``tf.sysconfig``) and linked against ``libtensorflow_cc`` for the C API the kernel uses.  It
lands in ``$XDG_CACHE_HOME/neuroncli`` (``~/.cache/neuroncli``) under a name keyed by the
TensorFlow version and a hash of the sources and flags, so a new TensorFlow or a changed source
builds afresh and nothing stale is ever loaded.  ``make install`` builds it; a pip-installed
neuroncli builds it on first use.  A file lock makes concurrent first uses (pytest-xdist
workers, several servers) build it once: the others wait, then load the finished file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from neuroncli.format import executable
from neuroncli.proto import cache_dir

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cc")
SOURCES = ("neuron_op_def.cc", "neuron_op_kernel.cc", "shard.cc", "executable.cc", "sha256.cc")
HEADERS = ("shard.h", "executable.h", "sha256.h")
LIBRARY_FILE = "neuron_op.so"
#: The C API (TF_NewSession, ...) lives in libtensorflow_cc, which tf.sysconfig omits.
C_API_LIBRARY = "-l:libtensorflow_cc.so.2"
CXX_ENV = "CXX"


class OpLibraryUnavailable(RuntimeError):
    """The op library cannot be built or loaded in this environment."""


@dataclass(frozen=True)
class BuildResult:
    """Where the library is and what getting it cost.

    path: the shared library to pass to ``tf.load_op_library``.
    built: True when this call compiled it, False when the cache already had it.
    seconds: time spent compiling (0.0 when cached).
    """

    path: str
    built: bool
    seconds: float


def find_compiler() -> str | None:
    """``$CXX``, else ``g++``, else ``c++`` on the PATH."""
    explicit = os.environ.get(CXX_ENV)
    if explicit:
        return shutil.which(explicit)
    return shutil.which("g++") or shutil.which("c++")


def _defines() -> list[str]:
    # The container's magic and version have one home: neuroncli/format/executable.py.
    magic = executable.MAGIC.decode("ascii")
    return [f'-DNEURONCLI_EXE_MAGIC="{magic}"',
            f"-DNEURONCLI_EXE_VERSION={executable.FORMAT_VERSION}"]


def compile_command(tf: Any, compiler: str, output: str) -> list[str]:
    """The one compiler invocation that builds the library at ``output``."""
    tf_dir = os.path.dirname(os.path.abspath(tf.__file__))
    return [compiler, "-shared", "-fPIC", "-O2", "-w", *_defines(),
            *tf.sysconfig.get_compile_flags(), f"-I{SOURCE_DIR}",
            *(os.path.join(SOURCE_DIR, name) for name in SOURCES),
            "-o", output, *tf.sysconfig.get_link_flags(), C_API_LIBRARY,
            f"-Wl,-rpath,{tf_dir}"]


def source_key(tf: Any) -> str:
    """TensorFlow version plus a digest of every source, header and define."""
    digest = hashlib.sha256()
    for name in sorted(SOURCES + HEADERS):
        with open(os.path.join(SOURCE_DIR, name), "rb") as handle:
            digest.update(name.encode() + b"\0" + handle.read() + b"\0")
    digest.update("\0".join(_defines() + list(tf.sysconfig.get_compile_flags())).encode())
    return f"tf{tf.__version__}-{digest.hexdigest()[:16]}"


def library_path(tf: Any) -> str:
    return os.path.join(cache_dir(), f"tfop-{source_key(tf)}", LIBRARY_FILE)


def ensure_built(tf: Any) -> BuildResult:
    """The library for this TensorFlow, compiled under a file lock if the cache lacks it."""
    path = library_path(tf)
    if os.path.isfile(path):
        return BuildResult(path, False, 0.0)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock = open(path + ".lock", "w")
    except OSError as exc:
        raise OpLibraryUnavailable(
            f"cannot write the NeuronOp library's cache ({exc}): set XDG_CACHE_HOME to a "
            "writable directory; neuroncli.load still works") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if os.path.isfile(path):  # another process built it while we waited
            return BuildResult(path, False, 0.0)
        compiler = find_compiler()
        if compiler is None:
            raise OpLibraryUnavailable(
                "no C++ compiler (g++, or set CXX) to build the NeuronOp library: "
                "tf.saved_model.load cannot run compiled models in this process; "
                "neuroncli.load still works")
        started = time.perf_counter()
        _compile(tf, compiler, path)
        return BuildResult(path, True, time.perf_counter() - started)


def _compile(tf: Any, compiler: str, path: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        done = subprocess.run(compile_command(tf, compiler, tmp), capture_output=True,
                              text=True)
        if done.returncode != 0:
            errors = [ln for ln in done.stderr.splitlines() if "error" in ln]
            detail = (errors or done.stderr.strip().splitlines() or ["no output"])[0]
            raise OpLibraryUnavailable(
                f"building the NeuronOp library with {compiler} failed ({detail.strip()}): "
                "tf.saved_model.load cannot run compiled models in this process; "
                "neuroncli.load still works")
        os.replace(tmp, path)  # atomic: a reader never sees half a library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
