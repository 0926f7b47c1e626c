"""Compile a traced concrete function and wrap the result as a callable :class:`TracedModel`.

The compiled SavedModel message is loaded on the simulated NeuronCores with
``neuroncli.runtime.load(saved_model=...)``, straight from memory: the same loader every saved
model goes through, so a traced model and its ``.save()``d copy behave the same.  Weights
extracted with ``--extract-weights`` go to a private temporary directory (removed when the
model is garbage-collected), where the runtime restores them from.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from typing import Any

import numpy as np

from neuroncli import proto
from neuroncli.compiler import output
from neuroncli.compiler.freeze import FrozenGraph, _convert_to_constants, _prune
from neuroncli.compiler.options import CompileOptions
from neuroncli.compiler.pipeline import compile_frozen, report_for
from neuroncli.errors import UserError
from neuroncli.compiler.weights import check_protobuf_limit, write_variables
from neuroncli.savedmodel import (
    DEFAULT_SIGNATURE, SERVE, atomic_output, copy_model_files, write_saved_model,
)
from neuroncli.tracing.conventions import KEYWORDS, STAR, Convention


def _tensor_info(info: Any, dtype: int, shape: Any) -> None:
    info.dtype = dtype
    if shape.rank is None:
        info.tensor_shape.unknown_rank = True
        return
    for dim in shape.as_list():
        info.tensor_shape.dim.add(size=-1 if dim is None else dim)


def _signature(concrete: Any, frozen: FrozenGraph, keys: tuple[str, ...]) -> tuple[Any, Any]:
    """A meta graph (tags {serve}) and a SignatureDef describing the traced function."""
    meta_graph = proto.MetaGraphDef()
    meta_graph.meta_info_def.tags.append(SERVE)
    signature = proto.SignatureDef(method_name=output.PREDICT_METHOD)
    for key, tensor in zip(keys, [t for t in concrete.inputs][:len(keys)]):
        _tensor_info(signature.inputs[key], tensor.dtype.as_datatype_enum, tensor.shape)
        signature.inputs[key].name = frozen.inputs[key]
    for key in sorted(frozen.outputs):
        tensor = concrete.structured_outputs[key]
        _tensor_info(signature.outputs[key], tensor.dtype.as_datatype_enum, tensor.shape)
        signature.outputs[key].name = frozen.outputs[key]
    return meta_graph, signature


def compile_concrete(concrete: Any, conv: Convention, kind: str, out_keys: tuple[str, ...],
                     values: list[Any], options: CompileOptions,
                     started: float) -> TracedModel:
    """Freeze, compile, write to a private directory and load: the body of ``trace``."""
    extract = options.flags.extract_weights
    check_protobuf_limit("trace", _captured_bytes(concrete.graph.variables),
                         _captured_bytes(t for t in concrete.captured_inputs
                                         if t.dtype.name != "resource"), extract)
    graph_def, in_names, out_names, weights = _convert_to_constants(concrete, extract is not None)
    inputs = dict(zip(conv.keys, in_names))
    outputs = dict(zip(out_keys, out_names))
    frozen = FrozenGraph(_prune(graph_def, [*in_names, *out_names]), inputs, outputs,
                         {k: int(t.dtype.as_datatype_enum) for k, t in
                          zip(conv.keys, concrete.inputs)}, weights)
    shapes = {k: tuple(int(d) for d in np.shape(v)) for k, v in zip(conv.keys, values)}
    done = compile_frozen(frozen, shapes, options)
    meta_graph, signature = _signature(concrete, frozen, conv.keys)
    saved_model = output.build_saved_model(meta_graph, DEFAULT_SIGNATURE, signature, frozen,
                                           done.fused, done.mapping, done.graph)
    # Loaded from the message in memory: no write and re-read of saved_model.pb (1.4 s on
    # ResNet50).  Only extracted weights need a directory, the checkpoint the runtime restores.
    workdir = _Workdir(tempfile.mkdtemp(prefix="neuroncli-trace-")) if frozen.weights else None
    from neuroncli.runtime import load
    if workdir is not None:
        write_variables(workdir.path, frozen.weights)
    # Like AWS's, a traced model puts its programs on the cores at the first call (TensorFlow
    # builds its executors then): tracing does not pay that second for a model never called.
    model = load(workdir.path if workdir else "<trace>", saved_model=saved_model,
                 warmup=False)
    report = report_for(done, model_dir="<trace>", new_model_dir="",
                        signature_key=DEFAULT_SIGNATURE, seconds=time.perf_counter() - started)
    return TracedModel(model, conv, kind, out_keys, report, workdir)


def _captured_bytes(values: Any) -> int:
    """Bytes of captured variables or eager tensors: what freezing turns into constants."""
    return sum(int(v.shape.num_elements() or 0) * v.dtype.size for v in values)


class _Workdir:
    """The private directory of a traced model, removed when no TracedModel uses it."""

    def __init__(self, path: str) -> None:
        self.path = path
        weakref.finalize(self, shutil.rmtree, path, True)


class TracedModel:
    """A traced, compiled function running on simulated NeuronCores; call it like the
    original.  Inference only: the original's attributes and variables are not kept."""

    def __init__(self, model: Any, conv: Convention, kind: str, out_keys: tuple[str, ...],
                 report: Any, workdir: _Workdir | None) -> None:
        self.neuron_model = model
        self.report = report
        self._conv, self._kind, self._out_keys = conv, kind, out_keys
        self._workdir = workdir

    def with_neuron_model(self, model: Any) -> TracedModel:
        """The same traced function served by another loaded copy (``auto_multicore``)."""
        return TracedModel(model, self._conv, self._kind, self._out_keys, self.report,
                           self._workdir)

    @property
    def on_neuron_ratio(self) -> float:
        return self.report.on_neuron_ratio

    @property
    def signature(self) -> Any:
        return self.neuron_model.signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        feeds = self._feeds(args, kwargs)
        outputs = self.neuron_model(**feeds)
        return self._restructure(outputs)

    def _feeds(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        conv = self._conv
        if conv.kind == KEYWORDS:
            if args:
                raise UserError("this traced model takes keyword arguments only: "
                                f"{', '.join(conv.keys)}")
            return {k: _numpy(kwargs[k]) for k in kwargs}
        if kwargs:
            raise UserError("this traced model takes positional arguments only")
        if conv.kind == STAR:
            values = list(args)
        elif len(args) != 1:
            raise UserError(f"this traced model takes one argument, got {len(args)}")
        else:
            values = list(args[0]) if conv.is_list else [args[0]]
        if len(values) != len(conv.keys):
            raise UserError(f"this traced model takes {len(conv.keys)} input(s), got "
                            f"{len(values)}")
        return {k: _numpy(v) for k, v in zip(conv.keys, values)}

    def _restructure(self, outputs: dict[str, np.ndarray]) -> Any:
        from neuroncli.lazy_tf import import_tensorflow
        tf = import_tensorflow()
        tensors = {k: tf.constant(outputs[k]) for k in self._out_keys}
        if self._kind == "dict":
            return tensors
        ordered = [tensors[f"output_{i}"] for i in range(len(tensors))]
        if self._kind == "tensor":
            return ordered[0]
        return tuple(ordered) if self._kind == "tuple" else ordered

    def save(self, directory: str | os.PathLike, *, force: bool = False) -> None:
        """Write the compiled SavedModel to ``directory`` (atomically)."""
        with atomic_output(os.fspath(directory), force=force) as tmp:
            write_saved_model(tmp, self.neuron_model.saved_model)
            if self._workdir is not None:
                copy_model_files(self._workdir.path, tmp, parts=("variables",))

    def stats(self) -> Any:
        return self.neuron_model.stats()

    def unload(self) -> None:
        self.neuron_model.unload()

    def __repr__(self) -> str:
        return (f"<TracedModel OnNeuronRatio={self.on_neuron_ratio:.4f} "
                f"{self.neuron_model!r}>")


def _numpy(value: Any) -> Any:
    numpy = getattr(value, "numpy", None)
    return numpy() if callable(numpy) else np.asarray(value)
