"""Many caller threads on one replicated model: same answers, even spread, no hang, no loss.

Each test has its own timeout: a deadlock shows up as a failure, not as a stuck suite.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import neuroncli.runtime as rt
from tests.test_runtime_support import compile_model

THREADS = 8
CALLS = 200


@pytest.fixture(scope="module")
def dense(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_model(fixtures_dir / "keras_dense",
                         tmp_path_factory.mktemp("concurrency") / "compiled", batch_size=2)


def _inputs(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal((2, 16)).astype(np.float32) for _ in range(count)]


def _hammer(model: rt.NeuronModel, inputs: list[np.ndarray], calls: int,
            on_call: object = None) -> tuple[dict[int, list[np.ndarray]], list[BaseException]]:
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(len(inputs))}
    errors: list[BaseException] = []
    start = threading.Barrier(len(inputs))

    def worker(index: int) -> None:
        start.wait()
        try:
            for call in range(calls):
                results[index].append(model(features=inputs[index])["output_0"])
                if on_call is not None:
                    on_call(index, call)  # type: ignore[operator]
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@pytest.mark.timeout(180)
def test_eight_threads_get_single_threaded_answers_evenly_spread(dense: Path) -> None:
    sim = rt.NeuronRuntime("inf1.xlarge", environ={})
    inputs = _inputs(THREADS)
    with rt.load(dense, runtime=sim) as model:
        expected = [model(features=x)["output_0"] for x in inputs]
        before = model.stats().core_calls
        results, errors = _hammer(model, inputs, CALLS)
        assert not errors, errors[:3]
        for index, outputs in results.items():
            assert len(outputs) == CALLS
            for got in outputs:
                np.testing.assert_array_equal(got, expected[index])
        after = model.stats().core_calls
        counts = [after.get(c, 0) - before.get(c, 0) for c in range(4)]
        assert sum(counts) == THREADS * CALLS
        assert max(counts) - min(counts) <= 1, counts


@pytest.mark.timeout(180)
def test_a_core_failing_mid_run_loses_no_call(dense: Path) -> None:
    sim = rt.NeuronRuntime("inf1.xlarge", environ={})
    inputs = _inputs(4)
    with rt.load(dense, runtime=sim) as model:
        expected = [model(features=x)["output_0"] for x in inputs]
        failed = threading.Event()

        def fail_midway(index: int, call: int) -> None:
            if index == 0 and call == 40 and not failed.is_set():
                rt.fail_core(2, runtime=sim)
                failed.set()

        results, errors = _hammer(model, inputs, 100, fail_midway)
        assert failed.is_set() and not errors, errors[:3]
        for index, outputs in results.items():
            assert len(outputs) == 100
            for got in outputs:
                np.testing.assert_array_equal(got, expected[index])
        before = dict(model.stats().core_calls)
        for _ in range(30):
            model(features=inputs[0])
        after = model.stats().core_calls
        # no new work on core 2; the other three share it evenly
        assert {c: after.get(c, 0) - before.get(c, 0) for c in range(4)} == \
            {0: 10, 1: 10, 2: 0, 3: 10}
        for core in (0, 1, 3):
            rt.fail_core(core, runtime=sim)
        with pytest.raises(rt.CoreUnavailable, match="no healthy NeuronCore left"):
            model(features=inputs[0])


@pytest.mark.timeout(120)
def test_more_threads_than_cores_with_a_short_timeout_do_not_hang(dense: Path) -> None:
    sim = rt.NeuronRuntime("inf2.xlarge", environ={}, timeout=30)
    inputs = _inputs(THREADS)
    with rt.load(dense, runtime=sim) as model:
        warm_up = sum(c.calls for c in sim.core_stats())
        results, errors = _hammer(model, inputs, 50)
        assert not errors and all(len(v) == 50 for v in results.values())
        assert sum(c.calls for c in sim.core_stats()) == warm_up + THREADS * 50
