"""The light install (no TensorFlow): protobuf-only commands work from the shipped descriptor
set and write the same bytes; the TensorFlow commands say which extra to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import neuroncli
from neuroncli import proto
from neuroncli.lazy_tf import SUPPORTED_TF, version_warning
from neuroncli.proto.generate import generate
from tests.conftest import FIXTURES, ROOT, tree_digest

# Makes `tensorflow*` unimportable and unfindable in a child interpreter, as without it.
HIDE_TF = """
import sys
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith(("tensorflow.", "tensorflow_")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("light") / "tf1_conv_neuron"
    neuroncli.saved_model.compile(FIXTURES / "tf1_conv", out)
    return out


def _protobuf_steps(python: list[str], model: Path, out: Path, env: dict | None = None) -> dict:
    """auto-multicore, place and inspect --json; returns what each wrote/printed."""
    steps = {
        "auto": ("neuroncli.cli.auto_multicore",
                 [str(model), "--num_cores", "2", "--new_model_dir", str(out / "x2")]),
        "place": ("neuroncli.cli.place", [str(model), "--new_model_dir", str(out / "nc1"),
                                          "--start-nc", "1", "--nc-count", "2"]),
        "inspect": ("neuroncli.cli.inspect", [str(out / "x2"), "--json"]),
    }
    out.mkdir(parents=True)
    results = {}
    for key, (module, args) in steps.items():
        code = f"{HIDE_TF if python[-1] == 'hide' else ''}\nimport sys\n" \
               f"sys.argv = ['x', *sys.argv[1:]]\nfrom {module} import main\nmain()"
        # cwd: not the checkout, so a light venv imports its installed wheel, not ./neuroncli
        result = subprocess.run([python[0], "-c", code, *args], capture_output=True,
                                text=True, timeout=300, env=env, cwd=out.parent)
        assert result.returncode == 0, result.stderr
        results[key] = result.stdout.replace(str(out), "OUT")
    results["files"] = {name: tree_digest(out / name) for name in ("x2", "nc1")}
    return results


def test_shipped_descriptors_are_the_installed_tensorflows(tmp_path: Path) -> None:
    """The shipped set equals what the script writes from the installed (supported) TF."""
    fresh = generate(str(tmp_path / "fresh.bin"))
    assert Path(fresh).read_bytes() == Path(proto.SHIPPED).read_bytes()
    google, blobs = proto.read_descriptor_file(proto.SHIPPED)
    assert len(blobs) > 10 and "google.protobuf.any_pb2" in google


def test_protobuf_commands_without_tensorflow_write_the_same_bytes(compiled: Path,
                                                                   tmp_path: Path) -> None:
    full = _protobuf_steps([sys.executable, "full"], compiled, tmp_path / "full")
    light = _protobuf_steps([sys.executable, "hide"], compiled, tmp_path / "light")
    assert light == full


@pytest.mark.parametrize("module,args", [
    ("neuroncli.cli.compile", ["{fixture}", "{out}"]),
    ("neuroncli.cli.run", ["{compiled}"]),
    ("neuroncli.cli.verify", ["{fixture}", "{compiled}"]),
    ("neuroncli.cli.serve", ["--port=0", "--model_name=m", "--model_base_path={tmp}"]),
])
def test_tensorflow_commands_name_the_extra(compiled: Path, tmp_path: Path, module: str,
                                            args: list[str]) -> None:
    values = {"fixture": str(FIXTURES / "tf1_conv"), "out": str(tmp_path / "out"),
              "compiled": str(compiled), "tmp": str(tmp_path)}
    code = f"{HIDE_TF}\nimport sys\nsys.argv = ['x', *sys.argv[1:]]\nfrom {module} import main\nmain()"
    result = subprocess.run([sys.executable, "-c", code, *(a.format(**values) for a in args)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: this needs TensorFlow {SUPPORTED_TF}, which is not installed: "
        "pip install 'neuroncli[cpu]' (tensorflow-cpu) or 'neuroncli[gpu]' "
        "(tensorflow, e.g. next to a GPU build)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("call", ["neuroncli.load(sys.argv[1])",
                                  "neuroncli.trace(lambda x: x, [])"])
def test_load_and_trace_without_tensorflow(compiled: Path, call: str) -> None:
    code = (f"{HIDE_TF}\nimport sys, neuroncli\ntry:\n    {call}\n"
            "except neuroncli.UserError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code, str(compiled)], capture_output=True,
                            text=True, timeout=120, check=True)
    assert "pip install 'neuroncli[cpu]'" in result.stdout


def test_unsupported_version_warns_with_the_range() -> None:
    assert version_warning(f"{SUPPORTED_TF}.0") is None
    assert version_warning(f"{SUPPORTED_TF}.3rc1") is None
    major, minor = SUPPORTED_TF.split(".")
    text = version_warning(f"{major}.{int(minor) + 1}.0")
    assert text == (f"warning: TensorFlow {major}.{int(minor) + 1}.0 is not supported: "
                    f"neuroncli supports TensorFlow {SUPPORTED_TF}.x ({SUPPORTED_TF}.0 to "
                    f"<{major}.{int(minor) + 1}); results may differ or fail")
    assert version_warning(f"{SUPPORTED_TF}0.1") is not None  # 2.210 is not 2.21


def _versions(*names: str) -> list[str]:
    from importlib.metadata import version
    return [f"{name}=={version(name)}" for name in names]


@pytest.mark.slow
def test_fresh_light_venv(compiled: Path, tmp_path: Path) -> None:
    """A venv with only the base install (no TensorFlow) gives the full install's bytes.
    The base packages are pinned to this venv's versions (pip's cache serves them)."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True,
                   timeout=600)
    venv = tmp_path / "venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    python = str(venv / "bin" / "python")
    pins = _versions("click", "rich", "protobuf", "numpy", "markdown-it-py", "mdurl",
                     "pygments")
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *pins], check=True, timeout=600)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-deps", *map(str, wheels.glob("neuroncli-*.whl"))], check=True,
                   timeout=600)
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file())
    print(f"light venv: {size / 2**20:.1f} MiB, installed in {seconds:.1f} s")
    probe = subprocess.run([python, "-c", "import neuroncli, tensorflow"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert "No module named 'tensorflow'" in probe.stderr  # the wheel, without TensorFlow
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    light = _protobuf_steps([python, "light"], compiled, tmp_path / "light", env=env)
    full = _protobuf_steps([sys.executable, "full"], compiled, tmp_path / "full")
    assert light == full
    out = subprocess.run([str(venv / "bin" / "neuron-compile"), str(FIXTURES / "tf1_conv"),
                          str(tmp_path / "c")], capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "pip install 'neuroncli[cpu]'" in out.stderr
    shutil.rmtree(venv)
