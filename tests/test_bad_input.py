"""Bad input to every command and to the Python API, as one table.

Each CLI case runs the installed console script and checks the house rules (README, "Exit
codes"): the documented exit code (1 user error, 2 usage error), exactly one line on stderr
that names the problem and the fix, no traceback, nothing written (the output path absent and
no ``.<name>.tmp-*`` sibling left), and every input unchanged (names and bytes hashed before
and after).  A subset is re-run with ``-v``, which must add the traceback.  The Python API
cases check the exception type (``neuroncli.UserError``, a ``ValueError``) and its message.

Tests run as root here, and root ignores permission bits: a path made unreadable with
``chmod 000`` is still read, and ``chmod 555`` does not stop root creating files.  So an
unreadable ``saved_model.pb`` is a FIFO or a directory (the chmod case runs only for other
users), and a read-only output parent is an immutable directory (``chattr +i``, which binds
root too) or, for other users, ``chmod 555``.

Most cases fail before TensorFlow is imported (~0.2 s each); the few that need a loaded model
(input checks at call time, verification) pay TensorFlow's start-up (~3 s).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import neuroncli
from tests.conftest import FIXTURES, script, tree_digest
from tests.test_runtime_support import compile_model

pytestmark = pytest.mark.timeout(300)
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
ORIGINAL = FIXTURES / "keras_dense"  # an uncompiled model (weights in variables/)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """keras_dense compiled for batch 2 (the batch of the fixture's .npz), once per module."""
    return compile_model(ORIGINAL, tmp_path_factory.mktemp("bad_input") / "dense_neuron")


# ------------------------------------------------------------------------------ helpers


def _fingerprint(path: Path) -> str:
    """Names and bytes of a file or a whole tree (FIFOs by name only: reading one blocks)."""
    if path.is_dir():
        return tree_digest(path)
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{path.lstat().st_mode:o}"


def _temporaries(out: Path) -> list[str]:
    parent = out.parent
    if not parent.is_dir():
        return []
    return sorted(e for e in os.listdir(parent) if e.startswith(f".{out.name}.tmp-"))


class Ctx:
    """What a case builds its command line from; every path lives in the test's tmp_path."""

    def __init__(self, tmp: Path, compiled: Path) -> None:
        self.tmp, self.compiled, self.original = tmp, compiled, str(ORIGINAL)
        self.out = str(tmp / "out")
        self.cleanup: list[Callable[[], Any]] = []  # undone after the test, last first

    def path(self, name: str) -> str:
        return str(self.tmp / name)

    def model(self, name: str, pb: bytes | None = None, *, source: Path | None = None,
              cut: float | None = None) -> str:
        """A model directory: a copy of ``source`` (optionally its saved_model.pb cut to a
        fraction), or a directory holding ``pb`` as saved_model.pb (None: no file)."""
        target = self.tmp / name
        if source is not None:
            shutil.copytree(source, target)
            if cut is not None:
                data = (target / "saved_model.pb").read_bytes()
                (target / "saved_model.pb").write_bytes(data[: int(len(data) * cut)])
            return str(target)
        target.mkdir()
        if pb is not None:
            (target / "saved_model.pb").write_bytes(pb)
        return str(target)

    def npz(self, name: str, **arrays: Any) -> str:
        path = self.tmp / name
        np.savez(path, **arrays)
        return str(path)

    def file(self, name: str, data: bytes = b"") -> str:
        (self.tmp / name).write_bytes(data)
        return str(self.tmp / name)

    def features(self) -> np.ndarray:
        return np.load(FIXTURES / "keras_dense.inputs.npz")["features"]


def _random_bytes(n: int = 4096) -> bytes:
    return np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8).tobytes()


def _pb_is_fifo(ctx: Ctx) -> str:
    model = ctx.model("fifo_model")
    os.mkfifo(os.path.join(model, "saved_model.pb"))
    return model


