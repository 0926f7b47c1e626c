"""Compiling never runs a model's own side effects (protobuf only).

Freezing has to let TensorFlow load the model, and loading runs some of the model's graph:
TF2's ``tf.saved_model.load`` runs every resource's ``_create_resource``/``_initialize``
function and the saveables' restore functions; TF1's ``saver.restore`` runs the saver's restore
op, and anything a variable reads (its control inputs included) runs with it.  A hostile model
can put a ``WriteFile`` there.  :func:`check_load_time_ops` walks exactly what loading would
run, through the function library, and refuses any op outside :data:`LOAD_TIME_OPS` before
TensorFlow is imported.  (``main_op``/``legacy_init_op`` are never run at all: see
:mod:`neuroncli.compiler.freeze`.)

:func:`side_effect_free` serves the one other place the compiler executes a graph: the shape
pass on real inputs (``--inputs``) may only fetch tensors that reach no stateful op.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from neuroncli.format.weights import HANDLE_OP, READ_OP, VARIABLE_OPS
from neuroncli.errors import UserError
from neuroncli.graph import split_tensor

#: What restoring variables and creating/initializing lookup tables legitimately run.
LOAD_TIME_OPS = frozenset({
    "Const", "Identity", "IdentityN", "NoOp", "Placeholder", "PlaceholderWithDefault",
    *VARIABLE_OPS, "Assign", "AssignVariableOp", READ_OP,
    "VarIsInitializedOp", "IsVariableInitialized",
    "RestoreV2", "Restore", "RestoreSlice", "StringJoin", "ShardedFilename",
    "HashTable", "HashTableV2", "MutableHashTableV2", "MutableHashTableOfTensorsV2",
    "MutableDenseHashTableV2", "InitializeTable", "InitializeTableV2",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "LookupTableImportV2",
    "LookupTableInsertV2", "LookupTableRemoveV2", "LookupTableSizeV2",
    "PartitionedCall", "StatefulPartitionedCall",  # their bodies are walked too
    "Cast", "Reshape", "Pack", "ConcatV2", "Fill", "Shape", "StridedSlice",
})
#: Stateful ops the shape pass may still run: inputs, constants and variable reads.
_HARMLESS_STATEFUL = frozenset({"Placeholder", "PlaceholderWithDefault", "Const",
                                HANDLE_OP, READ_OP})
_INITIALIZERS = ("_create_resource", "_initialize")


def _name(ref: str) -> str:
    return split_tensor(ref.lstrip("^"))[0]


def _closure(nodes: dict[str, Any], roots: Iterable[str]) -> Iterator[Any]:
    """Every node the roots read, data and control inputs alike."""
    seen: set[str] = set()
    stack = [_name(r) for r in roots if r]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        yield nodes[name]
        stack.extend(_name(i) for i in nodes[name].input)


def _called(node: Any) -> list[str]:
    """Functions a node calls through its attributes (``f``, ``then_branch``, ...)."""
    names = []
    for attr in node.attr.values():
        if attr.HasField("func"):
            names.append(attr.func.name)
        names.extend(f.name for f in attr.list.func)
    return names


def _refuse(where: str, name: str, op: str) -> None:
    raise UserError(f"{where} would run node {name!r} ({op}) while compiling; neuroncli never "
                    "runs a model's own operations at compile time: re-export the model "
                    "without it")


def _check_functions(library: dict[str, Any], names: Iterable[str], where: str) -> None:
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        for node in library[name].node_def:
            if node.op in library:  # a call of a library function by its name
                stack.append(node.op)
                continue
            stack.extend(_called(node))
            if node.op not in LOAD_TIME_OPS:
                _refuse(where, node.name, node.op)


def _concrete_functions(objects: Any, node_id: int) -> list[str]:
    target = objects[node_id]
    if target.HasField("function"):
        return list(target.function.concrete_functions)
    if target.HasField("bare_concrete_function"):
        return [target.bare_concrete_function.concrete_function_name]
    return []


def _tf2_load_functions(meta_graph: Any) -> list[str]:
    """Concrete functions ``tf.saved_model.load`` runs: initializers and restore functions."""
    objects = meta_graph.object_graph_def.nodes
    names: list[str] = []
    for node in objects:
        for child in node.children:
            if child.local_name in _INITIALIZERS:
                names.extend(_concrete_functions(objects, child.node_id))
        for saveable in node.saveable_objects.values():
            names.extend(_concrete_functions(objects, saveable.restore_function))
    return names


def check_load_time_ops(meta_graph: Any, tf2: bool) -> None:
    """Refuse a model whose loading for the freeze would run an op outside the allowlist."""
    graph = meta_graph.graph_def
    library = {f.signature.name: f for f in graph.library.function}
    if tf2:
        _check_functions(library, _tf2_load_functions(meta_graph),
                         "a resource initializer of the model")
        return
    nodes = {n.name: n for n in graph.node}
    roots = [meta_graph.saver_def.restore_op_name,
             *(n.name for n in graph.node if n.op in VARIABLE_OPS)]
    for node in _closure(nodes, roots):
        if node.op in library:
            _check_functions(library, [node.op], "the model's variable restore")
        elif node.op not in LOAD_TIME_OPS:
            _refuse("restoring the model's variables", node.name, node.op)
        _check_functions(library, _called(node), "the model's variable restore")


def side_effect_free(tf_graph: Any) -> set[str]:
    """Names of the ops of a ``tf.Graph`` whose run reaches no stateful op."""
    clean: set[str] = set()
    for op in tf_graph.get_operations():  # a tf.Graph lists its ops in topological order
        stateful = op.op_def.is_stateful and op.type not in _HARMLESS_STATEFUL
        inputs = [t.op.name for t in op.inputs] + [c.name for c in op.control_inputs]
        if not stateful and all(name in clean for name in inputs):
            clean.add(op.name)
    return clean
