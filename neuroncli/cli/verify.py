"""``neuron-verify ORIGINAL_DIR COMPILED_DIR``: does the compiled model match its original?"""

from __future__ import annotations

import json

import click

from neuroncli.cli.common import (
    NonEmptyPath, command, instance_type_option, model_selection_options, verbosity_options,
)
from neuroncli.cli.tables import render_verify_report

_HELP = """Run ORIGINAL_DIR in TensorFlow and COMPILED_DIR on simulated NeuronCores on the same
inputs and compare every output.

Inputs come from --inputs FILE.npz, or are random (--random, the default) for --runs seeds.
Floating-point outputs match when |compiled - original| <= atol + rtol * |original|; NaN
equals NaN (and is reported); integer and string outputs must be equal.  Exit codes: 0 all
outputs match, 1 a mismatch or an error (e.g. signatures that do not correspond), 2 usage.
"""


@click.command("verify", help=_HELP)
@click.argument("original_dir", type=NonEmptyPath())
@click.argument("compiled_dir", type=NonEmptyPath())
@click.option("--inputs", "inputs_file", type=NonEmptyPath(), metavar="FILE.npz",
              help="Inputs to compare on (keys = signature input keys).")
@click.option("--random", "use_random", is_flag=True,
              help="Random inputs shaped from the signature (the default).")
@click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Random input sets (seeds --seed, --seed+1, ...).")
@click.option("--seed", type=int, default=0, show_default=True, help="First random seed.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Size of an unknown batch dimension for --random (default: compiled).")
@click.option("--rtol", type=click.FloatRange(min=0), default=1e-5, show_default=True,
              help="Relative tolerance for floating-point outputs.")
@click.option("--atol", type=click.FloatRange(min=0), default=1e-6, show_default=True,
              help="Absolute tolerance for floating-point outputs.")
@instance_type_option
@model_selection_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@verbosity_options
@command
def verify_command(original_dir: str, compiled_dir: str, inputs_file: str | None,
                   use_random: bool, runs: int, seed: int, batch: int | None, rtol: float,
                   atol: float, instance_type: str | None, signature_def: str | None,
                   tags: tuple[str, ...] | None, as_json: bool, verbose: int, quiet: bool) -> int:
    from neuroncli.errors import EXIT_USER, UsageError
    from neuroncli.runtime.inputs import load_npz
    from neuroncli.runtime.simulator import NeuronRuntime
    from neuroncli.runtime.verify import verify

    if inputs_file and (use_random or batch is not None or runs != 1):
        raise UsageError("--inputs excludes --random, --runs and --batch: pick one source")
    feed = load_npz(inputs_file) if inputs_file else None
    report = verify(original_dir, compiled_dir, feed, runs=runs, rtol=rtol, atol=atol,
                    seed=seed, batch=batch, signature_def_key=signature_def, tags=tags,
                    runtime=NeuronRuntime(instance_type))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    elif not quiet:
        render_verify_report(report)
    if report.passed:
        return 0
    failed = [o.key for o in report.outputs if not o.passed]
    click.echo(f"error: {len(failed)} of {len(report.outputs)} output(s) differ from the "
               f"original ({', '.join(failed)}) beyond rtol {rtol:g} atol {atol:g}", err=True)
    return EXIT_USER


def main() -> None:
    """Console script ``neuron-verify``."""
    from neuroncli.cli.common import invoke
    invoke(verify_command, "neuron-verify")


if __name__ == "__main__":
    main()
