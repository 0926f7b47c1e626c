"""``neuron-place MODEL_DIR --new_model_dir DIR (--start-nc S --nc-count C | --multicore)``."""

from __future__ import annotations

from typing import Callable

import click

from neuroncli.cli.common import (
    NonEmptyPath, command, echo_rewrite_report, invoke, verbosity_options,
)

from neuroncli.format.placement import MAX_CORES

_HELP = """Pin the compiled model in MODEL_DIR to NeuronCores, writing NEW_MODEL_DIR.

--start-nc S: first core relative to the visible ones (-1: the least-used core at load).
--nc-count C: -1 exactly one core, C > 1 replicates over C cores.  --multicore: every visible
core.  The runtime honours the placement at load.  Exit codes: 0 ok, 1 error, 2 usage."""


def _at_most(limit: int, what: str, forbid_zero: bool = False) -> Callable:
    """An upper bound in the flag's own words (click's IntRange(min=-1) keeps the lower one);
    ``--nc-count 0`` is a usage error too (0 cores means nothing: -1 is one core)."""
    def check(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
        if value is not None and value > limit:
            raise click.BadParameter(f"{value} is more than {limit}: pass {what}", ctx, param)
        if forbid_zero and value == 0:
            raise click.BadParameter(f"0 cores is no placement: pass {what}", ctx, param)
        return value
    return check


@click.command("place", help=_HELP)
@click.argument("model_dir", type=NonEmptyPath())
@click.option("--new_model_dir", "--new-model-dir", "new_model_dir", required=True,
              type=NonEmptyPath(), help="Where to write the placed model.")
@click.option("--start-nc", "--start_nc", "start_nc", type=click.IntRange(min=-1),
              default=None,
              callback=_at_most(MAX_CORES - 1, f"a core index from 0 to {MAX_CORES - 1}, or -1"),
              help=f"First core (0-{MAX_CORES - 1}), or -1 for the least-used core.")
@click.option("--nc-count", "--nc_count", "nc_count", type=click.IntRange(min=-1),
              default=None, callback=_at_most(MAX_CORES, f"a core count from 1 to {MAX_CORES}, "
                                                  "or -1", forbid_zero=True),
              help=f"-1 for exactly one core, or the number of cores (1-{MAX_CORES}).")
@click.option("--multicore", is_flag=True, help="Replicate onto every visible core.")
@click.option("--force", is_flag=True, help="Replace NEW_MODEL_DIR if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@verbosity_options
@command
def place_command(model_dir: str, new_model_dir: str, start_nc: int | None,
                  nc_count: int | None, multicore: bool, force: bool, as_json: bool,
                  verbose: int, quiet: bool) -> int:
    from neuroncli.rewrite import PlacementRequest, place_saved_model

    placement = PlacementRequest.from_options(start_nc, nc_count, multicore)
    report = place_saved_model(model_dir, new_model_dir, placement, force=force)
    echo_rewrite_report(report, as_json, quiet, lambda meta: (
        f"{meta.neuron_ops} NeuronOp(s) placed on {meta.detail.get('placement', '-')}"))
    return 0


def main() -> None:
    """Console script ``neuron-place``."""
    invoke(place_command, "neuron-place")


if __name__ == "__main__":
    main()
