"""``neuron-run MODEL_DIR``: run a compiled model on the simulated runtime and time it."""

from __future__ import annotations

import json
from typing import Any

import click

from neuroncli.cli.common import (
    NonEmptyPath, command, instance_type_option, model_selection_options, stdout_console,
    verbosity_options,
)

_HELP = """Run the compiled SavedModel in MODEL_DIR on simulated NeuronCores.

Inputs come from --inputs FILE.npz (keys = signature input keys) or are random (--random,
the default), shaped from the signature with --batch for an unknown batch dimension.  Prints
an output summary, latency percentiles, throughput and a per-core table (calls, busy %,
device memory).  The instance comes from --instance-type or NEURON_SIM_INSTANCE_TYPE; the
visible cores from NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES.
"""


@click.command("run", help=_HELP)
@click.argument("model_dir", type=NonEmptyPath())
@click.option("--inputs", "inputs_file", type=NonEmptyPath(), metavar="FILE.npz",
              help="Inputs to run (keys = signature input keys).")
@click.option("--random", "use_random", is_flag=True,
              help="Random inputs shaped from the signature (the default).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Size of an unknown batch dimension for --random (default: compiled).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --random.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Inferences per caller thread.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Caller threads running at once.")
@instance_type_option
@model_selection_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@verbosity_options
@command
def run_command(model_dir: str, inputs_file: str | None, use_random: bool, batch: int | None,
                seed: int, repeat: int, threads: int, instance_type: str | None,
                signature_def: str | None, tags: tuple[str, ...] | None, as_json: bool,
                verbose: int, quiet: bool) -> int:
    from neuroncli.errors import UsageError
    from neuroncli.runtime.inputs import load_npz
    from neuroncli.runtime.measure import measure
    from neuroncli.runtime.model import load
    from neuroncli.runtime.simulator import NeuronRuntime

    if inputs_file and (use_random or batch is not None):
        raise UsageError("--inputs and --random/--batch exclude each other: pick one")
    feed = load_npz(inputs_file) if inputs_file else None
    runtime = NeuronRuntime(instance_type)
    with load(model_dir, signature_def, tags, runtime=runtime) as model:
        if feed is None:
            feed = model.random_inputs(batch, seed)
        result = measure(model, feed, repeat=repeat, threads=threads)
        document = _document(model, runtime, result, threads)
    if as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    elif not quiet:
        _render(document, result)
    return 0


def _document(model: Any, runtime: Any, result: Any, threads: int) -> dict[str, Any]:
    outputs = {key: {"shape": list(value.shape),
                     "dtype": "string" if value.dtype == object else str(value.dtype)}
               for key, value in sorted(result.outputs.items())}
    return {
        "model": model.model_dir, "signature": model.signature.key,
        "instance_type": runtime.instance.name,
        "visible_cores": [core.physical for core in runtime.cores],
        "replicas": [list(group) for group in model.replicas],
        "placement": model.placement.rule, "calls": result.calls, "threads": threads,
        "outputs": outputs, "latency_ms": result.latency_summary(),
        "throughput": result.throughput, "wall_seconds": result.wall_seconds,
        "core_calls": {str(k): v for k, v in sorted(result.core_calls.items())},
        "cores": [{"index": c.index, "physical": c.physical, "calls": c.calls,
                   "busy_percent": c.busy_percent, "bytes_loaded": c.bytes_loaded,
                   "capacity_bytes": c.capacity_bytes, "failed": c.failed}
                  for c in result.cores],
    }


def _stats(value: Any) -> str:
    import numpy as np
    array = np.asarray(value)
    if array.dtype == object or array.size == 0 or array.dtype.kind not in "fiub":
        return "-"
    data = array.astype(np.float64)
    return f"min {data.min():.4g}  max {data.max():.4g}  mean {data.mean():.4g}"


def _render(document: dict[str, Any], result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from neuroncli.rendering import print_table
    from neuroncli.runtime.instance import format_bytes
    console = stdout_console()
    outputs = Table(title=escape(f"Outputs of {document['model']} "
                                 f"[{document['signature']}]"))
    for column in ("output", "shape", "dtype", "values"):
        outputs.add_column(column)
    for key, info in document["outputs"].items():
        outputs.add_row(escape(key), str(tuple(info["shape"])), info["dtype"],
                        _stats(result.outputs[key]))
    print_table(console, outputs)
    lat = document["latency_ms"]
    console.print(f"Latency: p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f} ms  "
                  f"p99 {lat['p99']:.3f} ms  (mean {lat['mean']:.3f} ms, "
                  f"{document['calls']} calls, {document['threads']} thread(s))")
    console.print(f"Throughput: {document['throughput']:.2f} inferences/s")
    cores = Table(title=escape(f"NeuronCores of {document['instance_type']} "
                               f"({document['placement']})"))
    for column in ("core", "physical", "calls", "busy %", "device memory", "state"):
        cores.add_column(column, justify="right" if column != "state" else "left")
    for core in document["cores"]:
        memory = f"{format_bytes(core['bytes_loaded'])} / {format_bytes(core['capacity_bytes'])}"
        cores.add_row(str(core["index"]), str(core["physical"]), str(core["calls"]),
                      f"{core['busy_percent']:.1f}", memory,
                      "failed" if core["failed"] else "ok")
    print_table(console, cores)


def main() -> None:
    """Console script ``neuron-run``."""
    from neuroncli.cli.common import invoke
    invoke(run_command, "neuron-run")


if __name__ == "__main__":
    main()
