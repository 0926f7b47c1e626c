"""Runtime pieces that need no TensorFlow: instances, cores, placement, batching, planning,
and the verification comparison."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from neuroncli import proto
from neuroncli.errors import UserError
from neuroncli.format.executable import ExecutableHeader
from neuroncli.format.instances import GIB
from neuroncli.runtime import batching, instance, placement
from neuroncli.runtime.cores import CorePool, Reservation
from neuroncli.runtime.program import Program
from neuroncli.runtime.stages import CpuStage, NeuronStep, schedule_call
from neuroncli.runtime.verify import compare
from tests.test_import_hygiene import _modules_after


def program(name: str = "op", *, shapes: tuple = ((1, 4),), axes: tuple = (-1,),
            config: tuple = (1, 1, 64, 10), params: int = 0, inputs: tuple = (),
            **attrs: object) -> Program:
    header = ExecutableHeader(batch_size=1, pipeline_cores=config[1], parameter_bytes=params,
                              flops=0, input_names=tuple(f"input{i}:0" for i in
                                                         range(len(shapes))),
                              output_names=("out:0",))
    return Program(name=name,
                   inputs=inputs or tuple(f"x{i}:0" for i in range(len(shapes))),
                   input_dtypes=(1,) * len(shapes), input_shapes=shapes,
                   input_batch_axis=axes, output_dtypes=(1,), output_shapes=(shapes[0],),
                   output_batch_axis=(axes[0],), model_config=config, header=header,
                   **attrs)


# -- instances and visible cores ---------------------------------------------------------

def test_instance_types_match_the_format_facts() -> None:
    assert instance.instance_spec("inf1.xlarge").cores == 4
    assert instance.instance_spec("inf1.xlarge").core_memory_bytes == 2 * GIB
    assert instance.instance_spec("inf2.24xlarge").cores == 12
    assert instance.instance_spec("trn1.32xlarge").core_memory_bytes == 16 * GIB
    assert instance.instance_spec(environ={}).name == "inf2.xlarge"
    env = {"NEURON_SIM_INSTANCE_TYPE": "inf1.6xlarge"}
    assert instance.instance_spec(environ=env).cores == 16
    with pytest.raises(UserError, match="unknown instance type 'inf9.xlarge'"):
        instance.instance_spec("inf9.xlarge")


@pytest.mark.parametrize("text, expected", [
    ("2", (2,)), ("0-3", (0, 1, 2, 3)), ("1,3", (1, 3)), ("0-1, 3", (0, 1, 3)),
])
def test_visible_cores_forms(text: str, expected: tuple) -> None:
    spec = instance.instance_spec("inf1.xlarge")
    env = {"NEURON_RT_VISIBLE_CORES": text}
    assert instance.visible_cores(spec, environ=env) == expected


@pytest.mark.parametrize("text, message", [
    ("4", "core 4 does not exist"), ("3-1", "ascending"), ("a", "not a core index"),
    ("1,1", "listed twice"), ("1,", "empty entry"),
])
def test_bad_visible_cores_are_clear_errors(text: str, message: str) -> None:
    spec = instance.instance_spec("inf1.xlarge")
    with pytest.raises(UserError, match=message):
        instance.visible_cores(spec, environ={"NEURON_RT_VISIBLE_CORES": text})


def test_num_cores_and_precedence() -> None:
    spec = instance.instance_spec("inf2.24xlarge")
    assert instance.visible_cores(spec, environ={"NEURON_RT_NUM_CORES": "3"}) == (0, 1, 2)
    both = {"NEURON_RT_NUM_CORES": "3", "NEURON_RT_VISIBLE_CORES": "5"}
    assert instance.visible_cores(spec, environ=both) == (5,)
    with pytest.raises(UserError, match="between 1 and 12"):
        instance.visible_cores(spec, environ={"NEURON_RT_NUM_CORES": "13"})


def test_timeout_from_environment() -> None:
    assert instance.infer_timeout(environ={}) == 10.0
    assert instance.infer_timeout(environ={"NEURON_FRAMEWORK_INFER_TIMEOUT_SEC": "2.5"}) == 2.5
    with pytest.raises(UserError, match="NEURON_FRAMEWORK_INFER_TIMEOUT_SEC"):
        instance.infer_timeout(environ={"NEURON_FRAMEWORK_INFER_TIMEOUT_SEC": "soon"})


# -- cores --------------------------------------------------------------------------------

def test_memory_overflow_names_core_needed_and_free_and_changes_nothing() -> None:
    pool = CorePool(instance.instance_spec("inf1.xlarge"), (0, 1), capacity_bytes=1000)
    a = Reservation({0: 600, 1: 600}, {0: 1, 1: 1})
    b = Reservation({0: 300, 1: 500}, {0: 1, 1: 1})
    pool.reserve("model a", a)
    with pytest.raises(UserError) as err:
        pool.reserve("model b", b)
    message = str(err.value)
    assert "NeuronCore 1" in message and "500 bytes" in message and "400 bytes" in message
    assert pool.usage() == [600, 600]  # all or nothing
    assert [c.programs for c in pool.cores] == [1, 1]
    pool.release(a)
    pool.reserve("model b", b)
    assert pool.usage() == [300, 500] and [c.programs for c in pool.cores] == [1, 1]
    pool.reserve("model b", Reservation({1: 700}, {1: 1}), release=b)  # a move: own bytes free
    assert pool.usage() == [0, 700] and [c.programs for c in pool.cores] == [0, 1]


def test_acquire_times_out_and_groups_lock_every_core() -> None:
    pool = CorePool(instance.instance_spec("inf2.xlarge"), (0, 1))
    assert pool.acquire((0, 1), time.monotonic() + 1)
    deadline = time.monotonic() + 0.2
    assert not pool.acquire((1,), deadline)
    assert time.monotonic() >= deadline  # it waited for the core until the deadline
    pool.release_group((0, 1))
    assert pool.acquire((1,), time.monotonic() + 0.2)
    pool.release_group((1,))


def test_core_failure_marks() -> None:
    pool = CorePool(instance.instance_spec("inf2.xlarge"), (0, 1))
    marks = pool.failure_marks((0, 1))
    pool.fail(1)
    assert not pool.healthy((1,)) and pool.healthy((0,))
    assert pool.failure_marks((0, 1)) != marks
    pool.restore(1)
    assert pool.healthy((0, 1))
    with pytest.raises(UserError, match="NeuronCore 5 is not visible"):
        pool.fail(5)


# -- placement ----------------------------------------------------------------------------

def test_default_single_neuron_op_up_to_four_copies() -> None:
    assert placement.place([program()], [0] * 16).replicas == ((0,), (1,), (2,), (3,))
    assert placement.place([program()], [0, 0]).replicas == ((0,), (1,))
    capped = program(config=(1, 1, 3, 10))
    assert len(placement.place([capped], [0] * 16).replicas) == 3


def test_default_several_neuron_ops_one_copy_on_least_used_core() -> None:
    result = placement.place([program("a"), program("b")], [5, 0, 7, 9])
    assert result.replicas == ((1,),)


def test_auto_multicore() -> None:
    assert placement.place([program(auto_multicore=3)], [9, 0, 0, 0]).replicas == \
        ((0,), (1,), (2,))
    with pytest.raises(UserError, match="Num of cores for auto multicore replication, 0, "
                                        "is below 1"):
        placement.place([program(auto_multicore=0)], [0] * 4)
    with pytest.raises(UserError, match="exceeds the 4 visible"):
        placement.place([program(auto_multicore=5)], [0] * 4)


def test_explicit_start_and_count_win() -> None:
    tagged = program(auto_multicore=4, start_nc=1, nc_count=2)
    assert placement.place([tagged], [0] * 4).replicas == ((1,), (2,))
    assert placement.place([tagged], [0] * 4, start_nc=0, nc_count=-1).replicas == ((0,),)
    assert placement.place([program()], [3, 3, 0, 0], nc_count=2).replicas == ((2,), (3,))
    with pytest.raises(UserError, match="needs visible cores 3-4"):
        placement.place([program()], [0] * 4, start_nc=3, nc_count=2)


def test_pipeline_programs_span_cores_and_cannot_replicate() -> None:
    piped = program(config=(2, 2, 64, 10))
    assert placement.place([piped], [0] * 4).replicas == ((0, 1),)
    assert placement.place([piped], [1, 1, 0, 0]).replicas == ((2, 3),)
    with pytest.raises(UserError, match="cannot be replicated"):
        placement.place([piped], [0] * 4, nc_count=4)
    with pytest.raises(UserError, match="cannot be replicated"):
        placement.place([program(config=(2, 2, 64, 10), auto_multicore=2)], [0] * 4)
    with pytest.raises(UserError, match="compiled for 2 pipeline cores but this process sees 1"):
        placement.place([piped], [0])


def test_explicit_counts_every_core_and_several_neuron_ops() -> None:
    assert placement.place([program()], [0] * 4, nc_count=0).replicas == \
        ((0,), (1,), (2,), (3,))
    assert placement.place([program()], [0] * 4, start_nc=1, nc_count=0).replicas == \
        ((1,), (2,), (3,))
    both = placement.place([program("a"), program("b")], [0] * 4, nc_count=2)
    assert both.replicas == ((0,), (1,))  # every copy holds both programs
    with pytest.raises(UserError, match=r"nc_count must be -1 .* or 0 \(every visible core\), got -2"):
        placement.place([program()], [0] * 4, nc_count=-2)
    with pytest.raises(UserError, match="multiple of that"):
        placement.place([program(config=(2, 2, 64, 10))], [0] * 4, nc_count=3)


# -- batching -----------------------------------------------------------------------------

def test_fixed_shape_error_names_input_expected_and_given() -> None:
    prog = program(shapes=((2, 4),))
    with pytest.raises(UserError) as err:
        batching.check(prog, [np.zeros((3, 4))], {"x0:0": "features"})
    text = str(err.value)
    assert "'features'" in text and "(3, 4)" in text and "(2, 4)" in text


def test_dynamic_batch_shards_pad_and_merge() -> None:
    prog = program(shapes=((2, 3), (2, 3)), axes=(0, 0))
    a = np.arange(21, dtype=np.float32).reshape(7, 3)
    plan_ = batching.check(prog, [a, a + 1], {})
    assert (plan_.batch, plan_.shards, plan_.compiled) == (7, 4, 2)
    shards = batching.split(prog, [a, a + 1], plan_)
    assert [s[0].shape for s in shards] == [(2, 3)] * 4
    assert np.all(shards[-1][0][1] == 0)  # padding row
    merged = batching.merge(prog, [[s[0] * 10] for s in shards], plan_)
    np.testing.assert_array_equal(merged[0], a * 10)


def test_dynamic_batch_inputs_must_agree() -> None:
    prog = program(shapes=((2, 3), (2, 3)), axes=(0, 0))
    with pytest.raises(UserError, match="disagree on the batch size"):
        batching.check(prog, [np.zeros((3, 3)), np.zeros((4, 3))], {})
    with pytest.raises(UserError, match=r"expects \(\?, 3\)"):
        batching.check(prog, [np.zeros((3, 4)), np.zeros((3, 4))], {})


# -- planning -----------------------------------------------------------------------------

def _node(graph: object, name: str, op: str, *inputs: str) -> None:
    node = graph.node.add(name=name, op=op)  # type: ignore[attr-defined]
    node.input.extend(inputs)
    node.attr["dtype"].type = 1


def test_plan_stages_around_neuron_ops() -> None:
    #   x -> pre(Relu) -> nop_a -> mid(Relu) -> nop_b -> out(Identity)
    #                 \________________________________^ (control)
    graph = proto.GraphDef()
    _node(graph, "x", "Placeholder")
    _node(graph, "pre", "Relu", "x")
    _node(graph, "nop_a", "NeuronOp", "pre")
    _node(graph, "mid", "Relu", "nop_a")
    _node(graph, "nop_b", "NeuronOp", "mid", "^pre")
    _node(graph, "out", "Identity", "nop_b")
    programs = [program("nop_a", inputs=("pre:0",)), program("nop_b", inputs=("mid:0",))]
    result, host = schedule_call(graph, programs, {"x": "x:0"}, {"y": "out:0"})
    kinds = [(type(s).__name__, getattr(s, "index", getattr(s, "program", None)))
             for s in result.steps]
    assert kinds == [("CpuStage", 0), ("NeuronStep", 0), ("CpuStage", 1), ("NeuronStep", 1)]
    first, second = result.steps[0], result.steps[2]
    assert isinstance(first, CpuStage) and first.feeds == ("x:0",)
    assert first.fetches == ("pre:0",) and first.targets == ("pre",)
    assert isinstance(second, CpuStage) and second.feeds == ("nop_a:0",)
    assert result.outputs == {"y": "nop_b:0"}  # the trailing Identity is an alias
    assert {n.name: n.op for n in host.node}["nop_a"] == "Placeholder"
    assert isinstance(result.steps[1], NeuronStep)


def test_plan_binds_constant_inputs() -> None:
    graph = proto.GraphDef()
    _node(graph, "x", "Placeholder")
    _node(graph, "w", "Const")
    _node(graph, "w_read", "Identity", "w")
    _node(graph, "nop", "NeuronOp", "x", "w_read")
    result, _ = schedule_call(graph, [program("nop", shapes=((1, 4), (4, 4)), axes=(-1, -1),
                                     inputs=("x:0", "w_read:0"))],
                     {"x": "x:0"}, {"y": "nop:0"})
    assert result.bound == ((1,),)
    assert all(isinstance(s, NeuronStep) for s in result.steps)  # weights are never fetched


# -- comparison ---------------------------------------------------------------------------

def test_compare_nan_inf_and_tolerance() -> None:
    a = np.array([1.0, np.nan, np.inf, 2.0], np.float32)
    diff = compare(a, a.copy(), 1e-5, 0.0)
    assert diff.mismatches == 0 and diff.nans == 1 and "NaN" in diff.note
    b = a.copy()
    b[3] = 2.0001
    assert compare(a, b, 1e-5, 0.0).mismatches == 1
    assert compare(a, b, 1e-3, 0.0).mismatches == 0
    c = a.copy()
    c[2] = -np.inf
    assert compare(a, c, 1e-5, 1e-6).mismatches == 1
    d = a.copy()
    d[0] = np.nan
    assert compare(d, a, 1e-5, 1e-6).mismatches == 1


def test_compare_exact_kinds_and_shapes() -> None:
    ints = np.array([1, 2, 3])
    assert compare(ints, ints, 0, 0).mismatches == 0
    assert compare(ints, np.array([1, 2, 4]), 1.0, 1.0).mismatches == 1  # no tolerance
    words = np.array([b"a", b"b"], dtype=object)
    assert compare(words, np.array([b"a", b"c"], dtype=object), 0, 0).mismatches == 1
    assert "shape" in compare(np.zeros((2, 3)), np.zeros((3, 2)), 0, 0).note


def test_import_runtime_does_not_import_tensorflow() -> None:
    assert _modules_after("import neuroncli.runtime, neuroncli.runtime.model, "
                          "neuroncli.runtime.verify, neuroncli.cli.run, "
                          "neuroncli.cli.verify") == "NOTF"


def test_dispatch_round_robin_is_even_under_threads() -> None:
    from neuroncli.runtime.dispatch import Dispatcher, UsageCounter
    pool = CorePool(instance.instance_spec("inf1.xlarge"), (0, 1, 2, 3))
    usage = UsageCounter()
    dispatcher = Dispatcher("op", pool, [(0,), (1,), (2,), (3,)], usage, lambda: 5.0)

    def worker() -> None:
        for _ in range(50):
            dispatcher.execute(lambda core, deadline: core)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {c: u.calls for c, u in usage.snapshot().items()} == {0: 100, 1: 100, 2: 100,
                                                                  3: 100}


def test_an_execution_past_its_deadline_is_a_clear_timeout() -> None:
    """The host session's deadline error (TensorFlow's RunOptions timeout) becomes the
    user-facing timeout naming the NeuronOp and its core; the core is free again."""
    from neuroncli.runtime.dispatch import Dispatcher, InferenceTimeout, UsageCounter
    from neuroncli.runtime.host import DeadlineExceeded
    pool = CorePool(instance.instance_spec("inf2.xlarge"), (0, 1))
    dispatcher = Dispatcher("neuron_op_x", pool, [(1,)], UsageCounter(), lambda: 0.25)
    seen: list[float] = []

    def overrun(core: int, deadline: float) -> None:
        seen.append(deadline)
        raise DeadlineExceeded("Timed out")

    started = time.monotonic()
    with pytest.raises(InferenceTimeout, match="NeuronOp neuron_op_x did not finish on "
                                               "NeuronCore 1"):
        dispatcher.execute(overrun)
    (deadline,) = seen
    assert started + 0.25 <= deadline <= time.monotonic() + 0.25  # timeout passed as deadline
    assert pool.acquire((1,), time.monotonic() + 1)
