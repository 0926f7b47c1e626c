"""SavedModel reading/selection errors and atomic output directories (protobuf only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neuroncli import proto
from neuroncli.errors import UserError
from neuroncli.savedmodel import (
    atomic_output, read_saved_model, select_meta_graph, select_signature,
)


def _write_model(path: Path, tag_sets=(("serve",),), signatures=("serving_default",)) -> Path:
    sm = proto.SavedModel(saved_model_schema_version=1)
    for tags in tag_sets:
        mg = sm.meta_graphs.add()
        mg.meta_info_def.tags.extend(tags)
        for key in signatures:
            sig = mg.signature_def[key]
            sig.inputs["x"].name = "x:0"
            sig.inputs["x"].dtype = 1
            sig.outputs["y"].name = "y:0"
            sig.outputs["y"].dtype = 1
    path.mkdir(parents=True, exist_ok=True)
    (path / "saved_model.pb").write_bytes(sm.SerializeToString())
    return path


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such directory"):
        read_saved_model(tmp_path / "nope")


def test_directory_without_saved_model_pb(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no saved_model.pb"):
        read_saved_model(tmp_path)


def test_pbtxt_only_is_explained(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pbtxt").write_text("meta_graphs {}")
    with pytest.raises(UserError, match="binary"):
        read_saved_model(tmp_path)


@pytest.mark.parametrize("content", [b"\xff\xfe garbage \x00\x13", b"\x12\x05abc"])
def test_corrupt_saved_model_pb(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "saved_model.pb").write_bytes(content)
    with pytest.raises(UserError, match="corrupt"):
        read_saved_model(tmp_path)


def test_truncated_saved_model_pb(tmp_path: Path) -> None:
    model = _write_model(tmp_path / "m")
    data = (model / "saved_model.pb").read_bytes()
    (model / "saved_model.pb").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt"):
        read_saved_model(model)


def test_tag_set_selection(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = _write_model(tmp_path / "m", tag_sets=(("train",), ("serve", "gpu")))
    sm = read_saved_model(model).saved_model
    assert list(select_meta_graph(sm, ["gpu", "serve"]).meta_info_def.tags) == ["serve", "gpu"]
    with pytest.raises(UserError, match=r"no meta graph with tag set \{serve\}.*\{train\}"):
        select_meta_graph(sm, ["serve"])
    caplog.set_level("WARNING", logger="neuroncli")
    assert list(select_meta_graph(sm).meta_info_def.tags) == ["train"]
    assert "using the first" in caplog.text


def test_signature_selection(tmp_path: Path) -> None:
    model = _write_model(tmp_path / "m", signatures=("b_sig", "a_sig"))
    mg = read_saved_model(model).saved_model.meta_graphs[0]
    assert select_signature(mg)[0] == "a_sig"
    assert select_signature(mg, "b_sig")[0] == "b_sig"
    with pytest.raises(UserError, match="no signature 'zzz'.*a_sig, b_sig"):
        select_signature(mg, "zzz")


def test_signature_without_dtype_is_refused(tmp_path: Path) -> None:
    model = _write_model(tmp_path / "m")
    sm = read_saved_model(model).saved_model
    sm.meta_graphs[0].signature_def["serving_default"].inputs["x"].dtype = 0
    with pytest.raises(UserError, match="has no dtype"):
        select_signature(sm.meta_graphs[0])


def test_atomic_output_renames_on_success(tmp_path: Path) -> None:
    with atomic_output(str(tmp_path / "out")) as tmp:
        assert Path(tmp).parent == tmp_path and Path(tmp).name.startswith(".out.tmp-")
        (Path(tmp) / "f").write_text("x")
        assert not (tmp_path / "out").exists()
    assert (tmp_path / "out" / "f").read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_atomic_output_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(str(tmp_path / "out")) as tmp:
            (Path(tmp) / "f").write_text("x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_existing_output_needs_force(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("old")
    with pytest.raises(UserError, match="already exists.*--force"):
        with atomic_output(str(tmp_path / "out")):
            pass
    with atomic_output(str(tmp_path / "out"), force=True) as tmp:
        (Path(tmp) / "new").write_text("new")
    assert sorted(os.listdir(tmp_path / "out")) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_output_inside_or_equal_to_input(tmp_path: Path) -> None:
    model = _write_model(tmp_path / "m")
    with pytest.raises(UserError, match="inside the input"):
        with atomic_output(str(model / "sub"), input_dir=str(model)):
            pass
    with pytest.raises(UserError, match="is the input directory"):
        with atomic_output(str(model), input_dir=str(model), force=True):
            pass


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".out.tmp-999999999-abcd"
    stale.mkdir()
    with atomic_output(str(tmp_path / "out")):
        pass
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_leftover_whose_pid_lives_again_is_still_stale(tmp_path: Path) -> None:
    """A reused pid: the name says a live process (this one) wrote it, but nobody holds its
    lock, so it is a leftover all the same."""
    stale = tmp_path / f".out.tmp-{os.getpid()}-abcd"
    stale.mkdir()
    (stale / "half.pb").write_bytes(b"x")
    with atomic_output(str(tmp_path / "out")):
        pass
    assert sorted(os.listdir(tmp_path)) == ["out"]


_WRITER = """
import sys
from neuroncli.savedmodel import atomic_output
with atomic_output(sys.argv[1]) as tmp:
    open(tmp + "/part", "w").write("x")
    print(tmp, flush=True)
    sys.stdin.read()
"""


def test_a_live_writer_is_left_alone_and_a_killed_one_cleaned_up(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    out = tmp_path / "out"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(out)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(writer.stdout.readline().strip())
        assert tmp.parent == tmp_path and tmp.name.startswith(f".out.tmp-{writer.pid}-")
        assert oct(tmp.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
        with atomic_output(str(tmp_path / "out2")):  # another output: not its business
            pass
        with pytest.raises(UserError, match="already exists"):
            with atomic_output(str(tmp_path / "out2")):
                pass
        (tmp_path / "out2").rmdir()
        with atomic_output(str(out)) as mine:  # the same output, while the writer lives
            assert (tmp / "part").read_text() == "x"
            Path(mine, "f").write_text("mine")
        assert (tmp / "part").read_text() == "x"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert sorted(os.listdir(tmp_path)) == [tmp.name, "out"]
    with atomic_output(str(out), force=True):  # the killed writer's lock is free: stale
        pass
    assert sorted(os.listdir(tmp_path)) == ["out"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
