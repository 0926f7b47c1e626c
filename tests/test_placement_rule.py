"""One rule for core indices and counts (``neuroncli.format.placement``), at every entry point.

``neuron-place``'s request, the placement calls, ``auto_multicore``, the runtime's ``load``
(through ``runtime.placement.place``) and the rewrites accept and refuse the same values, with
the same message; booleans, which Python counts as integers, are refused everywhere.
Protobuf only: no model is loaded (the calls check their arguments before touching it).
"""

from __future__ import annotations

import pytest

import neuroncli
from neuroncli.errors import UserError
from neuroncli.format.placement import MAX_CORES, check_nc_count, check_num_cores, check_start_nc
from neuroncli.rewrite import PlacementRequest
from neuroncli.rewrite.multicore import auto_multicore_saved_model
from neuroncli.runtime import placement
from tests.test_runtime_units import program

START = "start_nc must be -1 (least-used core) or a core index from 0 to 63, got "
COUNT = "nc_count must be -1 (exactly one core) or from 1 to 64"
CORES = "num_cores must be an integer from 1 to 64, got "


def _message(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    return str(caught.value)


def _start_nc_entry_points(value: object) -> list:
    return [lambda: neuroncli.set_neuron_cores(object(), value, 1),
            lambda: neuroncli.neuron_cores_context(value, 1).__enter__(),
            lambda: PlacementRequest(value, 1),
            lambda: PlacementRequest.from_options(value, None, False),
            lambda: placement.place([program()], [0] * 4, start_nc=value, nc_count=1)]


def _nc_count_entry_points(value: object) -> list:
    return [lambda: neuroncli.set_neuron_cores(object(), 0, value),
            lambda: neuroncli.neuron_cores_context(0, value).__enter__(),
            lambda: PlacementRequest(0, value),
            lambda: PlacementRequest.from_options(None, value, False),
            lambda: placement.place([program()], [0] * 4, start_nc=0, nc_count=value)]


@pytest.mark.parametrize("value", [True, False, -2, MAX_CORES, 1.0, "1", None])
def test_start_nc_is_refused_alike_everywhere(value: object) -> None:
    if value is None:  # None is "not given" to load() and the command line: a value elsewhere
        entry_points = _start_nc_entry_points(value)[:3]
    else:
        entry_points = _start_nc_entry_points(value)
    assert [_message(call) for call in entry_points] == \
        [START + repr(value)] * len(entry_points)


@pytest.mark.parametrize("value", [True, False, -2, MAX_CORES + 1, 2.0])
def test_nc_count_is_refused_alike_everywhere(value: object) -> None:
    messages = [_message(call) for call in _nc_count_entry_points(value)]
    # 0 means "every visible core" only where it is written for the user or read back
    # (the request --multicore makes, the attribute, load()): the wording says so there.
    every = f"{COUNT}, or 0 (every visible core), got {value!r}"
    plain = f"{COUNT}, got {value!r}"
    assert messages == [plain, plain, every, plain, every]


def test_zero_cores_is_every_visible_core_only_where_the_user_asked_for_it() -> None:
    assert PlacementRequest.from_options(None, None, True) == PlacementRequest(0, 0)
    assert placement.place([program()], [0] * 3, nc_count=0).replicas == ((0,), (1,), (2,))
    assert _message(lambda: neuroncli.set_neuron_cores(object(), 0, 0)) == \
        f"{COUNT}, got 0"
    assert _message(lambda: PlacementRequest.from_options(None, 0, False)) == \
        f"{COUNT}, got 0"


@pytest.mark.parametrize("value", [True, False, 0, MAX_CORES + 1, 2.0])
def test_num_cores_is_refused_alike_everywhere(value: object, tmp_path) -> None:
    assert _message(lambda: neuroncli.auto_multicore(object(), None, value)) == \
        CORES + repr(value) + ": pass the number of NeuronCores to replicate over"
    assert _message(lambda: auto_multicore_saved_model(
        str(tmp_path / "m"), str(tmp_path / "out"), value)) == \
        "--" + CORES + repr(value) + ": pass the number of NeuronCores to replicate over"
    assert not (tmp_path / "out").exists()


def test_the_limits_themselves_are_accepted() -> None:
    assert [check_start_nc(v) for v in (-1, 0, MAX_CORES - 1)] == [-1, 0, 63]
    assert [check_nc_count(v) for v in (-1, 1, MAX_CORES)] == [-1, 1, 64]
    assert check_nc_count(0, all_visible=True) == 0
    assert [check_num_cores(v) for v in (1, MAX_CORES)] == [1, 64]
