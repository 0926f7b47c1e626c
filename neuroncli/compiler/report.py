"""The compile report: counts, one row per segment, every CPU node under its reason.

:class:`CompileReport` is a frozen data object; :meth:`CompileReport.to_json` gives the
``--json`` document and :func:`render` the human view (rich tables, like TF-TRT's summary).
``counts()`` is what ``saved_model.compile`` returns, AWS-compatible (``OnNeuronRatio``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from neuroncli.format.counts import OperatorCounts, count_graph
from neuroncli.format.executable import BatchNote, batch_note
from neuroncli.format.neuron_op import TensorDesc
from neuroncli.proto.dtypes import dtype_name


@dataclass(frozen=True)
class SegmentReport:
    """One segment: compiled into ``neuron_op`` or fallen back to CPU with ``reason``.

    dynamic_batch: ``auto`` (rows proven independent: any batch runs), ``forced``
    (``--dynamic-batch-size``), ``static`` (compiled batch only), ``""`` if not compiled.
    batch_reason: for ``static``, the first op (or input) that keeps the batch fixed.
    """

    index: int
    neuron_op: str | None
    compiled: bool
    reason: str
    nodes: int
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]
    op_histogram: dict[str, int]
    executable_bytes: int
    flops: int
    dynamic_batch: str = ""
    batch_reason: str = ""


@dataclass(frozen=True)
class CompileReport:
    """Everything a compile did.  ``cpu_nodes`` maps reason -> node names (sorted);
    ``supported_op_types`` says which operator types were offered to the device."""

    model_dir: str
    new_model_dir: str
    signature_key: str
    ops_session: int
    counts: OperatorCounts
    segments: tuple[SegmentReport, ...]
    cpu_nodes: dict[str, tuple[str, ...]]
    seconds: float
    supported_op_types: str = ""

    @property
    def on_neuron_ratio(self) -> float:
        return self.counts.ratio

    def counts_dict(self) -> dict[str, Any]:
        """AWS's return value, plus the three logged counts."""
        return {"OnNeuronRatio": self.counts.ratio, "ops_session": self.ops_session,
                "ops_after_optimization": self.counts.graph_nodes,
                "ops_on_neuron": self.counts.on_neuron, "ops_total": self.counts.total,
                "neuron_ops": self.counts.neuron_ops}

    def to_json(self) -> str:
        doc = dict(self.counts_dict())
        doc.update({
            "model_dir": self.model_dir, "new_model_dir": self.new_model_dir,
            "signature_def": self.signature_key,
            "segments": [asdict(s) for s in self.segments],
            "cpu_nodes": {reason: list(names) for reason, names in self.cpu_nodes.items()},
            "seconds": round(self.seconds, 3),
            "supported_op_types": self.supported_op_types,
        })
        return json.dumps(doc, indent=2, sort_keys=True)


def _tensors(refs: Any, dtypes: Any, shapes_: Any) -> tuple[TensorDesc, ...]:
    return tuple(TensorDesc(r, dtype_name(d), None if s is None else tuple(s))
                 for r, d, s in zip(refs, dtypes, shapes_))


def build_report(*, model_dir: str, new_model_dir: str, signature_key: str, frozen: Any,
                 plan: Any, results: list, names: dict[int, str], fused: Any,
                 seconds: float, supported_op_types: str = "") -> CompileReport:
    """Assemble the report from the pipeline's intermediate results."""
    segments = []
    cpu: dict[str, list[str]] = {r: list(n) for r, n in plan.cpu_nodes.items()}
    for segment, result, extracted in results:
        hist = Counter(n.op for n in extracted.graph_def.node if n.op != "Placeholder")
        segments.append(SegmentReport(
            index=segment.index, neuron_op=names.get(segment.index), compiled=result.ok,
            reason=result.reason, nodes=sum(hist.values()),
            inputs=_tensors(extracted.input_refs, extracted.input_dtypes,
                            extracted.input_shapes),
            outputs=_tensors(extracted.output_refs, extracted.output_dtypes,
                             extracted.output_shapes),
            op_histogram=dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))),
            executable_bytes=len(result.executable),
            flops=result.header.flops if result.header else 0,
            **_batch_fields(result.header)))
        if not result.ok:
            reason = f"segment {segment.index} failed to compile: {result.reason}"
            cpu.setdefault(reason, []).extend(segment.nodes)
    return CompileReport(
        model_dir=model_dir, new_model_dir=new_model_dir, signature_key=signature_key,
        ops_session=len(frozen.graph_def.node), counts=count_graph(fused),
        segments=tuple(segments),
        cpu_nodes={r: tuple(sorted(cpu[r])) for r in sorted(cpu)}, seconds=seconds,
        supported_op_types=supported_op_types)


def _batch_fields(header: Any) -> dict[str, str]:
    note = batch_note(header) if header is not None else None
    return {} if note is None else {"dynamic_batch": note.mode, "batch_reason": note.reason}


def _shape(shape: tuple | None) -> str:
    if shape is None:
        return "?"
    return "(" + ",".join("?" if d is None else str(d) for d in shape) + ")"


def _tensor_list(tensors: tuple[TensorDesc, ...], limit: int = 4) -> str:
    text = "\n".join(f"{t.dtype}{_shape(t.shape)}" for t in tensors[:limit])
    return text + (f"\n… {len(tensors) - limit} more" if len(tensors) > limit else "")


def _segment_table(segments: tuple[SegmentReport, ...]) -> Any:
    from rich.table import Table

    table = Table(title="Segments (names and full lists: --json)", title_justify="left")
    for col in ("#", "NeuronOp", "status", "ops", "inputs", "outputs", "op histogram"):
        table.add_column(col, overflow="fold")
    for s in segments:
        batch = BatchNote(s.dynamic_batch, s.batch_reason).text() if s.dynamic_batch else ""
        status = (f"compiled, {batch}" if batch else "compiled") if s.compiled \
            else f"CPU fallback: {s.reason}"
        hist = ", ".join(f"{op}×{n}" for op, n in list(s.op_histogram.items())[:6])
        if len(s.op_histogram) > 6:
            hist += ", …"
        table.add_row(str(s.index), s.neuron_op or "-", status, str(s.nodes),
                      _tensor_list(s.inputs), _tensor_list(s.outputs), hist)
    return table


def render(report: CompileReport, console: Any, *, max_names: int = 0) -> None:
    """Print the human report on a rich console."""
    c = report.counts
    console.print(f"Number of operations in TensorFlow session: {report.ops_session}")
    console.print(f"Number of operations after tf.neuron optimizations: {c.graph_nodes}")
    console.print(f"Number of operations placed on Neuron runtime: {c.on_neuron}")
    if report.segments:
        from neuroncli.rendering import print_table
        print_table(console, _segment_table(report.segments))
    if report.cpu_nodes:
        console.print("[bold]Nodes on CPU[/], by reason:")
        for reason, names in report.cpu_nodes.items():
            shown = names if not max_names or len(names) <= max_names else names[:max_names]
            more = f" … and {len(names) - len(shown)} more" if len(shown) < len(names) else ""
            console.print(f"  {reason} ({len(names)}): {', '.join(shown)}{more}",
                          markup=False, highlight=False)
    if report.supported_op_types:
        console.print(f"Supported operators: {report.supported_op_types}", markup=False,
                      highlight=False)
    ratio = c.ratio
    console.print(f"OnNeuronRatio: {ratio:.4f} ({100 * ratio:.2f}% of operations on Neuron "
                  f"[{c.on_neuron}/{c.total}])", markup=False)
