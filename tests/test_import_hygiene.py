"""Protobuf-only paths must never import TensorFlow's runtime (it costs seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _modules_after(code: str) -> str:
    probe = code + "\nimport sys\nprint('TF' if 'tensorflow' in sys.modules else 'NOTF')"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def test_import_neuroncli_leaves_tensorflow_out() -> None:
    assert _modules_after("import neuroncli, neuroncli.saved_model") == "NOTF"


def test_the_public_load_does_not_import_the_compiler() -> None:
    # neuroncli.load may return a TracedModel (neuroncli.tracing): the runtime side of the
    # project, which never imports the compiler or the partitioner.
    code = ("import sys, neuroncli\nneuroncli.load\n"
            "print(sorted(m for m in sys.modules if m.startswith(('neuroncli.compiler', "
            "'neuroncli.partition', 'tensorflow'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_proto_classes_are_tensorflows_own_once_it_loads() -> None:
    code = ("from neuroncli import proto\n"
            "import sys\nassert 'tensorflow' not in sys.modules\n"
            "g = proto.GraphDef(); g.node.add(name='a', op='Const')\n"
            "import tensorflow as tf\n"
            "assert tf.compat.v1.GraphDef is proto.GraphDef\n"
            "from tensorflow.core.protobuf import saved_model_pb2\n"
            "assert saved_model_pb2.SavedModel is proto.SavedModel")
    assert _modules_after(code) == "TF"


SCRIPTS = ["neuron", "neuron-compile", "tf-neuron-auto-multicore", "neuron-place",
           "neuron-inspect", "neuron-run", "neuron-verify"]


@pytest.mark.parametrize("argv", [[name, "--help"] for name in SCRIPTS] + [
    ["neuron", "compile", "--help"],
    ["neuron", "run", "--help"],
    ["neuron", "verify", "--help"],
])
def test_help_does_not_import_tensorflow(argv: list[str]) -> None:
    # Call the console script's entry point in a process that then checks sys.modules.
    code = ("import sys\n"
            "from importlib.metadata import entry_points\n"
            f"sys.argv = {argv!r}\n"
            "(target,) = [e for e in entry_points(group='console_scripts')"
            " if e.name == sys.argv[0]]\n"
            "try:\n"
            "    target.load()()\n"
            "except SystemExit as exc:\n"
            "    assert exc.code == 0, exc.code")
    assert _modules_after(code) == "NOTF"
    # and the installed console script itself works
    out = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage" in out.stdout


def test_descriptor_cache_is_written_reused_and_survives_corruption(tmp_path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = ("from neuroncli import proto\n"
            "m = proto.SavedModel(); m.meta_graphs.add().graph_def.node.add(name='a')\n"
            "assert proto.SavedModel.FromString(m.SerializeToString()) == m\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "ok"
    (cache,) = list((tmp_path / "neuroncli").iterdir())
    # Reused: a probe module listed in the cache's header is imported by the next run, and
    # the cache file is not written again.
    header, records = cache.read_bytes().split(b"\n", 1)
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "neuroncli_cache_probe.py").write_text("print('cache was read')\n")
    modules = json.loads(header) + ["neuroncli_cache_probe"]
    cache.write_bytes(json.dumps(modules).encode() + b"\n" + records)
    written = cache.stat().st_mtime_ns
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(probe_dir)}, check=True)
    assert out.stdout.split() == ["cache", "was", "read", "ok"]
    assert cache.stat().st_mtime_ns == written
    cache.write_bytes(b'["google.protobuf.any_pb2"]\n\x05\x00\x00\x00ab')  # truncated record
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
