"""``neuroncli.saved_model``: AWS's ``tfn.saved_model.compile``, argument for argument.

``compile`` returns the operator counts (``OnNeuronRatio`` and the three logged numbers);
``compile_with_report`` returns the full :class:`~neuroncli.compiler.report.CompileReport`
the ``neuron-compile`` command prints.  Both validate every argument before any work.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable, Mapping

from neuroncli.compiler.flags import resolve_flags
from neuroncli.compiler.options import CompileOptions
from neuroncli.errors import UserError
from neuroncli.partition.support import resolve_op_set
from neuroncli.runtime.inputs import load_npz  # re-exported: one reader for every command

log = logging.getLogger("neuroncli")

__all__ = ["compile", "compile_with_report", "make_options", "parse_input_shapes", "load_npz"]


def make_options(*, batch_size: int = 1, model_shape_feed_dict: Mapping | None = None,
                 model_feed_dict: Mapping | None = None, tags: Iterable[str] | None = None,
                 signature_def_key: str | None = None, minimum_segment_size: int | None = None,
                 no_fuse_ops: Iterable[str] | None = None,
                 force_fuse_ops: Iterable[str] | None = None,
                 compiler_args: Iterable[str] | str | None = None,
                 compiler_workdir: str | None = None, must_compile: bool = False,
                 force: bool = False, jobs: int = 2,
                 supported_op_types: Iterable[str] | str | None = None) -> CompileOptions:
    """Build validated :class:`CompileOptions` from AWS-style arguments.

    ``supported_op_types``: operator types offered to the device (default AWS's list); a
    bare list replaces it, ``+Op`` items add to it, ``+simulator`` adds the simulator's
    extra ops (:func:`neuroncli.partition.resolve_op_set`)."""
    flags = resolve_flags(compiler_args)
    if must_compile and not flags.must_compile:
        from dataclasses import replace
        flags = replace(flags, must_compile=True)
    shapes = {str(k): _shape(k, v) for k, v in (model_shape_feed_dict or {}).items()}
    feed = None
    if model_feed_dict is not None:
        import numpy as np
        feed = {str(k): np.asarray(v) for k, v in model_feed_dict.items()}
    if isinstance(tags, str):
        tags = [tags]
    return CompileOptions(
        batch_size=batch_size, input_shapes=shapes, feed=feed,
        tags=tuple(tags) if tags is not None else None, signature_def_key=signature_def_key,
        minimum_segment_size=minimum_segment_size, op_set=resolve_op_set(supported_op_types),
        no_fuse_ops=tuple(sorted(set(no_fuse_ops or ()))),
        force_fuse_ops=tuple(sorted(set(force_fuse_ops or ()))), flags=flags,
        compiler_workdir=compiler_workdir, force=force, jobs=jobs)


def _shape(key: Any, dims: Any) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in dims)
    except (TypeError, ValueError):
        raise UserError(f"model_shape_feed_dict[{key!r}] = {dims!r} is not a list of "
                        "integers: give the input's full shape, e.g. [1, 224, 224, 3]") from None


def compile_with_report(model_dir: str | os.PathLike, new_model_dir: str | os.PathLike,
                        options: CompileOptions,
                        progress: Callable[[str, int, int], None] | None = None,
                        accept: Callable[[Any, str], None] | None = None) -> Any:
    """Compile and return the full report.  ``accept(report, directory)`` sees the complete
    model before it is renamed into place, and may raise to write nothing."""
    from neuroncli.compiler.pipeline import compile_saved_model
    report = compile_saved_model(os.fspath(model_dir), os.fspath(new_model_dir), options,
                                 progress, accept)
    counts = report.counts
    log.info("Number of operations in TensorFlow session: %d", report.ops_session)
    log.info("Number of operations after tf.neuron optimizations: %d", counts.graph_nodes)
    log.info("Number of operations placed on Neuron runtime: %d", counts.on_neuron)
    if counts.low:
        log.warning("only %.1f%% of the operations run on the NeuronCore (OnNeuronRatio "
                    "%.4f); most of the model will run on the CPU", 100 * counts.ratio,
                    counts.ratio)
    return report


def compile(model_dir: str | os.PathLike, new_model_dir: str | os.PathLike,  # noqa: A001
            batch_size: int = 1, model_shape_feed_dict: Mapping | None = None,
            model_feed_dict: Mapping | None = None, tags: Iterable[str] | None = None,
            signature_def_key: str | None = None, minimum_segment_size: int | None = None,
            no_fuse_ops: Iterable[str] | None = None,
            compiler_args: Iterable[str] | str | None = None,
            compiler_workdir: str | None = None, *,
            force_fuse_ops: Iterable[str] | None = None, force: bool = False,
            supported_op_types: Iterable[str] | str | None = None) -> dict:
    """Compile a SavedModel for NeuronCores, like ``tfn.saved_model.compile``.

    Returns ``{'OnNeuronRatio': ratio, ...}`` with the operator counts.  Raises
    :class:`neuroncli.errors.UserError` (a ``ValueError``) for bad arguments or models.
    """
    options = make_options(
        batch_size=batch_size, model_shape_feed_dict=model_shape_feed_dict,
        model_feed_dict=model_feed_dict, tags=tags, signature_def_key=signature_def_key,
        minimum_segment_size=minimum_segment_size, no_fuse_ops=no_fuse_ops,
        force_fuse_ops=force_fuse_ops, compiler_args=compiler_args,
        compiler_workdir=compiler_workdir, force=force, supported_op_types=supported_op_types)
    return compile_with_report(model_dir, new_model_dir, options).counts_dict()


def parse_input_shapes(values: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """``["x=1,224,224,3"]`` -> ``{"x": (1, 224, 224, 3)}``; clear errors otherwise."""
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, sep, dims = value.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--input-shape {value!r} is not NAME=D0,D1,...: e.g. "
                            "--input-shape input_1=1,224,224,3")
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip() != "") if dims else ()
        except ValueError:
            raise UserError(f"--input-shape {value!r}: dimensions must be integers "
                            "separated by commas") from None
        if any(d < 1 for d in shape):
            raise UserError(f"--input-shape {value!r}: dimensions must be positive")
        shapes[name.strip()] = shape
    return shapes
