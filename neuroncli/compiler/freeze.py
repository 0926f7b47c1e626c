"""Freeze a SavedModel signature into one self-contained inference ``GraphDef`` (imports TF).

TF2 SavedModels: load, take the signature's concrete function and inline/freeze it with
``convert_variables_to_constants_v2``.  TF1 SavedModels: import the meta graph into a session,
restore the variables with the model's saver and freeze with ``convert_variables_to_constants``.
The TF1 path deliberately does **not** run the model's ``main_op``/``legacy_init_op``: compiling
must never execute a model's stateful ops (a hostile init op could write files).

With ``extract=True`` (``--extract-weights``) variables are not turned into constants: each
stays a ``VarHandleOp`` read by the model's ``ReadVariableOp`` nodes, and its value travels
beside the graph (:mod:`neuroncli.compiler.weights`).

The result maps every signature key to a tensor name in the frozen graph.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from neuroncli import proto
from neuroncli.compiler.inline import inline_marked_calls
from neuroncli.compiler.weights import ExtractedWeights, handles_for_placeholders
from neuroncli.errors import UserError
from neuroncli.format.weights import VARIABLE_OPS
from neuroncli.graph import split_tensor
from neuroncli.lazy_tf import import_tensorflow
from neuroncli.savedmodel import is_tf2

log = logging.getLogger("neuroncli")


@dataclass(frozen=True)
class FrozenGraph:
    """A frozen inference graph and its signature, by tensor name.

    graph_def: the frozen GraphDef (no function calls left for TF2 models; no variables
        either, unless ``weights`` were extracted: then one ``VarHandleOp`` per weight).
    inputs / outputs: signature key -> tensor name ``node:port`` inside ``graph_def``.
    input_dtypes: signature key -> DataType number.
    weights: the variables kept out of ``graph_def`` (``--extract-weights``; empty otherwise).
    """

    graph_def: Any
    inputs: dict[str, str]
    outputs: dict[str, str]
    input_dtypes: dict[str, int]
    weights: ExtractedWeights = field(default_factory=ExtractedWeights)


def freeze(model_dir: str, meta_graph: Any, signature_key: str, signature: Any,
           extract: bool = False) -> FrozenGraph:
    """Freeze the chosen signature of the SavedModel at ``model_dir``."""
    tags = list(meta_graph.meta_info_def.tags)
    try:
        if is_tf2(meta_graph):
            return _freeze_tf2(model_dir, tags, signature_key, signature, extract)
        return _freeze_tf1(model_dir, meta_graph, signature, extract)
    except UserError:
        raise
    except Exception as exc:  # TensorFlow raises many types; the message is what matters
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{model_dir}: TensorFlow could not load and freeze signature "
                        f"{signature_key!r}: {first[:300]}") from exc


def _freeze_tf2(model_dir: str, tags: list[str], key: str, signature: Any,
                extract: bool) -> FrozenGraph:
    tf = import_tensorflow()
    loaded = tf.saved_model.load(model_dir, tags=tags)
    function = loaded.signatures[key]
    graph_def, input_names, output_names, weights = _convert_to_constants(function, extract)
    # The function's flat inputs are the signature's keyword arguments sorted by key
    # (captured variables are gone once frozen); its outputs follow nest.flatten of the
    # structured outputs, and a dict flattens in sorted key order.
    _, input_specs = function.structured_input_signature
    keys = sorted(input_specs)
    if len(keys) != len(input_names):
        raise UserError(f"signature {key!r}: {len(keys)} inputs declared but "
                        f"{len(input_names)} found after freezing: re-export the model")
    structured = function.structured_outputs
    out_keys = sorted(structured) if isinstance(structured, dict) else sorted(signature.outputs)
    if len(out_keys) != len(output_names):
        raise UserError(f"signature {key!r}: {len(out_keys)} outputs declared but "
                        f"{len(output_names)} found after freezing: re-export the model")
    inputs = dict(zip(keys, input_names))
    outputs = dict(zip(out_keys, output_names))
    dtypes = {k: int(signature.inputs[k].dtype) for k in keys if k in signature.inputs}
    return FrozenGraph(_prune(graph_def, {**inputs, **outputs}.values()), inputs, outputs,
                       dtypes, weights)


def _variable_captures(function: Any) -> dict[str, Any]:
    """Captured-variable placeholder node name -> the variable, for a concrete function."""
    found: dict[str, Any] = {}
    captured = list(function.captured_inputs)
    placeholders = function.graph.internal_captures
    for variable in function.graph.variables:
        for index, handle in enumerate(captured):
            if variable.handle is handle:
                found[split_tensor(placeholders[index].name)[0]] = variable
                break
    return found


def _convert_to_constants(function: Any, extract: bool = False
                          ) -> tuple[Any, list[str], list[str], ExtractedWeights]:
    """The frozen GraphDef of a concrete function, its input/output tensor names, and (with
    ``extract``) the variables kept as ``VarHandleOp`` nodes instead of constants.

    ``convert_variables_to_constants_v2`` spends most of its time (6 s of 13 s on ResNet50)
    wrapping the frozen GraphDef back into a ConcreteFunction, which we do not need; its two
    steps are called directly, falling back to the public call if TensorFlow renames them.
    """
    from tensorflow.python.framework import convert_to_constants as c2c
    variables = _variable_captures(function) if extract else {}
    try:
        data = c2c._FunctionConverterDataInEager(
            func=function, lower_control_flow=True, aggressive_inlining=False,
            variable_names_denylist=set(variables) or None)
        graph_def, converted = c2c._replace_variables_by_constants(converter_data=data)
        captures = function.graph.internal_captures
        kept = {captures[i].name for i in converted} | {f"{n}:0" for n in variables}
        inputs = [t.name for t in function.inputs if t.name not in kept]
        outputs = [t.name for t in function.outputs]
    except AttributeError:
        if extract:
            raise UserError("--extract-weights needs TensorFlow's function converter, which "
                            "this TensorFlow lacks: install tensorflow-cpu 2.21") from None
        frozen = c2c.convert_variables_to_constants_v2(function)
        graph_def = frozen.graph.as_graph_def()
        inputs = [t.name for t in frozen.inputs]
        outputs = [t.name for t in frozen.outputs]
    # Keras 3's jit-compiled layer functions survive freezing as calls: inline them, as AWS
    # does, so their ops reach the partitioner.
    graph_def = inline_marked_calls(proto.as_graph_def(graph_def),
                                    [*inputs, *outputs, *(f"{n}:0" for n in variables)])
    weights = ExtractedWeights({name: variables[name].numpy() for name in sorted(variables)})
    handles_for_placeholders(graph_def, weights.values)
    return graph_def, inputs, outputs, weights


def _prune(graph_def: Any, tensors: Any) -> Any:
    """Keep the nodes the given tensors need (data and control inputs), in stored order."""
    by_name = {node.name: node for node in graph_def.node}
    keep: set[str] = set()
    stack = [split_tensor(t)[0] for t in tensors]
    while stack:
        name = stack.pop()
        if name in keep or name not in by_name:
            continue
        keep.add(name)
        stack.extend(split_tensor(ref.lstrip("^"))[0] for ref in by_name[name].input)
    if len(keep) == len(by_name):
        return graph_def
    pruned = proto.GraphDef()
    pruned.versions.CopyFrom(graph_def.versions)
    pruned.library.CopyFrom(graph_def.library)
    for node in graph_def.node:  # add() + CopyFrom: extend() would copy twice, weights and all
        if node.name in keep:
            pruned.node.add().CopyFrom(node)
    return pruned


def _freeze_tf1(model_dir: str, meta_graph: Any, signature: Any, extract: bool) -> FrozenGraph:
    tf = import_tensorflow()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        saver = v1.train.import_meta_graph(
            v1.MetaGraphDef.FromString(meta_graph.SerializeToString()), clear_devices=True)
        with v1.Session(graph=graph, config=_session_config(v1)) as sess:
            prefix = os.path.join(model_dir, "variables", "variables")
            if saver is not None and os.path.exists(prefix + ".index"):
                saver.restore(sess, prefix)
            outputs = {k: signature.outputs[k].name for k in sorted(signature.outputs)}
            roots = sorted({split_tensor(name)[0] for name in outputs.values()})
            variables = sorted(op.name for op in graph.get_operations()
                               if op.type in VARIABLE_OPS) if extract else []
            frozen = v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), roots, variable_names_blacklist=variables or None)
            graph_def = proto.as_graph_def(frozen)
            weights = _tf1_weights(tf, sess, graph_def) if extract else ExtractedWeights()
    inputs = {k: signature.inputs[k].name for k in sorted(signature.inputs)}
    present = {node.name for node in graph_def.node}
    for key, name in inputs.items():
        if split_tensor(name)[0] not in present:  # input not needed by the outputs: keep it
            graph_def.node.add().CopyFrom(_placeholder(split_tensor(name)[0],
                                                      signature.inputs[key]))
    dtypes = {k: int(signature.inputs[k].dtype) for k in inputs}
    return FrozenGraph(graph_def, inputs, outputs, dtypes, weights)


def _tf1_weights(tf: Any, sess: Any, graph_def: Any) -> ExtractedWeights:
    """Read the variables left in a TF1 frozen graph and make each one a ``VarHandleOp``
    (in place): a ``VariableV2`` ``w`` becomes ``ReadVariableOp`` ``w`` over handle
    ``w/neuroncli_handle``, so its consumers read the same tensor name."""
    values: dict[str, Any] = {}
    graph = sess.graph
    for node in list(graph_def.node):
        if node.op == "VarHandleOp":
            with graph.as_default():
                read = tf.raw_ops.ReadVariableOp(
                    resource=graph.get_tensor_by_name(f"{node.name}:0"),
                    dtype=node.attr["dtype"].type)
            values[node.name] = sess.run(read)
        elif node.op == "VariableV2":
            name, dtype = node.name, node.attr["dtype"].type
            handle = f"{name}/neuroncli_handle"
            values[handle] = sess.run(f"{name}:0")
            graph_def.node.add(name=handle, op="Placeholder")
            node.Clear()
            node.name, node.op = name, "ReadVariableOp"
            node.input.append(handle)
            node.attr["dtype"].type = dtype
    handles_for_placeholders(graph_def, values)
    for node in graph_def.node:
        if node.op == "VarHandleOp":
            node.attr["shared_name"].s = node.name.encode()
    return ExtractedWeights(dict(sorted(values.items())))


def _placeholder(name: str, info: Any) -> Any:
    node = proto.NodeDef(name=name, op="Placeholder")
    node.attr["dtype"].type = info.dtype
    node.attr["shape"].shape.CopyFrom(info.tensor_shape)
    return node


def _session_config(v1: Any) -> Any:
    return v1.ConfigProto(inter_op_parallelism_threads=2, intra_op_parallelism_threads=2,
                          use_per_session_threads=True)
