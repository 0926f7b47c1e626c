""":class:`TracedModel`, the callable ``trace`` returns, and ``neuroncli.load``.

A traced model is called like the original function (the nested call structure of
:mod:`neuroncli.tracing.structure`) and returns the original's output structure: a tensor, a
list, a tuple, a dict, nested.  ``.save()`` writes the compiled SavedModel with that
structure; ``neuroncli.load`` of such a directory returns a :class:`TracedModel` again, and
of any other compiled model a :class:`~neuroncli.runtime.NeuronModel` (signature keys in,
``{output key: array}`` out).  This module does not import the compiler.
"""

from __future__ import annotations

import os
from typing import Any

from neuroncli.lazy_tf import import_tensorflow
from neuroncli.savedmodel import DEFAULT_SIGNATURE
from neuroncli.tracing.structure import CallStructure, pack, saved_structure


class TracedModel:
    """A traced, compiled function running on simulated NeuronCores; call it like the
    original.  Inference only: the original's attributes and variables are not kept.

    neuron_model: the loaded compiled model.  report: the compile report (None when loaded
    from a directory).  structure: how it is called and what it returns.
    """

    def __init__(self, model: Any, structure: CallStructure, report: Any = None,
                 workdir: Any = None) -> None:
        self.neuron_model = model
        self.report = report
        self.structure = structure
        self._workdir = workdir  # keeps a trace's extracted weights alive while in use

    def with_neuron_model(self, model: Any) -> TracedModel:
        """The same traced function served by another loaded copy (``auto_multicore``)."""
        return TracedModel(model, self.structure, self.report, self._workdir)

    @property
    def on_neuron_ratio(self) -> float:
        if self.report is not None:
            return self.report.on_neuron_ratio
        from neuroncli.format.counts import count_meta_graph
        from neuroncli.savedmodel import select_meta_graph
        meta_graph = select_meta_graph(self.neuron_model.source_saved_model(), None)
        return count_meta_graph(meta_graph).ratio

    @property
    def signature(self) -> Any:
        return self.neuron_model.signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        shapes = {k: s.shape for k, s in self.neuron_model.signature.inputs.items()}
        feeds = self.structure.bind(args, kwargs, shapes)
        outputs = self.neuron_model(**{k: _numpy(v) for k, v in feeds.items()})
        tf = import_tensorflow()
        return pack(self.structure.outputs,
                    iter([tf.constant(outputs[k]) for k in self.structure.output_keys]))

    def call_example(self, example_inputs: Any) -> Any:
        """Call with ``example_inputs`` the way ``trace`` called the original with them."""
        if isinstance(example_inputs, dict) and self.structure.kwargs:
            return self(**example_inputs)
        if isinstance(example_inputs, tuple):
            return self(*example_inputs)
        return self(example_inputs)

    def save(self, directory: str | os.PathLike, *, force: bool = False) -> None:
        """Write the compiled SavedModel, call structure included, to ``directory``
        (atomically; extracted weights go along)."""
        self.neuron_model.save(directory, force=force)

    @property
    def cores(self) -> tuple[int, ...]:
        return self.neuron_model.cores

    @property
    def replicas(self) -> tuple[tuple[int, ...], ...]:
        return self.neuron_model.replicas

    def __enter__(self) -> TracedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    def stats(self) -> Any:
        return self.neuron_model.stats()

    def unload(self) -> None:
        self.neuron_model.unload()

    def __repr__(self) -> str:
        return (f"<TracedModel {self.structure.describe()} "
                f"{self.neuron_model!r}>")


def _numpy(value: Any) -> Any:
    import numpy as np
    numpy = getattr(value, "numpy", None)
    return numpy() if callable(numpy) else np.asarray(value)


def load(model_dir: str | os.PathLike, signature_def_key: str | None = None,
         tags: Any = None, **kwargs: Any) -> Any:
    """``neuroncli.load``: :func:`neuroncli.runtime.load`, and a saved trace comes back as a
    :class:`TracedModel` called and answering like the original function."""
    from neuroncli.runtime import load as load_runtime
    model = load_runtime(model_dir, signature_def_key, tags, **kwargs)
    structure = saved_structure(model.meta_info_def)
    if structure is None or model.signature.key != DEFAULT_SIGNATURE:
        return model  # the structure describes the serving_default signature only
    return TracedModel(model, structure)
