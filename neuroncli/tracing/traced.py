"""Compile a traced concrete function and wrap the result as a callable :class:`TracedModel`.

The compiled SavedModel message is loaded on the simulated NeuronCores with
``neuroncli.runtime.load(saved_model=...)``, straight from memory: the same loader every saved
model goes through, so a traced model and its ``.save()``d copy behave the same.  Weights
extracted with ``--extract-weights`` go to a private temporary directory (removed when the
model is garbage-collected), where the runtime restores them from.
"""

from __future__ import annotations

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
from neuroncli.compiler.weights import check_protobuf_limit, write_variables
from neuroncli.savedmodel import DEFAULT_SIGNATURE, SERVE
from neuroncli.tracing.conventions import TracedCall
from neuroncli.tracing.model import TracedModel


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


def compile_concrete(traced: TracedCall, options: CompileOptions,
                     started: float) -> TracedModel:
    """Freeze, compile, write to a private directory and load: the body of ``trace``."""
    concrete, structure = traced.concrete, traced.structure
    in_keys, out_keys = structure.input_keys, sorted(concrete.structured_outputs)
    extract = options.flags.extract_weights
    check_protobuf_limit("trace", _captured_bytes(concrete.graph.variables),
                         _captured_bytes(t for t in concrete.captured_inputs
                                         if t.dtype.name != "resource"), extract)
    graph_def, in_names, out_names, weights = _convert_to_constants(concrete, extract is not None)
    inputs = dict(zip(in_keys, in_names))
    outputs = dict(zip(out_keys, out_names))
    frozen = FrozenGraph(_prune(graph_def, [*in_names, *out_names]), inputs, outputs,
                         {k: int(t.dtype.as_datatype_enum) for k, t in
                          zip(in_keys, concrete.inputs)}, weights)
    shapes = {k: tuple(int(d) for d in np.shape(v)) for k, v in zip(in_keys, traced.values)}
    done = compile_frozen(frozen, shapes, options)
    meta_graph, signature = _signature(concrete, frozen, tuple(in_keys))
    saved_model = output.build_saved_model(meta_graph, DEFAULT_SIGNATURE, signature, frozen,
                                           done.fused, done.mapping, done.graph)
    # The nest of the call and of the outputs travels with the model (tracing.structure).
    served = saved_model.meta_graphs[0]
    served.meta_info_def.any_info.Pack(
        structure.to_proto(served.signature_def[DEFAULT_SIGNATURE]))
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
    return TracedModel(model, structure, report, workdir)


def _captured_bytes(values: Any) -> int:
    """Bytes of captured variables or eager tensors: what freezing turns into constants."""
    return sum(int(v.shape.num_elements() or 0) * v.dtype.size for v in values)


class _Workdir:
    """The private directory of a traced model, removed when no TracedModel uses it."""

    def __init__(self, path: str) -> None:
        self.path = path
        weakref.finalize(self, shutil.rmtree, path, True)
