"""The runtime's placement rules (``neuroncli.runtime.placement``): exact layouts, the rule
each report names, and the exact words of every refusal.  In process, so ``make mutate``
sees them; ``tests/test_runtime_units.py`` has the behaviour-level checks."""

from __future__ import annotations

import pytest

from neuroncli.errors import UserError
from neuroncli.runtime import placement
from tests.test_runtime_units import program

PIPED = (2, 2, 64, 10)  # compiled for 2 pipeline cores
PIPE_RULE = "default: pipeline of 2 cores, one copy"
MORE = "lower the count or the start, or make more cores visible " \
       "(NEURON_RT_VISIBLE_CORES / --instance-type)"


def _layout(programs: list, usage: list, **kwargs: object) -> tuple:
    got = placement.place(programs, usage, **kwargs)
    return got.replicas, got.rule


def _refusal(programs: list, usage: list, **kwargs: object) -> str:
    with pytest.raises(UserError) as caught:
        placement.place(programs, usage, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize("programs, usage, kwargs, expected", [
    ([], [0] * 4, {}, ((), "no NeuronOps: the model runs on the CPU")),
    ([program()], [0] * 16, {}, (((0,), (1,), (2,), (3,)), "default: 1 NeuronOp, 4 copies")),
    ([program(config=(1, 1, 1, 10))], [5, 0, 7], {}, (((1,),), "default: 1 NeuronOp, 1 copy")),
    ([program("a"), program("b")], [5, 0, 7], {},
     (((1,),), "default: 2 NeuronOps, one copy")),
    ([program(config=PIPED)], [1, 1, 0, 0], {}, (((2, 3),), PIPE_RULE)),
    ([program(config=PIPED)], [0, 0], {}, (((0, 1),), PIPE_RULE)),
    ([program(auto_multicore=1)], [9, 0], {}, (((0,),), "_automatic_multicore 1")),
    ([program(auto_multicore=4)], [0] * 4, {},
     (((0,), (1,), (2,), (3,)), "_automatic_multicore 4")),
    ([program(config=PIPED, auto_multicore=1)], [0] * 4, {},
     (((0, 1),), "_automatic_multicore 1")),
    ([program()], [0] * 4, {"start_nc": 2, "nc_count": 1}, (((2,),), "start_nc 2, nc_count 1")),
    ([program()], [3, 3, 0, 0], {"nc_count": 2}, (((2,), (3,)), "start_nc -1, nc_count 2")),
    ([program(config=PIPED)], [0, 0, 1, 1], {"nc_count": 2},
     (((0, 1),), "start_nc -1, nc_count 2")),
])
def test_layouts_and_their_rules(programs: list, usage: list, kwargs: dict,
                                 expected: tuple) -> None:
    assert _layout(programs, usage, **kwargs) == expected


@pytest.mark.parametrize("programs, usage, kwargs, message", [
    ([program("a", start_nc=0), program("b", start_nc=1)], [0] * 4, {},
     "the model's NeuronOps disagree on start_nc ([0, 1]): tag all of them with the same value"),
    ([program(config=PIPED)], [0], {},
     "the model is compiled for 2 pipeline cores but this process sees 1 core(s): make more "
     "cores visible or recompile with a smaller --neuroncore-pipeline-cores"),
    ([program(config=PIPED)], [0] * 4, {"nc_count": 3},
     "nc_count 3 does not fit the model's 2 pipeline cores: each copy spans all of them, so use "
     "a multiple of that"),
    ([program(config=PIPED)], [0] * 4, {"nc_count": 4},
     "nc_count 4: the model is compiled for 2 pipeline cores and cannot be replicated: use one "
     "copy, or recompile without --neuroncore-pipeline-cores to replicate it"),
    ([program()], [0, 0], {"nc_count": 3},
     f"start_nc -1, nc_count 3 needs visible cores 0-2 but this process sees 2 (0-1): {MORE}"),
    ([program(config=PIPED)], [0] * 4, {"start_nc": 3},
     f"start_nc 3, nc_count 2 needs visible cores 3-4 but this process sees 4 (0-3): {MORE}"),
    ([program(auto_multicore=0)], [0] * 4, {},
     "Num of cores for auto multicore replication, 0, is below 1: re-tag the model with a "
     "count of at least 1"),
    ([program(config=PIPED, auto_multicore=2)], [0] * 4, {},
     "_automatic_multicore 2: the model is compiled for 2 pipeline cores and cannot be "
     "replicated: re-tag it with 1 or recompile without --neuroncore-pipeline-cores"),
    ([program(auto_multicore=5)], [0] * 4, {},
     "_automatic_multicore 5 exceeds the 4 visible NeuronCore(s): re-tag the model with at "
     "most that many, or make more cores visible (NEURON_RT_VISIBLE_CORES / --instance-type)"),
])
def test_refusals_say_exactly_what_is_wrong(programs: list, usage: list, kwargs: dict,
                                            message: str) -> None:
    assert _refusal(programs, usage, **kwargs) == message


def test_least_used_start_windows() -> None:
    assert placement.least_used_start([5, 5], 1) == 0  # ties: the first window
    assert placement.least_used_start([3, 1, 2], 2) == 1  # windows 4, 3 (no partial one)
    assert placement.least_used_start([3, 1, 2], 1) == 1
    assert placement.least_used_start([], 1) == 0  # no window at all: core 0


def test_pipeline_width_of_no_programs_is_one_core() -> None:
    assert placement.pipeline_width([]) == 1
    assert placement.pipeline_width([program(), program(config=PIPED)]) == 2
