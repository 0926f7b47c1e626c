"""Round robin, failed cores, void runs and timeouts of ``neuroncli.runtime.dispatch``, in
process and single-threaded, so every choice is exact (and ``make mutate`` sees it)."""

from __future__ import annotations

import time

import pytest

from neuroncli.runtime import instance
from neuroncli.runtime.cores import CorePool
from neuroncli.runtime.dispatch import (
    CoreUnavailable, Dispatcher, InferenceTimeout, Usage, UsageCounter,
)
from neuroncli.runtime.host import DeadlineExceeded

RESTORE = ("restore the cores (neuroncli.runtime.restore_core) or move the model to healthy "
           "cores (set_neuron_cores)")


def _dispatcher(replicas: list, timeout: float = 5.0) -> tuple:
    pool = CorePool(instance.instance_spec("inf1.xlarge"), (0, 1, 2, 3))
    usage = UsageCounter()
    return pool, usage, Dispatcher("op", pool, replicas, usage, lambda: timeout)


def _core(core: int, deadline: float) -> int:
    return core


def _calls(usage: UsageCounter) -> dict:
    return {core: u.calls for core, u in usage.snapshot().items()}


def test_turns_go_past_a_failed_replica() -> None:
    pool, usage, dispatcher = _dispatcher([(0,), (1,), (2,), (3,)])
    pool.fail(1)
    assert [dispatcher.execute(_core) for _ in range(7)] == [0, 2, 3, 0, 2, 3, 0]
    assert _calls(usage) == {0: 3, 2: 2, 3: 2}
    assert [pool.cores[i].stats().calls for i in range(4)] == [3, 0, 2, 2]
    pool.restore(1)
    assert [dispatcher.execute(_core) for _ in range(4)] == [1, 2, 3, 0]


def test_choose_skips_and_set_replicas_starts_over() -> None:
    pool, usage, dispatcher = _dispatcher([(0,), (1,), (2,)])
    assert dispatcher.choose({(0,)}) == (1,)
    assert dispatcher.choose() == (2,)
    assert dispatcher.choose(set()) == (0,)
    dispatcher.set_replicas([(3,), (2,)])
    assert dispatcher.replicas == ((3,), (2,))
    assert [dispatcher.execute(_core) for _ in range(3)] == [3, 2, 3]


def test_a_preferred_replica_is_used_while_it_is_healthy() -> None:
    pool, usage, dispatcher = _dispatcher([(0,), (1,), (2,)])
    assert dispatcher.execute(_core, (2,)) == 2
    pool.fail(2)
    assert dispatcher.execute(_core, (2,)) == 0
    assert _calls(usage) == {0: 1, 2: 1}


def test_no_healthy_replica_names_copies_and_failed_cores() -> None:
    pool, usage, dispatcher = _dispatcher([(0, 1), (2, 3)])
    pool.fail(1)
    assert dispatcher.execute(_core) == 2  # a pipeline group runs on its first core
    pool.fail(3)
    with pytest.raises(CoreUnavailable) as caught:
        dispatcher.execute(_core)
    assert str(caught.value) == (
        "no healthy NeuronCore left for NeuronOp op: its copies are on NeuronCores 0,1, "
        f"NeuronCores 2,3 and NeuronCores 1,3 failed: {RESTORE}")
    _, _, single = _dispatcher([(2,)])
    single._pool.fail(2)
    with pytest.raises(CoreUnavailable) as caught:
        single.choose()
    assert str(caught.value) == (
        "no healthy NeuronCore left for NeuronOp op: its copies are on NeuronCore 2 and "
        f"NeuronCore 2 failed: {RESTORE}")
    _, _, empty = _dispatcher([])
    with pytest.raises(CoreUnavailable) as caught:
        empty.choose()
    assert str(caught.value) == (
        "no healthy NeuronCore left for NeuronOp op: its copies are on no core and none "
        f"failed: {RESTORE}")


@pytest.mark.parametrize("overrun", [False, True])
def test_a_run_on_a_core_that_fails_meanwhile_is_void_and_runs_again(overrun: bool) -> None:
    pool, usage, dispatcher = _dispatcher([(0,), (1,)])
    seen = []

    def work(core: int, deadline: float) -> int:
        seen.append(core)
        if core == 0:
            pool.fail(0)
            if overrun:  # the failure shows as a deadline error from the host session
                raise DeadlineExceeded("Timed out")
        return core * 10

    assert dispatcher.execute(work) == 10
    assert seen == [0, 1]
    assert _calls(usage) == {1: 1}
    assert [pool.cores[i].stats().calls for i in range(2)] == [0, 1]
    assert pool.acquire((0, 1), time.monotonic() + 1)  # every lock was released


def test_waiting_for_a_busy_core_times_out_and_names_it() -> None:
    pool, usage, dispatcher = _dispatcher([(1,)], timeout=0.0)
    with pytest.raises(InferenceTimeout) as caught:
        dispatcher.execute(_core)
    assert str(caught.value) == (
        "inference timed out after 0 s waiting for NeuronCore 1 (NeuronOp op); every core runs "
        "one inference at a time: use more copies, fewer caller threads, or raise "
        "NEURON_FRAMEWORK_INFER_TIMEOUT_SEC")
    assert usage.snapshot() == {}


def test_an_overrun_on_a_healthy_core_is_a_timeout() -> None:
    pool, usage, dispatcher = _dispatcher([(2, 3)], timeout=1.5)

    def overrun(core: int, deadline: float) -> None:
        raise DeadlineExceeded("Timed out")

    with pytest.raises(InferenceTimeout) as caught:
        dispatcher.execute(overrun)
    assert str(caught.value) == (
        "inference timed out: NeuronOp op did not finish on NeuronCores 2,3 within 1.5 s: "
        "raise NEURON_FRAMEWORK_INFER_TIMEOUT_SEC for slow models")
    assert usage.snapshot() == {}


def test_usage_adds_calls_and_busy_seconds_per_core() -> None:
    usage = UsageCounter()
    usage.add((0, 1), 0.5)
    usage.add((0,), 0.25)
    assert usage.snapshot() == {0: Usage(2, 0.75), 1: Usage(1, 0.5)}


def test_busy_seconds_are_the_run_time() -> None:
    pool, usage, dispatcher = _dispatcher([(0,)])
    started = time.perf_counter()
    dispatcher.execute(_core)
    elapsed = time.perf_counter() - started  # no threshold: the run lies inside this span
    busy = usage.snapshot()[0].busy_seconds
    assert 0 <= busy <= elapsed
    assert pool.cores[0].stats().busy_seconds == busy


def test_a_failed_preferred_replica_is_not_waited_for() -> None:
    """Its cores may still be held by the run that failed: go elsewhere at once."""
    pool, usage, dispatcher = _dispatcher([(0,), (2,)], timeout=1.0)
    assert pool.acquire((2,), time.monotonic() + 1)
    pool.fail(2)
    assert dispatcher.execute(_core, (2,)) == 0


def test_a_void_replica_is_not_retried_even_when_restored_meanwhile() -> None:
    """A core that failed and came back during a run voids that run; the call moves on."""
    pool, usage, dispatcher = _dispatcher([(0,), (1,)])
    seen = []

    def work(core: int, deadline: float) -> int:
        seen.append(core)
        if len(seen) == 1:
            pool.fail(core)
            pool.restore(core)
        return core

    assert dispatcher.execute(work, (0,)) == 1
    assert seen == [0, 1]
