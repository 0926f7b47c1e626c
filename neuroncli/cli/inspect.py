"""``neuron-inspect MODEL_DIR``: tag sets, signatures, counts and the NeuronOps of a model."""

from __future__ import annotations

from typing import Any

import click

from neuroncli.cli.common import (
    NonEmptyPath, command, invoke, stdout_console, verbosity_options,
)
from neuroncli.format.executable import BatchNote

_HELP = """Describe the SavedModel in MODEL_DIR from its protobuf alone: tag sets, signatures,
operator counts, OnNeuronRatio and one row per NeuronOp.  Exit codes: 0 ok, 1 error, 2 usage."""


def _shape(shape: Any) -> str:
    if shape is None:
        return "?"
    return "(" + ",".join("?" if d is None else str(d) for d in shape) + ")"


def _signature_tensor(info: dict) -> str:
    """``float32(?,8)``; an entry without a dtype (``DT_INVALID``) names an operation, not a
    tensor: TensorFlow's ``__saved_model_init_op`` signature is ``TensorInfo(name="NoOp")``,
    built from the init op, and running it means running that op for its effects."""
    if info["dtype"] == "invalid":
        return f"operation {info['name']} (no tensor: DT_INVALID)"
    return f"{info['dtype']}{_shape(info['shape'])}"


def _tensors(items: Any) -> str:
    return "\n".join(f"{t.dtype}{_shape(t.shape)}" for t in items)


def _batch(op: Any) -> str:
    """Batch axes and, when the program records it, how they were set and why."""
    text = f"in {list(op.input_batch_axis)}\nout {list(op.output_batch_axis)}"
    mode = op.program.get("dynamic_batch")
    if mode:
        text += "\n" + BatchNote(mode, op.program.get("batch_reason", "")).text()
    return text


def render(report: Any, console: Any) -> None:
    from rich.table import Table

    from neuroncli.rendering import print_table
    variables = (f", variables/ {report.variables_bytes} bytes" if report.variables_bytes
                 else "")
    console.print(f"{report.model_dir}: saved_model.pb {report.saved_model_bytes} bytes"
                  f"{variables}, {len(report.meta_graphs)} meta graph(s)")
    for meta in report.meta_graphs:
        console.print(f"\nmeta graph {{{','.join(meta.tags)}}}")
        for key, sig in meta.signatures.items():
            ins = ", ".join(f"{k}: {_signature_tensor(v)}" for k, v in sig["inputs"].items())
            outs = ", ".join(f"{k}: {_signature_tensor(v)}" for k, v in sig["outputs"].items())
            console.print(f"  signature {key!r}: ({ins}) -> ({outs})", markup=False)
        if meta.traced_call:
            console.print(f"  traced call: {meta.traced_call}", markup=False, highlight=False)
        console.print(f"  operations: {meta.graph_nodes} in graph, {meta.ops_on_neuron} of "
                      f"{meta.ops_total} on Neuron; OnNeuronRatio {meta.on_neuron_ratio:.4f}")
        outside = ", ".join(f"{op}×{n}" for op, n in meta.outside_aws_op_list.items())
        console.print(f"  CPU operations outside AWS's supported operator list: "
                      f"{outside or 'none'}", markup=False, highlight=False)
        if not meta.neuron_ops:
            console.print("  no NeuronOp: not a compiled model")
            continue
        table = Table(title_justify="left")
        for col in ("NeuronOp", "where", "inputs", "outputs", "executable", "model_config",
                    "replicas", "placement", "batch axes"):
            table.add_column(col, overflow="fold")
        for op in meta.neuron_ops:
            table.add_row(op.name, op.location, _tensors(op.inputs), _tensors(op.outputs),
                          f"{op.executable_bytes} B" if op.compiled else "not compiled",
                          str(list(op.model_config)), op.replicas, op.placement,
                          _batch(op))
        print_table(console, table)


@click.command("inspect", help=_HELP)
@click.argument("model_dir", type=NonEmptyPath())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@verbosity_options
@command
def inspect_command(model_dir: str, as_json: bool, verbose: int, quiet: bool) -> int:
    from neuroncli.inspection import inspect_saved_model

    report = inspect_saved_model(model_dir)
    if as_json:
        click.echo(report.to_json())
    elif not quiet:
        render(report, stdout_console())
    return 0


def main() -> None:
    """Console script ``neuron-inspect``."""
    invoke(inspect_command, "neuron-inspect")


if __name__ == "__main__":
    main()
