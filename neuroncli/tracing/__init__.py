"""``neuroncli.trace`` (AWS's ``tfn.trace``) and ``neuroncli.analyze_model``.

``trace(func, example_inputs)`` traces ``func`` (a keras.Model, a tf.function, a concrete
function or a Python callable) on the example inputs, freezes it, compiles it with the same
pipeline as ``neuron-compile`` (flags from ``NEURON_CC_FLAGS``) and loads it on the simulated
NeuronCores.  ``subgraph_builder_function(node_def) -> bool`` restricts which nodes may be
fused (it can only refuse: an op the backend cannot lower stays on CPU either way).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

from neuroncli.errors import UserError
from neuroncli.tracing.conventions import TracedCall, batch_size, trace_function

if TYPE_CHECKING:
    from neuroncli.compiler.options import CompileOptions

# The compiler and partitioner are imported where trace needs them: ``neuroncli.load`` imports
# this package (for TracedModel) and must not pull the compiler in.
log = logging.getLogger("neuroncli")
__all__ = ["trace", "analyze_model", "list_operators", "trace_options"]


def _traced(func: Callable, example_inputs: Any, dynamic_batch: bool) -> TracedCall | None:
    try:
        return trace_function(func, example_inputs, dynamic_batch)
    except UserError:
        raise
    except Exception as exc:  # tracing runs the user's code: its error is theirs
        raise UserError(f"trace: calling the function on example_inputs failed: "
                        f"{_user_error(exc)}") from exc


def _user_error(exc: BaseException) -> str:
    """``Type: message`` of the user's own exception.  tf.function wraps it in a
    StagingError whose text is a traceback ending in ``Type: message``, and chains the
    original as ``__cause__``/``__context__`` in some versions: prefer the original."""
    inner = exc.__cause__ or exc.__context__
    if inner is not None and type(exc).__name__ == "StagingError":
        exc = inner
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if type(exc).__name__ == "StagingError" and lines:
        return lines[-1][:300]  # the traceback's last line is "Type: message"
    return f"{type(exc).__name__}: {(lines[0] if lines else '')[:300]}"


def _traced_open_batch(func: Callable, example_inputs: Any,
                       forced: bool) -> TracedCall | None:
    """Traced with axis 0 of every input left open, so that the CPU parts of the graph run
    at any batch and the compiler can prove which NeuronOps may (dynamic batch turns itself
    on, as in AWS's trace); a function that only traces at its example shapes (Python code
    reading ``x.shape[0]``) is traced at them, and keeps its batch unless forced."""
    try:
        return _traced(func, example_inputs, True)
    except UserError:
        if forced:
            raise
        return _traced(func, example_inputs, False)


def trace(func: Callable, example_inputs: Any,
          subgraph_builder_function: Callable[[Any], bool] | None = None) -> Any:
    """Trace and compile ``func`` for NeuronCores; returns a callable ``TracedModel``."""
    from neuroncli.compiler.flags import resolve_flags
    from neuroncli.compiler.options import CompileOptions
    started = time.perf_counter()
    flags = resolve_flags(None)
    CompileOptions(flags=flags).check_workdir(None)  # a traced function has no input directory
    traced = _traced_open_batch(func, example_inputs, flags.dynamic_batch)
    if traced is None:
        log.warning("trace: the function has no inputs; returning it uncompiled")
        return func
    options = trace_options(flags, batch_size(traced.values), subgraph_builder_function)
    from neuroncli.tracing.traced import compile_concrete
    return compile_concrete(traced, options, started)


def list_operators() -> frozenset[str]:
    """The operator types ``trace`` offers the device: AWS's supported operator list, which
    AWS's trace takes from its compiler front end the same way."""
    from neuroncli.partition.support import AWS_DEFAULT_OPS
    return AWS_DEFAULT_OPS


def trace_options(flags: Any, batch: int,
                  subgraph_builder_function: Callable[[Any], bool] | None) -> CompileOptions:
    """AWS's TF2 partition defaults: segments of one op compile; without a
    ``subgraph_builder_function`` (AWS's automatic mode), constant-foldable nodes join
    segments, segments without a MatMul/Conv-like op are dropped when another has one, and a
    segment holding more than 80% of the segmented nodes is compiled alone; with one,
    exactly the nodes it accepts are fused."""
    from neuroncli.compiler.options import (
        TRACE_MINIMUM_SEGMENT_SIZE, TRACE_PRUNE_SMALL_SUBGRAPHS_RATIO, CompileOptions,
    )
    from neuroncli.partition.support import AWS_DEFAULT_OPS, AWS_LIST_NAME, OpSet
    ops = list_operators()
    op_set = OpSet(frozenset(ops), AWS_LIST_NAME if ops == AWS_DEFAULT_OPS
                   else "the supported operator list")
    automatic = subgraph_builder_function is None
    return CompileOptions(
        flags=flags, batch_size=batch, minimum_segment_size=TRACE_MINIMUM_SEGMENT_SIZE,
        op_set=op_set, fuse_foldable_nodes=automatic,
        prune_small_subgraphs_ratio=TRACE_PRUNE_SMALL_SUBGRAPHS_RATIO if automatic else 0.0,
        drop_cheap_segments=automatic,
        builder=subgraph_builder_function)


def analyze_model(func: Callable, example_inputs: Any) -> dict:
    """Print and return the supported and unsupported operators, counts and percentage.

    A node counts as supported when ``trace`` would offer it to the device: its type is in
    AWS's supported operator list or it is constant-foldable (the same policy object)."""
    from neuroncli.compiler import shapes
    from neuroncli.compiler.flags import resolve_flags
    from neuroncli.compiler.freeze import _convert_to_constants
    from neuroncli.compiler.pipeline import support_policy
    from neuroncli.graph import graph_from_graphdef

    traced = _traced(func, example_inputs, False)
    if traced is None:
        raise UserError("analyze_model: the function has no inputs")
    graph_def, _, _, _ = _convert_to_constants(traced.concrete)
    graph = graph_from_graphdef(graph_def)
    shapes.annotate(graph, graph_def)
    policy = support_policy(graph, trace_options(resolve_flags(None), batch_size(traced.values),
                                                 None))
    supported: Counter = Counter()
    unsupported: Counter = Counter()
    for node in graph:
        (supported if policy.decide(node).ok else unsupported)[node.op] += 1
    total = sum(supported.values()) + sum(unsupported.values())
    percent = 100.0 * sum(supported.values()) / total if total else 0.0
    result = {"supported": dict(sorted(supported.items())),
              "unsupported": dict(sorted(unsupported.items())),
              "percent_supported": percent, "total": total}
    print(f"{'operator':32} {'count':>7}  supported")
    for op, n in sorted({**supported, **unsupported}.items()):
        print(f"{op:32} {n:>7}  {'yes' if op in supported else 'no'}")
    print(f"{sum(supported.values())} of {total} operations supported ({percent:.1f}%)")
    return result
