"""Build and write the compiled SavedModel, and the optional compile work directory.

The output is a TF1-style SavedModel: one MetaGraphDef (the input's tags) whose ``graph_def`` is
the compiled graph and whose one signature (the compiled one) names tensors of that graph, with
dtypes and shapes filled in.  Weights are frozen into the graph, so there is no ``variables/``,
unless ``--extract-weights`` kept them out (then ``variables/`` holds them: see
:mod:`neuroncli.format.weights`); ``assets/`` is copied.  Signature inputs keep their
declared shapes (an unknown batch stays unknown): the NeuronOps record the compiled shapes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from neuroncli import proto
from neuroncli.compiler.freeze import FrozenGraph
from neuroncli.format.weights import add_saver
from neuroncli.compiler.weights import ExtractedWeights, write_variables
from neuroncli.graph import Graph, split_tensor
from neuroncli.savedmodel import copy_model_files, write_saved_model

PREDICT_METHOD = "tensorflow/serving/predict"


def _declared_placeholder_shapes(graph_def: Any) -> dict[str, Any]:
    return {n.name: n.attr["shape"] for n in graph_def.node
            if n.op == "Placeholder" and "shape" in n.attr}


def build_saved_model(meta_graph: Any, signature_key: str, signature: Any,
                      frozen: FrozenGraph, fused: Any, mapping: dict[str, str],
                      graph: Graph) -> Any:
    """The compiled ``SavedModel`` message."""
    saved_model = proto.SavedModel(saved_model_schema_version=1)
    out = saved_model.meta_graphs.add()
    out.meta_info_def.tags.extend(meta_graph.meta_info_def.tags)
    out.meta_info_def.tensorflow_version = meta_graph.meta_info_def.tensorflow_version
    out.meta_info_def.tensorflow_git_version = meta_graph.meta_info_def.tensorflow_git_version
    out.graph_def.CopyFrom(fused)
    declared = _declared_placeholder_shapes(frozen.graph_def)
    for node in out.graph_def.node:
        if node.name in declared:
            node.attr["shape"].CopyFrom(declared[node.name])
    out.asset_file_def.extend(meta_graph.asset_file_def)
    add_saver(out)  # extracted weights: TensorFlow's own loaders restore variables/ too
    new_sig = out.signature_def[signature_key]
    new_sig.method_name = signature.method_name or PREDICT_METHOD
    for key in sorted(frozen.inputs):
        name = frozen.inputs[key]
        info = new_sig.inputs[key]
        info.name = name
        info.dtype = signature.inputs[key].dtype
        node = split_tensor(name)[0]
        if node in declared:
            info.tensor_shape.CopyFrom(declared[node].shape)
        else:
            info.tensor_shape.CopyFrom(signature.inputs[key].tensor_shape)
    for key in sorted(frozen.outputs):
        name = mapping.get(frozen.outputs[key], frozen.outputs[key])
        info = new_sig.outputs[key]
        info.name = name
        info.dtype = graph.tensor_dtype(name) or signature.outputs[key].dtype
        info.tensor_shape.CopyFrom(signature.outputs[key].tensor_shape)
    return saved_model


def write(directory: str, model_dir: str, saved_model: Any,
          weights: ExtractedWeights | None = None) -> None:
    """Fill the (temporary) output directory: the protobuf, extracted weights, assets."""
    write_saved_model(directory, saved_model)
    if weights:
        write_variables(directory, weights)
    copy_model_files(model_dir, directory, parts=("assets", "assets.extra"))


def dump_workdir(workdir: str, shaped: Any, fused: Any, results: list) -> None:
    """The real tool's layout: shaped and fused graphs, and a folder per segment."""
    os.makedirs(workdir, exist_ok=True)
    _write(os.path.join(workdir, "graph_def_shaped.pb"),
           shaped.SerializeToString(deterministic=True))
    _write(os.path.join(workdir, "graph_def_fused.pb"), fused.SerializeToString(deterministic=True))
    index = []
    for segment, result, extracted in results:
        folder = os.path.join(workdir, f"segment{segment.index:03d}")
        os.makedirs(folder, exist_ok=True)
        _write(os.path.join(folder, "graph_def.pb"),
               extracted.graph_def.SerializeToString(deterministic=True))
        if result.ok:
            _write(os.path.join(folder, "graph_def_optimized.pb"),
                   result.optimized.SerializeToString(deterministic=True))
            _write(os.path.join(folder, "executable.neff"), result.executable)
        _write(os.path.join(folder, "compile.log"), ("\n".join(result.log) + "\n").encode())
        index.append({"segment": segment.index, "compiled": result.ok, "reason": result.reason,
                      "nodes": len(segment.nodes), "folder": os.path.basename(folder)})
    _write(os.path.join(workdir, "segments.json"),
           (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
