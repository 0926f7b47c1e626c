"""``neuron``: the click group holding every subcommand (``neuron compile``, ...).

Subcommands are imported lazily, by name, so ``neuron --help`` costs click's import and no
more (TensorFlow is never imported for help or for the protobuf-only commands).
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute"; each standalone console script is the same click command.
SUBCOMMANDS = {
    "compile": ("neuroncli.cli.compile:compile_command",
                "Compile a SavedModel into a Neuron SavedModel."),
    "auto-multicore": ("neuroncli.cli.auto_multicore:auto_multicore_command",
                       "Tag every NeuronOp for replication over N cores."),
    "place": ("neuroncli.cli.place:place_command", "Pin a compiled model to NeuronCores."),
    "run": ("neuroncli.cli.run:run_command", "Run a compiled model on simulated NeuronCores."),
    "verify": ("neuroncli.cli.verify:verify_command",
               "Compare a compiled model with its original."),
    "inspect": ("neuroncli.cli.inspect:inspect_command",
                "Show tag sets, signatures, counts and NeuronOps of a model."),
    "serve": ("neuroncli.cli.serve:serve_command",
              "Serve compiled models over TensorFlow Serving's gRPC and REST APIs."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module, attr = target[0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help without importing every subcommand module.
        rows = [(name, SUBCOMMANDS[name][1]) for name in sorted(SUBCOMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="neuroncli", prog_name="neuron")
def neuron() -> None:
    """neuroncli: compile TensorFlow SavedModels for AWS NeuronCores and check them on a
    simulated NeuronCore runtime, without Neuron hardware."""


def main() -> None:
    """Console script ``neuron``."""
    from neuroncli.cli.common import invoke
    invoke(neuron, "neuron")
