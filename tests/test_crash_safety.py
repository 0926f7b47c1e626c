"""Crash safety of the writing commands: Ctrl-C at marked moments, SIGKILL at random ones.

What must hold whatever the moment: the output path is absent or holds a complete model (its
protobuf parses, ``neuroncli.inspection`` accepts it, copied files are byte-identical to the
source); Ctrl-C exits 130 with exactly one line on stderr and leaves no temporary sibling;
a killed run's ``.<name>.tmp-<pid>-*`` leftovers are removed by the next run, which succeeds.

TensorFlow's C++-to-Python callbacks can swallow a KeyboardInterrupt (the first version of
these tests caught ``nest.flatten`` doing so and the compile going on to write its output), so
the commands exit from the SIGINT handler itself; a test imitates the swallowing.

Signals race with the process they interrupt, so the Ctrl-C tests wait for markers that the
process shows from outside (TensorFlow's library mapped, ``neuroncli.lazy_tf``'s redirect of
fd 2 to /dev/null during the import, the temporary directory appearing) instead of sleeping,
and nothing asserts a duration.  The SIGKILL tests (``slow``) measure a normal run first and
kill at seeded uniform moments over it.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from neuroncli.inspection import inspect_saved_model
from neuroncli.savedmodel import atomic_output, read_saved_model
from neuroncli.savedmodel import writer
from tests.conftest import FIXTURES, script

INTERRUPTED = "interrupted: nothing was written\n"
KILLS = 25


# ---- helpers -------------------------------------------------------------------------------

def _temporaries(out: Path) -> list[str]:
    return sorted(e for e in os.listdir(out.parent) if e.startswith(f".{out.name}.tmp-"))


def _digests(model: Path, parts: tuple[str, ...] = ("variables", "assets")) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``parts``."""
    found = {}
    for part in parts:
        for file in sorted((model / part).rglob("*")) if (model / part).is_dir() else ():
            if file.is_file():
                with open(file, "rb") as handle:
                    found[str(file.relative_to(model))] = hashlib.file_digest(
                        handle, "sha256").hexdigest()
    return found


def _assert_complete(out: Path, files: dict[str, str]) -> None:
    """A whole compiled model: protobuf, NeuronOps, and every copied file byte for byte."""
    assert read_saved_model(out).meta_graphs
    report = inspect_saved_model(out)
    assert sum(len(mg.neuron_ops) for mg in report.meta_graphs) >= 1
    assert _digests(out) == files


def _add_files(model: Path, part: str, count: int, size: int, seed: int) -> None:
    folder = model / part
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        (folder / f"blob{i:02d}.bin").write_bytes(rng.bytes(size))


