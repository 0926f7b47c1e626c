"""2,000 mutated saved_model.pb files through the protobuf-only commands (fixed seed), and the
fuzz harness itself: deterministic cases, structure-preserving edits, hangs/crashes/memory
blow-ups recorded as failures.  ``make fuzz`` runs 100,000 cases of the same engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroncli import proto
from tests import fuzz_mutations as fm
from tests import fuzz_walk as walk
from tests.fuzz_savedmodel import DEFAULT_SEED, FuzzOptions, run_fuzz
from tests.fuzz_seeds import load_seeds

CASES = 2000


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return load_seeds()


def test_fuzz_protobuf_commands(tmp_path: Path) -> None:
    result = run_fuzz(FuzzOptions(seed=DEFAULT_SEED, cases=CASES,
                                  failures_dir=str(tmp_path / "failures")))
    print(result.summary())
    assert result.cases == CASES, result.summary()
    assert not result.failures, "\n\n".join(f.describe() for f in result.failures)
    # the engine really exercised both outcomes and every mutation
    assert result.exit_codes[0] and result.exit_codes[1], result.summary()
    assert set(result.mutations) == set(fm.MUTATIONS), result.summary()


def test_cases_are_a_function_of_seed_and_index(seeds: dict[str, bytes]) -> None:
    for index in (0, 7, 1234):
        assert fm.generate(DEFAULT_SEED, index, seeds) == fm.generate(DEFAULT_SEED, index, seeds)
    assert fm.generate(1, 5, seeds) != fm.generate(2, 5, seeds)


def test_splice_reencodes_every_enclosing_length(seeds: dict[str, bytes]) -> None:
    data = seeds["aws-keras_dense"]
    nodes = walk.node_spans(data)
    span = [s for s, is_op in nodes if is_op][-1]  # the NeuronOp in a library function
    name = walk.fields_of(data, span.start, span.end)[0]
    assert name.number == 1
    out = walk.splice(data, span.ancestors, name.start, name.end,
                      walk.string_field(1, b"renamed" * 40))  # longer: lengths grow a byte
    names = {n.name for mg in proto.SavedModel.FromString(out).meta_graphs
             for fn in mg.graph_def.library.function for n in fn.node_def}
    assert "renamed" * 40 in names


def test_harness_records_hangs_crashes_and_memory_blowups(tmp_path: Path) -> None:
    result = run_fuzz(FuzzOptions(cases=4, workers=1, timeout=2.0,
                                  failures_dir=str(tmp_path),
                                  inject={"hang": [0], "die": [1], "memory": [2]}))
    reasons = {f.index: f.reason for f in result.failures}
    assert result.cases == 4 and sorted(reasons) == [0, 1, 2], result.summary()
    assert reasons[0].startswith("hang") and reasons[1].startswith("crash")
    assert reasons[2].startswith("memory")
    assert result.restarts == 3
    for failure in result.failures:
        assert (Path(failure.model_dir) / "saved_model.pb").is_file()
        assert f"--case {failure.index}" in failure.describe()


# --- what fuzzing found, one case each --------------------------------------------------------

def _run(tmp_path: Path, data: bytes, command: str, *args: str) -> dict:
    from tests.fuzz_worker import prepare_scratch, run_case
    prepare_scratch(tmp_path)
    case = fm.Case(0, 0, "test", "test", "test", command, args, data)
    return run_case(case, tmp_path)


def _neuron_op(data: bytes) -> walk.Span:
    return [span for span, is_op in walk.node_spans(data) if is_op][0]


def _with_header(data: bytes, header: bytes) -> bytes:
    span = fm._executable(data, _neuron_op(data))
    old = data[span.start:span.end]
    magic, version, length = fm._EXE.unpack_from(old)
    new = fm._EXE.pack(magic, version, len(header)) + header + old[fm._EXE.size + length:]
    return walk.replace_span(data, span, new)


@pytest.mark.parametrize("header", [b'{"batch_size":' + b"[" * 5000 + b"]" * 5000 + b"}",
                                    b'{"batch_size":1e999,"pipeline_cores":1,'
                                    b'"parameter_bytes":0,"flops":0,"input_names":[],'
                                    b'"output_names":[]}'])
def test_inspect_reports_a_corrupt_executable_header(tmp_path: Path, seeds: dict,
                                                      header: bytes) -> None:
    # deep JSON raised RecursionError (a traceback); 1e999 printed Infinity in --json
    result = _run(tmp_path, _with_header(seeds["neuron-tf1_conv"], header), "neuron-inspect",
                  "--json")
    assert (result["exit"], result["failure"]) == (0, None), result


def test_absurd_attribute_lists_are_refused_before_decoding(tmp_path: Path, seeds: dict) -> None:
    # 24 M model_config entries made neuron-inspect --json run for minutes
    data = seeds["neuron-tf1_conv"]
    node = _neuron_op(data)
    value = walk.field_bytes(1, 2, walk.field_bytes(3, 2, b"\x01" * 1_000_000))
    data = walk.splice(data, node.ancestors, node.end, node.end,
                       walk.attr_entry(b"model_config", value))
    result = _run(tmp_path, data, "neuron-inspect")
    assert result["exit"] == 1 and "corrupt attributes" in result["stderr"], result


def test_a_neuron_op_or_meta_graph_repeated_is_corrupt(tmp_path: Path, seeds: dict) -> None:
    # thousands of copies rendered for seconds, and tagging them was quadratic
    data = seeds["neuron-tf1_conv"]
    node = _neuron_op(data)
    f = node.ancestors[-1]
    twice = walk.splice(data, node.ancestors[:-1], f.start, f.end, data[f.start:f.end] * 2)
    meta = walk.fields_of(data, 0, len(data))[-1]
    assert meta.number == 2
    metas = data[:meta.start] + data[meta.start:meta.end] * 2
    for mutant in (twice, metas):
        result = _run(tmp_path, mutant, "tf-neuron-auto-multicore", "--num_cores", "2",
                      "--new_model_dir", "{out}")
        assert result["exit"] == 1 and "not a valid SavedModel" in result["stderr"], result


def test_rewrites_see_the_graph_protobuf_sees(tmp_path: Path, seeds: dict) -> None:
    # protobuf merges a graph_def given in two parts and keeps the last `op` of a node: the
    # view took the last part only and the first op, leaving NeuronOps untagged
    data = seeds["neuron-tf1_conv"]
    graph = walk.walk(data, walk.root(data), walk.GRAPH_PATH)[0]
    field = graph.ancestors[-1]
    nodes = walk.fields_of(data, graph.start, graph.end)
    half = len(nodes) // 2
    parts = [b"".join(data[f.start:f.end] for f in chunk) for chunk in (nodes[:half],
                                                                         nodes[half:])]
    split = walk.splice(data, graph.ancestors[:-1], field.start, field.end,
                        b"".join(walk.field_bytes(2, 2, p) for p in parts))
    node = _neuron_op(data)
    two_ops = walk.splice(data, node.ancestors, node.start, node.start,
                          walk.string_field(2, b"Const"))
    for mutant in (split, two_ops):
        result = _run(tmp_path, mutant, "neuron-place", "--multicore", "--new_model_dir",
                      "{out}")
        assert (result["exit"], result["failure"]) == (0, None), result
