"""Version directories without a restart: hot add and removal, a slow copy never loaded
half-written, broken and uncompiled versions reported in status while the old one serves."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

import neuroncli
from tests import serving_support as support
from tests.conftest import FIXTURES
from tests.serving_support import Server, http, model_base, wait_for

compiled_models = support.compiled_models  # session fixture

ROWS = np.load(FIXTURES / "keras_dense.inputs.npz")["features"]


def _status(server: Server) -> dict[str, dict]:
    code, body = http("GET", f"{server.rest}/v1/models/m")
    assert code == 200, body
    return {s["version"]: s for s in body["model_version_status"]}


def _served_version(server: Server) -> str:
    code, body = http("GET", f"{server.rest}/v1/models/m/metadata")
    assert code == 200, body
    assert http("POST", f"{server.rest}/v1/models/m:predict",
                {"instances": ROWS.tolist()})[0] == 200
    return body["model_spec"]["version"]


def _states(server: Server) -> dict[str, str]:
    return {v: s["state"] for v, s in _status(server).items()}


def _install(source, base, version: int) -> None:
    """Copy a version in the way deployment scripts should: aside, then one rename."""
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    os.rename(staging, base / str(version))


@pytest.fixture
def server(compiled_models, tmp_path):
    base = model_base(tmp_path / "m", compiled_models["dense"])
    with Server("--model_name=m", f"--model_base_path={base}",
                "--file_system_poll_wait_seconds=0.2") as running:
        running.base = base
        yield running
        assert running.stop() == 0, running.stderr()


def test_hot_add_and_removal(server, compiled_models) -> None:
    assert _states(server) == {"1": "AVAILABLE"}
    _install(compiled_models["dense"], server.base, 2)
    wait_for(lambda: _states(server) == {"2": "AVAILABLE", "1": "END"})
    assert _served_version(server) == "2"
    shutil.rmtree(server.base / "2")
    wait_for(lambda: _states(server) == {"2": "END", "1": "AVAILABLE"})
    assert _served_version(server) == "1"


def test_slow_copy_is_not_loaded_half_written(server, compiled_models) -> None:
    source = compiled_models["dense"]
    target = server.base / "3"
    shutil.copytree(source, target, ignore=lambda d, names: ["saved_model.pb"]
                    if os.path.samefile(d, source) else [])
    data = (source / "saved_model.pb").read_bytes()
    pieces = 8
    with open(target / "saved_model.pb", "wb") as handle:
        for index in range(pieces):  # 8 pieces, 0.25 s apart: over 2 s
            handle.write(data[index * len(data) // pieces:(index + 1) * len(data) // pieces])
            handle.flush()
            time.sleep(0.25)
            assert _states(server) in ({"1": "AVAILABLE"}, {"3": "START", "1": "AVAILABLE"})
            assert _served_version(server) == "1"
    wait_for(lambda: _states(server) == {"3": "AVAILABLE", "1": "END"})
    assert "Failed to load" not in server.stderr()


def test_broken_and_uncompiled_versions_leave_the_old_one_serving(server) -> None:
    broken = server.base / ".staging"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"\x0a\xff\xff not a SavedModel")
    os.rename(broken, server.base / "4")
    status = wait_for(lambda: _status(server).get("4", {}).get("state") == "END"
                      and _status(server)["4"])
    assert status["status"]["error_code"] == "INVALID_ARGUMENT"
    with pytest.raises(neuroncli.UserError) as info:
        neuroncli.load(server.base / "4")
    assert status["status"]["error_message"] == str(info.value)
    assert _states(server)["1"] == "AVAILABLE" and _served_version(server) == "1"

    _install(FIXTURES / "keras_dense", server.base, 5)  # an uncompiled SavedModel
    status = wait_for(lambda: _status(server).get("5", {}).get("state") == "END"
                      and _status(server)["5"])
    with pytest.raises(neuroncli.UserError) as info:
        neuroncli.load(server.base / "5")
    assert status["status"]["error_message"] == str(info.value)
    assert "compile" in str(info.value)
    assert _states(server)["1"] == "AVAILABLE" and _served_version(server) == "1"
