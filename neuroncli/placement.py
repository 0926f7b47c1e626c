"""AWS's placement calls for TensorFlow users: ``set_neuron_cores``, ``set_multicore``,
``neuron_cores_context``, ``multicore_context`` and ``auto_multicore``.

They work on models from :func:`neuroncli.load` and :func:`neuroncli.trace`.  Core indices are
relative to the visible cores (``NEURON_RT_VISIBLE_CORES``).  ``start_nc=-1`` picks the
least-used visible core; ``nc_count=-1`` means exactly one core, ``nc_count > 1`` replicates
with round-robin dispatch.  Invalid values raise ``ValueError`` (``neuroncli.UserError``).
The contexts are not thread-safe, as AWS's are not.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from neuroncli.errors import UserError
from neuroncli.format.placement import (
    ALL_VISIBLE, check_nc_count, check_num_cores, check_start_nc,
)
from neuroncli.runtime.context import placement_context


def _check(start_nc: Any, nc_count: Any) -> None:
    check_start_nc(start_nc)
    check_nc_count(nc_count)


def _neuron_model(model: Any) -> Any:
    inner = getattr(model, "neuron_model", model)  # a TracedModel wraps a NeuronModel
    if not hasattr(inner, "set_neuron_cores"):
        raise UserError(f"{type(model).__name__} is not a compiled model: load it with "
                        "neuroncli.load or compile it with neuroncli.trace first")
    return inner


def set_neuron_cores(model: Any, start_nc: int = -1, nc_count: int = -1) -> None:
    """Move a loaded model to ``nc_count`` cores from ``start_nc`` (unloading it first)."""
    _check(start_nc, nc_count)
    _neuron_model(model).set_neuron_cores(start_nc, nc_count)


def set_multicore(model: Any) -> None:
    """Replicate a loaded model onto every visible core (round-robin dispatch)."""
    _neuron_model(model).set_neuron_cores(0, ALL_VISIBLE)


@contextlib.contextmanager
def neuron_cores_context(start_nc: int = -1, nc_count: int = -1) -> Iterator[None]:
    """Models loaded inside go to ``nc_count`` cores from ``start_nc``.  Not thread-safe."""
    _check(start_nc, nc_count)
    with placement_context(start_nc, nc_count):
        yield


@contextlib.contextmanager
def multicore_context() -> Iterator[None]:
    """Models loaded inside are replicated onto every visible core.  Not thread-safe."""
    with placement_context(0, ALL_VISIBLE):
        yield


def auto_multicore(model: Any, example_inputs: Any, num_cores: int) -> Any:
    """A copy of ``model`` whose NeuronOps carry ``_automatic_multicore = num_cores``: its
    calls round-robin over cores 0..num_cores-1, and ``.save()`` (then a reload) keeps them.

    ``model`` is a loaded or traced model, or the path of a compiled SavedModel.
    ``example_inputs`` are run once through the new copy (as AWS's call does) so that a
    model that cannot take them fails here, not at the first real inference.
    """
    check_num_cores(num_cores)
    if isinstance(model, (str, os.PathLike)):
        import neuroncli
        model = neuroncli.load(model)
    inner = _neuron_model(model)
    widths = {p.pipeline_cores for p in inner.programs} if hasattr(inner, "programs") else set()
    if any(w > 1 for w in widths):
        raise UserError(f"the model is compiled for {max(widths)} pipeline cores "
                        "(--neuroncore-pipeline-cores) and cannot be replicated: recompile "
                        "without pipeline cores to use auto_multicore")
    from neuroncli.rewrite.multicore import tag_saved_model
    from neuroncli.runtime import load
    tagged = tag_saved_model(inner.source_saved_model(), num_cores)
    copy = load(inner.model_dir, inner.signature.key, start_nc=0, nc_count=num_cores,
                saved_model=tagged)
    if hasattr(model, "with_neuron_model"):  # a traced model: called the way trace called
        result = model.with_neuron_model(copy)
        result.call_example(example_inputs)
        return result
    if isinstance(example_inputs, dict):
        copy(**example_inputs)
    elif isinstance(example_inputs, tuple):
        copy(*example_inputs)
    else:
        copy(example_inputs)
    return copy
