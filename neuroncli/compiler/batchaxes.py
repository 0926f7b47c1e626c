"""Each NeuronOp's batch axes: proven by the row analysis, or forced by ``--dynamic-batch-size``.

Batch sources are the signature inputs whose leading dimension the model leaves open (for
``neuron-compile``/``saved_model.compile``: unknown in the signature, as AWS's TF1 compiler
requires; for ``trace``: every input, whose axis 0 AWS's trace treats as the batch), compiled
at the batch size.  :mod:`neuroncli.dynbatch` propagates them through the shaped graph;
:func:`decide` reads the verdict of one segment.  The decision travels in the program header
(``extra["dynamic_batch"]``: mode ``auto``, ``forced`` or ``static`` and, when static, the
reason), where the report, ``neuron-inspect`` and the runtime's error messages read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from neuroncli.dynbatch import RowStates, analyze_rows, segment_verdict
from neuroncli.format.executable import BATCH_NOTE, BatchNote
from neuroncli.format.weights import READ_OP
from neuroncli.graph import Graph, split_tensor


@dataclass(frozen=True)
class SegmentBatch:
    """One NeuronOp's batch axes (0 or -1 per input and output) and why."""

    input_batch_axis: tuple[int, ...]
    output_batch_axis: tuple[int, ...]
    note: BatchNote

    def header_extra(self) -> dict[str, Any]:
        return {BATCH_NOTE: {"mode": self.note.mode, "reason": self.note.reason}}


@dataclass(frozen=True)
class BatchAnalysis:
    """The row states of a shaped graph and what ``decide`` needs besides."""

    states: RowStates
    batch_size: int
    forced: bool
    weight_reads: frozenset[str]


def batch_sources(inputs: Mapping[str, str], input_shapes: Mapping[str, tuple | None],
                  keys: Iterable[str], batch_size: int) -> list[str]:
    """Tensor refs of the signature inputs ``keys`` compiled with ``batch_size`` rows."""
    refs = []
    for key in sorted(set(keys)):
        shape = input_shapes.get(key)
        if key in inputs and shape and shape[0] == batch_size:
            refs.append(inputs[key])
    return refs


def analyze(graph: Graph, sources: Iterable[str], batch_size: int,
            forced: bool) -> BatchAnalysis:
    """Run the row analysis on the shaped (not yet fused) ``graph``."""
    reads = frozenset(n.name for n in graph if n.op == READ_OP)
    return BatchAnalysis(analyze_rows(graph, sources), batch_size, forced, reads)


def decide(analysis: BatchAnalysis, extracted: Any) -> SegmentBatch:
    """The batch axes of one extracted segment."""
    if analysis.forced:
        # Extracted weights enter NeuronOps as inputs; they never get a batch axis.
        inputs = tuple(-1 if split_tensor(ref)[0] in analysis.weight_reads else 0
                       for ref in extracted.input_refs)
        return SegmentBatch(inputs, (0,) * len(extracted.output_refs),
                            BatchNote("forced", ""))
    verdict = segment_verdict(analysis.states, extracted.input_refs, extracted.output_refs,
                              [*extracted.input_shapes, *extracted.output_shapes],
                              analysis.batch_size)
    note = BatchNote("auto", "") if verdict.dynamic else BatchNote("static", verdict.reason)
    return SegmentBatch(verdict.input_batch_axis, verdict.output_batch_axis, note)
