"""``neuron-compile MODEL_DIR NEW_MODEL_DIR``: the command over :mod:`neuroncli.saved_model`."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click

from neuroncli.cli.common import (
    NonEmptyPath, command, invoke, model_selection_options, progress_callback,
    stdout_console, verbosity_options,
)

_HELP = """Compile the SavedModel in MODEL_DIR for NeuronCores into NEW_MODEL_DIR.

Supported parts of the graph become NeuronOp nodes; the rest stays on CPU.  Prints the
operator counts, a table of segments, every CPU node under its reason, and OnNeuronRatio.
Compiler flags also come from NEURON_CC_FLAGS.  Exit codes: 0 ok, 1 error, 2 usage,
3 OnNeuronRatio below --min-on-neuron-ratio.
"""


def _names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated options and comma-separated lists both work."""
    return tuple(sorted({n.strip() for v in values for n in v.split(",") if n.strip()}))


@click.command("compile", help=_HELP)
@click.argument("model_dir", type=NonEmptyPath())
@click.argument("new_model_dir", type=NonEmptyPath())
@click.option("--batch-size", "--batch_size", type=click.IntRange(min=1), default=1,
              show_default=True, help="Compile-time size of an unknown batch dimension.")
@click.option("--input-shape", "--input_shape", "input_shape", multiple=True,
              metavar="NAME=D0,D1,...", help="Full shape of a signature input (repeatable).")
@click.option("--inputs", "inputs_file", type=NonEmptyPath(), metavar="FILE.npz",
              help="Example inputs (keys = signature input keys); their shapes are used.")
@model_selection_options
@click.option("--minimum_segment_size", "--minimum-segment-size", type=click.IntRange(min=1),
              default=None, help="Smallest segment (ops, Identity not counted) to compile.  "
              "[default: AWS's, min(2, max(1, non-Placeholder ops))]")
@click.option("--no_fuse_ops", "--no-fuse-ops", multiple=True, metavar="NAMES",
              help="Node names kept on CPU (comma-separated, repeatable).")
@click.option("--force_fuse_ops", "--force-fuse-ops", multiple=True, metavar="NAMES",
              help="Node names fused regardless of the support rules.")
@click.option("--supported_op_types", "--supported-op-types", metavar="OPS",
              help="Operator types offered to the NeuronCore (comma-separated; default AWS's "
                   "list): a bare list replaces it, +Op adds to it, +simulator adds the "
                   "simulator's extra ops.")
@click.option("--compiler_args", "--compiler-args", metavar="ARGS",
              help="Compiler flags, e.g. '--neuroncore-pipeline-cores 2' (after NEURON_CC_FLAGS).")
@click.option("--compiler_workdir", "--compiler-workdir", type=NonEmptyPath(),
              help="Write compile artifacts (graphs, executables, logs) here.")
@click.option("--must-compile", "--must_compile", is_flag=True,
              help="Fail if any segment cannot be compiled.")
@click.option("--min-on-neuron-ratio", "--min_on_neuron_ratio", type=click.FloatRange(0, 1),
              default=None, help="Exit 3 when OnNeuronRatio is below this.")
@click.option("--verify", "verify_after", is_flag=True,
              help="Run the compiled model on the simulator against the original "
                   "(inputs from --inputs, else 2 random runs); exit 1 on a mismatch.")
@click.option("--force", is_flag=True, help="Replace NEW_MODEL_DIR if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Segments compiled in parallel.")
@verbosity_options
@command
def compile_command(model_dir: str, new_model_dir: str, batch_size: int,
                    input_shape: tuple[str, ...], inputs_file: str | None, tags: tuple[str, ...] | None,
                    signature_def: str | None, minimum_segment_size: int | None,
                    no_fuse_ops: tuple[str, ...], force_fuse_ops: tuple[str, ...],
                    supported_op_types: str | None, compiler_args: str | None, compiler_workdir: str | None,
                    must_compile: bool, min_on_neuron_ratio: float | None,
                    verify_after: bool, force: bool, as_json: bool, jobs: int, verbose: int,
                    quiet: bool) -> int:
    from neuroncli import saved_model
    from neuroncli.errors import UserError

    feed = saved_model.load_npz(inputs_file) if inputs_file else None
    bar, update = progress_callback(not (as_json or quiet))
    options = saved_model.make_options(
        batch_size=batch_size,
        model_shape_feed_dict=saved_model.parse_input_shapes(input_shape),
        model_feed_dict=feed,
        tags=tags,
        signature_def_key=signature_def, minimum_segment_size=minimum_segment_size,
        no_fuse_ops=_names(no_fuse_ops), force_fuse_ops=_names(force_fuse_ops),
        compiler_args=compiler_args, compiler_workdir=compiler_workdir,
        must_compile=must_compile, force=force, jobs=jobs,
        supported_op_types=supported_op_types)
    verified: list[Any] = []

    def accept(report: Any, directory: str) -> None:
        """Gates run on the finished model before it is renamed into place: a failure
        prints the report and writes nothing."""
        if verify_after:
            result = _verify(model_dir, directory, feed, options)
            verified.append(dataclasses.replace(result, compiled_dir=new_model_dir))
        failure = _gate_failure(report, verified[0] if verified else None, min_on_neuron_ratio)
        if failure is not None:
            _print(report, verified, as_json, quiet, verbose)
            raise UserError(f"{failure[0]}: nothing was written", exit_code=failure[1])

    if bar is not None:
        with bar:
            report = saved_model.compile_with_report(model_dir, new_model_dir, options, update,
                                                     accept)
    else:
        report = saved_model.compile_with_report(model_dir, new_model_dir, options,
                                                 accept=accept)
    _print(report, verified, as_json, quiet, verbose)
    return 0


def _gate_failure(report: Any, verified: Any,
                  min_ratio: float | None) -> tuple[str, int] | None:
    """``(message, exit code)`` of the first gate the compiled model fails, else None."""
    from neuroncli.errors import EXIT_THRESHOLD, EXIT_USER
    if verified is not None and not verified.passed:
        failed = [o.key for o in verified.outputs if not o.passed]
        return (f"--verify: {len(failed)} output(s) differ from the original: "
                f"{', '.join(failed)}", EXIT_USER)
    if min_ratio is not None and report.on_neuron_ratio < min_ratio:
        return (f"OnNeuronRatio {report.on_neuron_ratio:.4f} is below --min-on-neuron-ratio "
                f"{min_ratio}", EXIT_THRESHOLD)
    return None


def _print(report: Any, verified: list, as_json: bool, quiet: bool, verbose: int) -> None:
    from neuroncli.compiler import report as report_mod
    if as_json:
        doc = json.loads(report.to_json())
        if verified:
            doc["verify"] = verified[0].to_dict()
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    elif not quiet:
        report_mod.render(report, stdout_console(), max_names=0 if verbose else 20)
        if verified:
            from neuroncli.cli.tables import render_verify_report
            render_verify_report(verified[0])


def _verify(model_dir: str, new_model_dir: str, feed: dict | None, options: Any) -> Any:
    from neuroncli.runtime.verify import verify
    return verify(model_dir, new_model_dir, feed, runs=1 if feed is not None else 2,
                  signature_def_key=options.signature_def_key, tags=options.tags)


def main() -> None:
    """Console script ``neuron-compile``."""
    invoke(compile_command, "neuron-compile")


if __name__ == "__main__":
    main()
