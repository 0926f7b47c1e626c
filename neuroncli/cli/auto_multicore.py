"""``tf-neuron-auto-multicore MODEL_DIR --num_cores N --new_model_dir DIR`` (AWS's spelling)."""

from __future__ import annotations

import click

from neuroncli.cli.common import (
    NonEmptyPath, command, echo_rewrite_report, invoke, verbosity_options,
)
from neuroncli.format.placement import MAX_CORES

_HELP = """Tag every NeuronOp of the compiled model in MODEL_DIR for replication over
NUM_CORES NeuronCores, writing NEW_MODEL_DIR.  Protobuf only: no TensorFlow start-up.
Exit codes: 0 ok, 1 error, 2 usage."""


@click.command("auto-multicore", help=_HELP)
@click.argument("model_dir", type=NonEmptyPath())
@click.option("--num_cores", "--num-cores", "num_cores", required=True,
              type=click.IntRange(1, MAX_CORES),
              help=f"Replicas, one per NeuronCore (1-{MAX_CORES}).")
@click.option("--new_model_dir", "--new-model-dir", "new_model_dir", required=True,
              type=NonEmptyPath(), help="Where to write the tagged model.")
@click.option("--force", is_flag=True, help="Replace NEW_MODEL_DIR if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@verbosity_options
@command
def auto_multicore_command(model_dir: str, num_cores: int, new_model_dir: str, force: bool,
                           as_json: bool, verbose: int, quiet: bool) -> int:
    from neuroncli.rewrite import auto_multicore_saved_model

    report = auto_multicore_saved_model(model_dir, new_model_dir, num_cores, force=force)
    echo_rewrite_report(report, as_json, quiet, lambda meta: (
        f"{meta.neuron_ops} NeuronOp(s) tagged, {meta.detail.get('replicas', '-')} replicas"))
    return 0


def main() -> None:
    """Console script ``tf-neuron-auto-multicore``."""
    invoke(auto_multicore_command, "tf-neuron-auto-multicore")


if __name__ == "__main__":
    main()