def _pb_is_dir(ctx: Ctx) -> str:
    model = ctx.model("dir_model")
    os.mkdir(os.path.join(model, "saved_model.pb"))
    return model


def _pb_unreadable(ctx: Ctx) -> str:
    model = ctx.model("locked_model", source=ORIGINAL)
    os.chmod(os.path.join(model, "saved_model.pb"), 0)
    return model


def _pbtxt_only(ctx: Ctx) -> str:
    model = ctx.model("text_model")
    Path(model, "saved_model.pbtxt").write_text("saved_model_schema_version: 1\n")
    return model


def _read_only_parent(ctx: Ctx) -> str:
    """A parent directory this user cannot create entries in (see the module docstring)."""
    parent = ctx.tmp / "read_only"
    parent.mkdir()
    if ROOT_USER:
        done = subprocess.run(["chattr", "+i", str(parent)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("root ignores chmod and chattr +i is not available here: "
                        + done.stderr.decode(errors="replace").strip())
        ctx.cleanup.append(lambda: subprocess.run(["chattr", "-i", str(parent)]))
    else:
        parent.chmod(0o555)
        ctx.cleanup.append(lambda: parent.chmod(0o755))
    return str(parent / "out")


# ------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Case:
    """One bad command line.

    command: console script.  build: ctx -> (arguments, output path or None).  code: exit
    code.  fragments: substrings of the one error line (the problem, then the fix).
    marks: pytest marks (skips for environments where the case cannot be built).
    """

    command: str
    build: Callable[[Ctx], tuple[list[str], str | None]]
    code: int
    fragments: tuple[str, ...]
    marks: tuple = field(default=())


def _c(command: str, build: Callable, code: int, *fragments: str, marks: tuple = ()) -> Case:
    return Case(command, build, code, fragments, marks)


INSPECT, AUTO, PLACE = "neuron-inspect", "tf-neuron-auto-multicore", "neuron-place"
COMPILE, RUN, VERIFY = "neuron-compile", "neuron-run", "neuron-verify"
NOT_ROOT = (pytest.mark.skipif(ROOT_USER, reason="root reads files whatever their mode; "
                               "inspect-pb-is-fifo and inspect-pb-is-directory cover "
                               "unreadable saved_model.pb instead"),)


def _auto(model: str, ctx: Ctx, *extra: str, out: str | None = None) -> tuple[list, str]:
    out = ctx.out if out is None else out
    return [model, "--num_cores", "2", "--new_model_dir", out, *extra], out


def _place(model: str, ctx: Ctx, *where: str, out: str | None = None) -> tuple[list, str]:
    out = ctx.out if out is None else out
    return [model, "--new_model_dir", out, *where], out


def _existing_out(ctx: Ctx) -> str:
    os.mkdir(ctx.out)
    Path(ctx.out, "keep.txt").write_text("someone else's file\n")
    return ctx.out


CASES: dict[str, Case] = {
    # neuron-inspect: every way MODEL_DIR can be wrong (protobuf only)
    "inspect-missing-dir": _c(INSPECT, lambda c: ([c.path("nope")], None), 1,
                              "nope: no such directory", "pass the SavedModel directory"),
    "inspect-empty-path": _c(INSPECT, lambda c: ([""], None), 2,
                             "'MODEL_DIR': the path is empty", "pass a file or directory"),
    "inspect-file-not-dir": _c(INSPECT, lambda c: ([c.file("model.pb", b"x")], None), 1,
                               "model.pb: not a directory", "pass the SavedModel directory"),
    "inspect-no-saved-model-pb": _c(INSPECT, lambda c: ([c.model("empty")], None), 1,
                                    "no saved_model.pb", "not a SavedModel directory"),
    "inspect-pb-is-directory": _c(INSPECT, lambda c: ([_pb_is_dir(c)], None), 1,
                                  "saved_model.pb: is a directory", "binary SavedModel"),
    "inspect-pb-is-fifo": _c(INSPECT, lambda c: ([_pb_is_fifo(c)], None), 1,
                             "saved_model.pb: is not a regular file", "re-export the model"),
    "inspect-pb-unreadable": _c(INSPECT, lambda c: ([_pb_unreadable(c)], None), 1,
                                "cannot read it (Permission denied)", "make it readable",
                                marks=NOT_ROOT),
    "inspect-pbtxt-only": _c(INSPECT, lambda c: ([_pbtxt_only(c)], None), 1,
                             "only saved_model.pbtxt found; neuroncli reads binary",
                             "re-save it"),
    "inspect-empty-pb": _c(INSPECT, lambda c: ([c.model("zero", b"")], None), 1,
                           "holds no meta graph", "re-export the model"),
    "inspect-random-pb": _c(INSPECT, lambda c: ([c.model("noise", _random_bytes())], None), 1,
                            "not a valid SavedModel protobuf", "re-export the model"),
    "inspect-unknown-option": _c(INSPECT, lambda c: ([c.original, "--tag_set", "x"], None), 2,
                                 "No such option '--tag_set'", "--help"),
    # tf-neuron-auto-multicore: numbers, the model, and the output path
    "auto-uncompiled": _c(AUTO, lambda c: _auto(c.original, c), 1,
                          "not a compiled model (no NeuronOp)", "run neuron-compile first"),
    "auto-truncated-pb": _c(AUTO, lambda c: _auto(c.model("cut", source=c.compiled, cut=0.4),
                                                  c), 1,
                            "not a valid SavedModel protobuf (truncated", "re-export"),
    "auto-num-cores-0": _c(AUTO, lambda c: ([str(c.compiled), "--num_cores", "0",
                                             "--new_model_dir", c.out], c.out), 2,
                           "'--num_cores'", "0 is not in the range 1<=x<=64"),
    "auto-num-cores-65": _c(AUTO, lambda c: ([str(c.compiled), "--num_cores", "65",
                                              "--new_model_dir", c.out], c.out), 2,
                            "'--num_cores'", "65 is not in the range 1<=x<=64"),
    "auto-num-cores-abc": _c(AUTO, lambda c: ([str(c.compiled), "--num-cores", "abc",
                                               "--new_model_dir", c.out], c.out), 2,
                             "'abc' is not a valid integer", "--help"),
    "auto-num-cores-missing": _c(AUTO, lambda c: ([str(c.compiled), "--new_model_dir", c.out],
                                                  c.out), 2,
                                 "Missing option '--num_cores'", "--help"),
    "auto-output-exists": _c(AUTO, lambda c: _auto(str(c.compiled), c, out=_existing_out(c)),
                             1, "out: already exists", "remove it or pass --force"),
    "auto-output-is-input": _c(AUTO, lambda c: _auto(str(c.compiled), c,
                                                     out=str(c.compiled)), 1,
                               "the output directory is the input directory",
                               "choose a new path"),
    "auto-output-inside-input": _c(AUTO, lambda c: _auto(str(c.compiled), c,
                                                         out=str(c.compiled / "x4")), 1,
                                   "inside the input directory", "choose a path outside it"),
    "auto-output-parent-is-file": _c(AUTO, lambda c: _auto(
        str(c.compiled), c, out=os.path.join(c.file("plain"), "out")), 1,
        "plain/out: the parent directory", "is not a directory"),
    "auto-output-parent-read-only": _c(AUTO, lambda c: _auto(str(c.compiled), c,
                                                             out=_read_only_parent(c)), 1,
                                       "read_only is not writable", "read_only/out"),
    "auto-output-parent-refuses-mkdir": _c(AUTO, lambda c: _auto(
        str(c.compiled), c, out="/sys/neuroncli-bad-input-out"), 1,
        "/sys/neuroncli-bad-input-out",
        # root passes os.access(/sys, W_OK); mkdir is what refuses it
        "cannot create a directory in /sys" if ROOT_USER else "is not writable"),
    # neuron-place: conflicting and out-of-range placement flags
    "place-multicore-with-start-nc": _c(PLACE, lambda c: _place(str(c.compiled), c,
                                                                "--multicore", "--start-nc",
                                                                "1"), 2,
                                        "--multicore", "cannot be combined with --start-nc"),
    "place-no-placement": _c(PLACE, lambda c: _place(str(c.compiled), c), 2,
                             "say where to place the model", "--start-nc/--nc-count or "
                             "--multicore"),
    "place-start-nc-64": _c(PLACE, lambda c: _place(str(c.compiled), c, "--start-nc", "64"), 2,
                            "'--start-nc'", "64 is more than 63: pass a core index"),
    "place-start-nc-minus-2": _c(PLACE, lambda c: _place(str(c.compiled), c, "--start-nc",
                                                         "-2"), 2,
                                 "'--start-nc'", "-2 is not in the range x>=-1"),
    "place-nc-count-0": _c(PLACE, lambda c: _place(str(c.compiled), c, "--nc-count", "0"), 2,
                           "'--nc-count'", "0 cores is no placement: pass a core count"),
    "place-nc-count-65": _c(PLACE, lambda c: _place(str(c.compiled), c, "--nc-count", "65"), 2,
                            "'--nc-count'", "65 is more than 64: pass a core count"),
    "place-nc-count-abc": _c(PLACE, lambda c: _place(str(c.compiled), c, "--nc-count", "abc"),
                             2, "'abc' is not a valid integer", "--help"),
    "place-uncompiled": _c(PLACE, lambda c: _place(c.original, c, "--multicore"), 1,
                           "not a compiled model (no NeuronOp)", "run neuron-compile first"),
    "place-empty-output": _c(PLACE, lambda c: _place(str(c.compiled), c, "--multicore",
                                                     out=""), 2,
                             "'--new_model_dir'", "the path is empty"),
    # neuron-compile: the model, flags, --inputs and the output path
    "compile-random-pb": _c(COMPILE, lambda c: ([c.model("noise", _random_bytes()), c.out],
                                                c.out), 1,
                            "not a valid SavedModel protobuf", "re-export the model"),
    "compile-unknown-tag-set": _c(COMPILE, lambda c: ([c.original, c.out, "--tag_set",
                                                       "train,gpu"], c.out), 1,
                                  "no meta graph with tag set {gpu,train}",
                                  "pass one of them with --tag_set"),
    "compile-unknown-signature": _c(COMPILE, lambda c: ([c.original, c.out, "--signature_def",
                                                         "nope"], c.out), 1,
                                    "no signature 'nope'", "pass one of them with "
                                    "--signature_def"),
    "compile-batch-size-minus-1": _c(COMPILE, lambda c: ([c.original, c.out, "--batch-size",
                                                          "-1"], c.out), 2,
                                     "'--batch-size'", "-1 is not in the range x>=1"),
    "compile-batch-size-abc": _c(COMPILE, lambda c: ([c.original, c.out, "--batch-size",
                                                      "abc"], c.out), 2,
                                 "'abc' is not a valid integer", "--help"),
    "compile-min-ratio-2": _c(COMPILE, lambda c: ([c.original, c.out, "--min-on-neuron-ratio",
                                                   "2"], c.out), 2,
                              "'--min-on-neuron-ratio'", "not in the range 0<=x<=1"),
    "compile-input-shape-malformed": _c(COMPILE, lambda c: ([c.original, c.out,
                                                             "--input-shape", "features"],
                                                            c.out), 1,
                                        "--input-shape 'features' is not NAME=D0,D1,...",
                                        "e.g. --input-shape"),
    "compile-output-is-input": _c(COMPILE, lambda c: ([c.original, c.original], c.original), 1,
                                  "the output directory is the input directory",
                                  "choose a new path"),
    "compile-empty-output": _c(COMPILE, lambda c: ([c.original, ""], None), 2,
                               "'NEW_MODEL_DIR': the path is empty", "pass a file or "
                               "directory name"),
    "compile-npz-missing-key": _c(COMPILE, lambda c: (
        [str(FIXTURES / "tf1_conv"), c.out, "--inputs",
         c.npz("image_only.npz", image=np.zeros((2, 8, 8, 3), np.float32))], c.out), 1,
        "--inputs lacks input(s) 'bias_map'", "give every signature input"),
    "compile-npz-unknown-key": _c(COMPILE, lambda c: (
        [c.original, c.out, "--inputs", c.npz("renamed.npz", nope=c.features())], c.out), 1,
        "--inputs names 'nope', which is not an input", "its inputs are: features"),
    "compile-npz-wrong-dtype": _c(COMPILE, lambda c: (
        [c.original, c.out, "--inputs", c.npz("text.npz", features=np.full((2, 16), "a"))],
        c.out), 1, "input 'features' <U1 values but the model takes float32",
        "save it with .astype(float32)"),
    "compile-npz-wrong-shape": _c(COMPILE, lambda c: (
        [c.original, c.out, "--inputs", c.npz("narrow.npz", features=c.features()[:, :15])],
        c.out), 1, "shape (2, 15), which contradicts the model's declared shape (None, 16)",
        "keep the declared sizes"),
    "compile-npz-not-a-zip": _c(COMPILE, lambda c: (
        [c.original, c.out, "--inputs", c.file("junk.npz", b"PK\x03\x04junk")], c.out), 1,
        "junk.npz: not a readable .npz file", "write it with numpy.savez"),
    "compile-npz-is-npy": _c(COMPILE, lambda c: (
        [c.original, c.out, "--inputs", _npy(c)], c.out), 1,
        "a single .npy array, not an .npz", "numpy.savez(path, <input key>=array)"),
    "compile-workdir-is-file": _c(COMPILE, lambda c: (
        [c.original, c.out, "--compiler_workdir", c.file("work")], c.out), 1,
        "work: exists and is not a directory", "pass a directory"),
    "compile-workdir-inside-input": _c(COMPILE, lambda c: (
        [(m := c.model("copy", source=ORIGINAL)), c.out, "--compiler_workdir",
         os.path.join(m, "work")], c.out), 1,
        "is inside the input directory", "choose a path outside it"),
    # neuron-run: the model, flags and --inputs (the last four load the model: TensorFlow)
    "run-uncompiled": _c(RUN, lambda c: ([c.original], None), 1,
                         "not a compiled model (no NeuronOp; this is an original SavedModel)",
                         "run neuron-compile first"),
    "run-repeat-0": _c(RUN, lambda c: ([str(c.compiled), "--repeat", "0"], None), 2,
                       "'--repeat'", "0 is not in the range x>=1"),
    "run-threads-abc": _c(RUN, lambda c: ([str(c.compiled), "--threads", "abc"], None), 2,
                          "'abc' is not a valid integer range", "--help"),
    "run-inputs-and-random": _c(RUN, lambda c: ([str(c.compiled), "--random", "--inputs",
                                                 str(FIXTURES / "keras_dense.inputs.npz")],
                                                None), 2,
                                "--inputs and --random/--batch exclude each other", "pick one"),
    "run-npz-missing": _c(RUN, lambda c: ([str(c.compiled), "--inputs", c.path("gone.npz")],
                                          None), 1,
                          "gone.npz: no such file", "pass an .npz made with numpy.savez"),
    "run-npz-is-directory": _c(RUN, lambda c: ([str(c.compiled), "--inputs",
                                                c.model("inputs.npz")], None), 1,
                               "inputs.npz: not a regular file", "numpy.savez"),
    "run-unknown-signature": _c(RUN, lambda c: ([str(c.compiled), "--signature_def", "nope"],
                                                None), 1,
                                "no signature 'nope'", "pass one of them with --signature_def"),
    "run-unknown-instance-type": _c(RUN, lambda c: ([str(c.compiled), "--instance-type",
                                                     "inf9.huge"], None), 1,
                                    "unknown instance type 'inf9.huge'", "known: inf1.xlarge"),
    "run-npz-missing-key": _c(RUN, lambda c: ([str(c.compiled), "--inputs",
                                               c.npz("renamed.npz", nope=c.features())], None),
                              1, "missing ['features']; unknown ['nope']",
                              "expected keys ['features']"),
    "run-npz-wrong-dtype": _c(RUN, lambda c: (
        [str(c.compiled), "--inputs",
         c.npz("complex.npz", features=c.features().astype(np.complex64))], None), 1,
        "input 'features' is float32 but got complex64", "convert it with .astype(float32)"),
    # neuron-verify: tolerances, conflicting sources, swapped models, --inputs
    "verify-rtol-minus-1": _c(VERIFY, lambda c: ([c.original, str(c.compiled), "--rtol", "-1"],
                                                 None), 2,
                              "'--rtol'", "-1.0 is not in the range x>=0"),
    "verify-atol-abc": _c(VERIFY, lambda c: ([c.original, str(c.compiled), "--atol", "abc"],
                                             None), 2,
                          "'abc' is not a valid float range", "--help"),
    "verify-runs-0": _c(VERIFY, lambda c: ([c.original, str(c.compiled), "--runs", "0"], None),
                        2, "'--runs'", "0 is not in the range x>=1"),
    "verify-inputs-and-runs": _c(VERIFY, lambda c: (
        [c.original, str(c.compiled), "--runs", "3", "--inputs",
         str(FIXTURES / "keras_dense.inputs.npz")], None), 2,
        "--inputs excludes --random, --runs and --batch", "pick one source"),
    "verify-missing-argument": _c(VERIFY, lambda c: ([c.original], None), 2,
                                  "Missing argument 'COMPILED_DIR'", "--help"),
    "verify-compiled-as-original": _c(VERIFY, lambda c: ([str(c.compiled), str(c.compiled)],
                                                         None), 1,
                                      "is a compiled model (it has NeuronOps), not the original",
                                      "pass the model it was compiled from first"),
    "verify-uncompiled-as-compiled": _c(VERIFY, lambda c: ([c.original, c.original], None), 1,
                                        "not a compiled model (no NeuronOp",
                                        "run neuron-compile first"),
    "verify-npz-not-a-zip": _c(VERIFY, lambda c: (
        [c.original, str(c.compiled), "--inputs", c.file("junk.npz", b"\x93NUMPYjunk")],
        None), 1, "junk.npz: not a readable .npz file", "write it with numpy.savez"),
    "verify-npz-wrong-shape": _c(VERIFY, lambda c: (
        [c.original, str(c.compiled), "--inputs",
         c.npz("wide.npz", features=np.zeros((2, 17), np.float32))], None), 1,
        "input 'features' has shape (2, 17) but the signature expects (?, 16)", "reshape it"),
    "verify-signatures-differ": _c(VERIFY, lambda c: ([str(FIXTURES / "tf1_conv"),
                                                       str(c.compiled)], None), 1,
                                   "the signatures do not correspond",
                                   "verify a compiled model against the model it was "
                                   "compiled from"),
}

# -v must add the traceback to a user error (click's usage errors need not).
VERBOSE_CASES = ["inspect-missing-dir", "inspect-pb-is-fifo", "auto-uncompiled",
                 "place-uncompiled", "compile-npz-missing-key", "run-npz-missing",
                 "verify-compiled-as-original"]


def _npy(ctx: Ctx) -> str:
    path = ctx.tmp / "features.npy"
    np.save(path, ctx.features())
    return str(path)


def _invoke(command: str, args: list[str]) -> subprocess.CompletedProcess:
    # The process's own NEURON_* settings (flags, visible cores, instance) would change cases.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURON_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.run([script(command), *args], capture_output=True, text=True, env=env,
                          timeout=240, stdin=subprocess.DEVNULL)


@pytest.fixture
def ctx(tmp_path: Path, compiled: Path) -> Any:
    context = Ctx(tmp_path, compiled)
    yield context
    for undo in reversed(context.cleanup):
        undo()


def _run_case(case: Case, ctx: Ctx, *extra: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run one case; assert nothing was written and no input changed.  Returns the process
    and its one stderr line checked against the case's code and fragments."""
    args, out = case.build(ctx)
    inputs = {a: _fingerprint(Path(a)) for a in args if os.path.isabs(a) and os.path.lexists(a)}
    out_existed = out is not None and os.path.lexists(out)
    result = _invoke(case.command, [*args, *extra])
    assert result.returncode == case.code, result.stderr
    for path, before in inputs.items():
        assert _fingerprint(Path(path)) == before, f"{path} changed"
    if out:
        assert out_existed or not os.path.lexists(out), f"{out} was written"
        assert _temporaries(Path(out)) == [], "temporary output left behind"
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    return result, lines[-1]


@pytest.mark.parametrize("case_id", [pytest.param(k, marks=v.marks) for k, v in CASES.items()])
def test_bad_input_is_one_clear_line(case_id: str, ctx: Ctx) -> None:
    case = CASES[case_id]
    result, line = _run_case(case, ctx)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in case.fragments:
        assert fragment in line, line


@pytest.mark.parametrize("case_id", VERBOSE_CASES)
def test_verbose_adds_the_traceback(case_id: str, ctx: Ctx) -> None:
    result, line = _run_case(CASES[case_id], ctx, "-v")
    assert "Traceback (most recent call last)" in result.stderr
    assert CASES[case_id].fragments[0] in line


def test_nan_outputs_match_and_are_reported(ctx: Ctx) -> None:
    # A NaN input alone comes out finite here (TensorFlow's fused MatMul+BiasAdd+Relu clamps
    # it to 0, in both models), so row 0 sits near float32's maximum: the hidden layer
    # overflows to inf and softmax gives NaN, in the same places in both models.
    features = ctx.features().copy()
    features[0, :] = np.float32(3e38)
    features[1, 3] = np.nan
    inputs = ctx.npz("nan.npz", features=features)
    before = _fingerprint(Path(inputs)), _fingerprint(ctx.compiled)
    result = _invoke(VERIFY, [ctx.original, str(ctx.compiled), "--inputs", inputs])
    assert result.returncode == 0, result.stderr
    assert "PASS (8 NaN matched)" in result.stdout, result.stdout
    assert "Outputs match the original" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("PASSED |")
    assert (_fingerprint(Path(inputs)), _fingerprint(ctx.compiled)) == before


# ------------------------------------------------------------------------------ Python API


def _api_compile(ctx: Ctx, model: str | None = None, out: str | None = None,
                 **kwargs: Any) -> Callable[[], Any]:
    return lambda: neuroncli.saved_model.compile(ctx.original if model is None else model,
                                                 ctx.out if out is None else out, **kwargs)


def _api_load_original_and_call(ctx: Ctx) -> None:
    model = neuroncli.load(ctx.original)
    try:
        model(features=ctx.features())
    finally:
        model.unload()


def _api_verify(ctx: Ctx) -> Any:
    from neuroncli.runtime.verify import verify
    return verify(ctx.compiled, ctx.compiled)


API_CASES: dict[str, tuple[Callable[[Ctx], Callable[[], Any]], str]] = {
    "compile-missing-dir": (lambda c: _api_compile(c, model=c.path("nope")),
                            "nope: no such directory"),
    "compile-empty-model-dir": (lambda c: _api_compile(c, model=""),
                                "the model directory is an empty string"),
    "compile-batch-size-0": (lambda c: _api_compile(c, batch_size=0),
                             "batch size must be a positive integer, got 0"),
    "compile-unknown-tags": (lambda c: _api_compile(c, tags=["train"]),
                             "no meta graph with tag set {train}"),
    "compile-unknown-signature": (lambda c: _api_compile(c, signature_def_key="nope"),
                                  "no signature 'nope'"),
    "compile-output-is-input": (lambda c: _api_compile(c, out=c.original),
                                "the output directory is the input directory"),
    "compile-shape-feed-unknown-key": (lambda c: _api_compile(
        c, model_shape_feed_dict={"nope": (1, 16)}), "--input-shape names 'nope'"),
    "compile-feed-missing-key": (lambda c: _api_compile(
        c, model=str(FIXTURES / "tf1_conv"),
        model_feed_dict={"image": np.zeros((2, 8, 8, 3), np.float32)}),
        "--inputs lacks input(s) 'bias_map'"),
    "compile-feed-wrong-dtype": (lambda c: _api_compile(
        c, model_feed_dict={"features": np.zeros((2, 16), np.complex64)}),
        "complex64 values but the model takes float32"),
    "compile-unknown-compiler-flag": (lambda c: _api_compile(c, compiler_args=["--fast"]),
                                      "unknown compiler flag '--fast'"),
    "load-missing-dir": (lambda c: lambda: neuroncli.load(c.path("nope")),
                         "nope: no such directory"),
    "load-unknown-signature": (lambda c: lambda: neuroncli.load(c.compiled, "nope"),
                               "no signature 'nope'"),
    "load-bad-start-nc": (lambda c: lambda: neuroncli.load(c.compiled, start_nc=-5),
                          "start_nc must be -1 (least-used core) or a core index from 0 to 63, got -5"),
    "load-original-model": (lambda c: lambda: _api_load_original_and_call(c),
                            "not a compiled model"),
    "verify-compiled-as-original": (lambda c: lambda: _api_verify(c),
                                    "is a compiled model (it has NeuronOps)"),
    "load-npz-not-a-zip": (lambda c: lambda: neuroncli.saved_model.load_npz(
        c.file("junk.npz", b"PK\x03\x04")), "not a readable .npz file"),
    "set-neuron-cores-bad-start": (lambda c: lambda: neuroncli.set_neuron_cores(
        object(), start_nc=-2), "start_nc must be -1 (least-used core)"),
    "set-neuron-cores-not-a-model": (lambda c: lambda: neuroncli.set_neuron_cores(
        object(), 0, 1), "object is not a compiled model"),
    "neuron-cores-context-count-0": (lambda c: lambda: neuroncli.neuron_cores_context(
        nc_count=0).__enter__(), "nc_count must be -1 (exactly one core) or from 1 to 64"),
    "auto-multicore-num-cores-0": (lambda c: lambda: neuroncli.auto_multicore(
        object(), None, num_cores=0), "num_cores must be an integer from 1 to 64, got 0"),
    "trace-unconvertible-inputs": (lambda c: lambda: neuroncli.trace(
        lambda x: x, object()), "trace: calling the function on example_inputs failed"),
    "trace-function-raises": (lambda c: lambda: neuroncli.trace(
        lambda x: 1 // 0, np.zeros((1, 2), np.float32)),
        "ZeroDivisionError"),
    "compile-empty-output": (lambda c: _api_compile(c, out=""), "empty"),
    "compile-shape-feed-not-numbers": (lambda c: _api_compile(
        c, model_shape_feed_dict={"features": "ab"}), "model_shape_feed_dict"),
}
API_XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("case_id", [
    pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=API_XFAIL[k]))
    if k in API_XFAIL else k for k in API_CASES])
def test_python_api_raises_user_error(case_id: str, ctx: Ctx) -> None:
    build, fragment = API_CASES[case_id]
    watched = [ORIGINAL, FIXTURES / "tf1_conv", ctx.compiled]
    before = [_fingerprint(p) for p in watched]
    with pytest.raises(neuroncli.UserError) as info:
        build(ctx)()
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert fragment in message and "\n" not in message.strip(), message
    assert [_fingerprint(p) for p in watched] == before
    assert not os.path.lexists(ctx.out) and _temporaries(Path(ctx.out)) == []