def _compile(src: Path, out: Path) -> None:
    done = subprocess.run([script("neuron-compile"), str(src), str(out), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _fd2(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/2")
    except OSError:  # exited meanwhile
        return ""


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _ctrl_c(args: list[str], out: Path, marker: Callable[[int], bool], *,
            must_show: bool = True, files: dict[str, str] | None = None) -> None:
    """Start ``args``, poll ``marker(pid)`` and send SIGINT the moment it holds: the command
    must exit 130 with one line and leave neither the output nor a temporary.

    A signal sent after the output was renamed into place (the poller starved, or the run
    ended before the marker showed, which ``must_show`` forbids) proves nothing: the output
    must then be whole, and the attempt is repeated.
    """
    for _ in range(5):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        while proc.poll() is None and not marker(proc.pid):
            time.sleep(0.0005)
        if proc.poll() is not None and must_show:
            pytest.fail(f"the process ended before the marker showed: {proc.communicate()}")
        late = proc.poll() is not None or os.path.lexists(out)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
        assert _temporaries(out) == []
        if not late:
            assert (proc.returncode, stderr) == (130, INTERRUPTED), (proc.returncode, stderr,
                                                                     stdout)
            assert not os.path.lexists(out)
            return
        assert proc.returncode in (0, 130) and stderr.count("\n") == 1, stderr
        _assert_complete(out, files or {})
        shutil.rmtree(out)
    pytest.fail("every SIGINT arrived after the output was written")


# ---- Ctrl-C (default suite) ----------------------------------------------------------------

def _importing_tensorflow(pid: int) -> bool:
    # The shared library is mapped while `import tensorflow` runs its C++ initializers.
    return "libtensorflow" in _maps(pid)


def _imported_tensorflow() -> Callable[[int], bool]:
    """True once fd 2 went to /dev/null (lazy_tf during the import) and came back: the
    process is then loading, freezing or optimizing, mostly inside TensorFlow's C++."""
    seen = {"devnull": False}

    def marker(pid: int) -> bool:
        fd2 = _fd2(pid)
        if fd2 == os.devnull:
            seen["devnull"] = True
        return seen["devnull"] and fd2.startswith("pipe:")
    return marker


def test_ctrl_c_while_tensorflow_imports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _ctrl_c([script("neuron-compile"), str(FIXTURES / "keras_dense"), str(out)], out,
            _importing_tensorflow)


@pytest.mark.parametrize("fixture", ["keras_dense", "tf1_conv"])
def test_ctrl_c_inside_tensorflow(fixture: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _ctrl_c([script("neuron-compile"), str(FIXTURES / fixture), str(out)], out,
            _imported_tensorflow())


def test_ctrl_c_while_auto_multicore_copies(tmp_path: Path) -> None:
    src = tmp_path / "compiled"
    _compile(FIXTURES / "keras_dense", src)
    _add_files(src, "variables", count=8, size=16 << 20, seed=1)
    out = tmp_path / "out"
    _ctrl_c([script("tf-neuron-auto-multicore"), str(src), "--num_cores", "2",
             "--new_model_dir", str(out)], out, lambda pid: bool(_temporaries(out)),
            must_show=False, files=_digests(src))


_SWALLOWING_BODY = """
import os, signal, sys
from neuroncli.cli.common import run
from neuroncli.savedmodel import atomic_output

def body():
    with atomic_output(sys.argv[1]) as tmp:
        open(os.path.join(tmp, "saved_model.pb"), "wb").close()
        try:  # what TensorFlow's C++-to-Python callbacks can do with a KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)
            sum(range(10))
        except BaseException:
            pass
    return 0

run(body)
"""


def test_ctrl_c_swallowed_by_library_code_still_stops_the_command(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", _SWALLOWING_BODY, str(out)],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (130, INTERRUPTED)
    assert not out.exists() and _temporaries(out) == []


@pytest.fixture
def sigint_restored():
    """run() ignores Ctrl-C once its exit code is decided: give pytest its handler back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_interrupt_after_the_commit_says_the_output_exists(
        tmp_path: Path, capsys: pytest.CaptureFixture, sigint_restored: None) -> None:
    from neuroncli.cli.common import run

    def body() -> int:
        with atomic_output(str(tmp_path / "out")) as tmp:
            (Path(tmp) / "saved_model.pb").write_bytes(b"")
        raise KeyboardInterrupt  # e.g. while the report is printed

    with pytest.raises(SystemExit) as exc:
        run(body)
    assert exc.value.code == 130
    assert capsys.readouterr().err == f"interrupted: {tmp_path / 'out'} had already been written\n"

    def before_commit() -> int:
        with atomic_output(str(tmp_path / "out2")):
            raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exc:
        run(before_commit)
    assert exc.value.code == 130 and capsys.readouterr().err == INTERRUPTED
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_ctrl_c_during_the_rename_is_delivered_after_it(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are handled by the main thread only")
    real_replace = writer._replace

    def replace_interrupted(tmp: str, out: str, *, force: bool) -> None:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C between the checks and the renames
        real_replace(tmp, out, force=force)

    monkeypatch.setattr(writer, "_replace", replace_interrupted)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("old")
    count = writer.commits()[0]
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(str(tmp_path / "out"), force=True) as tmp:
            (Path(tmp) / "new").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the new model, whole; no trash
    assert sorted(os.listdir(tmp_path / "out")) == ["new"]
    assert writer.commits() == (count + 1, str(tmp_path / "out"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---- SIGKILL at random moments (slow) ------------------------------------------------------

def _timed_run(args: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


def _kill_at(args: list[str], moment: float) -> tuple[int, bool]:
    """Run ``args`` and SIGKILL it ``moment`` seconds after the start; (pid, finished first)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < moment:
        time.sleep(min(0.002, max(0.0, moment - (time.monotonic() - started))))
    finished = proc.poll() is not None
    proc.kill()
    proc.wait()
    return proc.pid, finished


def _kill_repeatedly(make_args: Callable[[bool], list[str]], out: Path,
                     files: dict[str, str], seed: int) -> Counter:
    """KILLS kills at uniform moments over a measured run; after each, the state is checked
    and, when a kill left something behind, a normal run must clean up and succeed."""
    _timed_run(make_args(False))  # warm-up: caches filled, as for the runs that follow
    duration = _timed_run(make_args(True))
    _assert_complete(out, files)
    rng = random.Random(seed)
    outcomes: Counter = Counter()
    for i in range(KILLS):
        force = i % 2 == 1  # odd kills replace a complete output: the two-rename path
        if not force and out.exists():
            shutil.rmtree(out)
        previous = (out / "saved_model.pb").stat().st_ino if force else None
        pid, finished = _kill_at(make_args(force), rng.uniform(0, duration))
        leftovers = _temporaries(out)
        assert all(f"tmp-{pid}-" in name for name in leftovers), leftovers
        if out.exists():
            _assert_complete(out, files)
        current = (out / "saved_model.pb").stat().st_ino if out.exists() else None
        outcomes["finished before the kill" if finished else
                 "killed mid-write" if leftovers else
                 "killed, output absent" if current is None else
                 "killed, previous output kept" if current == previous else
                 "killed after the commit"] += 1
        if leftovers or not out.exists():
            _timed_run(make_args(out.exists()))  # the next run: cleans up and succeeds
            _assert_complete(out, files)
            assert _temporaries(out) == []
    _timed_run(make_args(True))
    _assert_complete(out, files)
    assert _temporaries(out) == []
    print(f"\n{make_args(False)[0]}: {KILLS} kills over {duration:.2f} s: {dict(outcomes)}")
    return outcomes


@pytest.mark.slow
def test_sigkill_neuron_compile(tmp_path: Path) -> None:
    src = tmp_path / "tf1_conv"
    shutil.copytree(FIXTURES / "tf1_conv", src)
    _add_files(src, "assets", count=4, size=32 << 20, seed=2)  # copied: kills can tear it
    files = _digests(src, ("assets",))
    out = tmp_path / "out" / "model"
    out.parent.mkdir()

    def args(force: bool) -> list[str]:
        return [script("neuron-compile"), str(src), str(out), "-q"] + (["--force"] if force
                                                                      else [])
    _kill_repeatedly(args, out, files, seed=2024)


@pytest.mark.slow
def test_sigkill_auto_multicore(tmp_path: Path) -> None:
    src = tmp_path / "compiled"
    _compile(FIXTURES / "keras_dense", src)
    _add_files(src, "variables", count=16, size=24 << 20, seed=3)  # 384 MiB to copy
    _add_files(src, "assets", count=1, size=1 << 20, seed=4)
    files = _digests(src)
    out = tmp_path / "out" / "model"
    out.parent.mkdir()

    def args(force: bool) -> list[str]:
        return [script("tf-neuron-auto-multicore"), str(src), "--num_cores", "4",
                "--new_model_dir", str(out), "-q"] + (["--force"] if force else [])
    outcomes = _kill_repeatedly(args, out, files, seed=2025)
    assert outcomes["killed mid-write"] > 0, outcomes
