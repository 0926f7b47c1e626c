"""``neuroncli.runtime.instance`` in process: instance types, visible cores, timeouts, and
the exact words of each refusal (``make mutate`` sees these)."""

from __future__ import annotations

import os

import pytest

from neuroncli.errors import UserError
from neuroncli.format.instances import INSTANCE_TYPES
from neuroncli.runtime import instance

INF1 = instance.instance_spec("inf1.xlarge")  # 4 cores


def _message(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    return str(caught.value)


def test_unknown_instance_types_name_their_source_and_the_known_ones() -> None:
    known = ", ".join(INSTANCE_TYPES)
    assert _message(lambda: instance.instance_spec("inf9.xlarge", {})) == \
        f"--instance-type: unknown instance type 'inf9.xlarge'; known: {known}"
    env = {"NEURON_SIM_INSTANCE_TYPE": " inf9.xlarge "}
    assert _message(lambda: instance.instance_spec(None, env)) == \
        f"NEURON_SIM_INSTANCE_TYPE: unknown instance type 'inf9.xlarge'; known: {known}"
    assert instance.instance_spec("INF1.XLARGE", env).cores == 4


def test_the_process_environment_is_the_default(monkeypatch) -> None:
    monkeypatch.setenv("NEURON_SIM_INSTANCE_TYPE", "inf1.6xlarge")
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "2-3")
    monkeypatch.setenv("NEURON_FRAMEWORK_INFER_TIMEOUT_SEC", "2.5")
    assert instance.instance_spec().cores == 16
    assert instance.visible_cores(INF1) == (2, 3)
    assert instance.infer_timeout() == 2.5


@pytest.mark.parametrize("text, message", [
    ("1,,2", "empty entry: write indices like 0-3 or 1,3"),
    ("a", "'a' is not a core index or a range like 0-3"),
    ("3-1", "range '3-1' must be ascending and non-negative, e.g. 0-3"),
    ("-1", "'-1' is not a core index or a range like 0-3"),
    ("1,1", "a core is listed twice"),
    ("2-4", "core 4 does not exist; the simulated instance has cores 0-3: pick cores in that "
            "range or another --instance-type"),
])
def test_core_list_refusals(text: str, message: str) -> None:
    assert _message(lambda: instance.parse_core_list(text, 4)) == \
        f"NEURON_RT_VISIBLE_CORES={text!r}: {message}"


@pytest.mark.parametrize("text, message", [
    ("x", "not an integer: set it to a core count between 1 and 4"),
    ("0", "must be between 1 and 4 (the simulated instance's core count)"),
    ("5", "must be between 1 and 4 (the simulated instance's core count)"),
])
def test_num_cores_refusals(text: str, message: str) -> None:
    assert _message(lambda: instance.parse_num_cores(text, 4)) == \
        f"NEURON_RT_NUM_CORES={text!r}: {message}"


def test_num_cores_limits() -> None:
    assert instance.parse_num_cores(" 1 ", 4) == (0,)
    assert instance.parse_num_cores("4", 4) == (0, 1, 2, 3)


def test_explicit_arguments_win_and_name_themselves() -> None:
    env = {"NEURON_RT_VISIBLE_CORES": "0", "NEURON_RT_NUM_CORES": "1"}
    assert instance.visible_cores(INF1, "1,3", None, env) == (1, 3)
    assert instance.visible_cores(INF1, None, 3, env) == (0, 1, 2)
    assert _message(lambda: instance.visible_cores(INF1, "7", None, env)) == (
        "visible_cores='7': core 7 does not exist; the simulated instance has cores 0-3: pick "
        "cores in that range or another --instance-type")
    assert _message(lambda: instance.visible_cores(INF1, None, 5, env)) == (
        "num_cores='5': must be between 1 and 4 (the simulated instance's core count)")
    assert instance.visible_cores(INF1, None, None, {"NEURON_RT_NUM_CORES": " 2 "}) == (0, 1)
    assert instance.visible_cores(INF1, None, None, {"NEURON_RT_VISIBLE_CORES": " "}) == \
        (0, 1, 2, 3)
    assert instance.visible_cores(INF1, None, None, {}) == (0, 1, 2, 3)


def test_timeouts() -> None:
    assert instance.infer_timeout(0.5, {"NEURON_FRAMEWORK_INFER_TIMEOUT_SEC": "9"}) == 0.5
    assert isinstance(instance.infer_timeout(1, {}), float)
    assert instance.infer_timeout(None, {}) == 10.0
    assert instance.infer_timeout(None, {"NEURON_FRAMEWORK_INFER_TIMEOUT_SEC": " 0.25 "}) == 0.25
    assert _message(lambda: instance.infer_timeout(0, {})) == "timeout must be positive, got 0"
    assert _message(lambda: instance.infer_timeout(-1, {})) == "timeout must be positive, got -1"
    for text in ("0", "-2"):
        assert _message(lambda: instance.infer_timeout(
            None, {"NEURON_FRAMEWORK_INFER_TIMEOUT_SEC": text})) == \
            f"NEURON_FRAMEWORK_INFER_TIMEOUT_SEC={text!r}: must be positive"


def test_host_cpus_is_the_affinity_mask(monkeypatch) -> None:
    assert instance.host_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set())
    assert instance.host_cpus() == 1

    def unsupported(pid: int) -> set:
        raise OSError("no affinity")

    monkeypatch.setattr(os, "sched_getaffinity", unsupported)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert instance.host_cpus() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert instance.host_cpus() == 3


@pytest.mark.parametrize("count, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (1024 ** 2, "1.0 MiB"), (5 * 1024 ** 3, "5.0 GiB"), (3 * 1024 ** 4, "3072.0 GiB"),
    (-2048, "-2.0 KiB"),
])
def test_format_bytes(count: int, text: str) -> None:
    assert instance.format_bytes(count) == text
