"""Which variables a signature really reads, from the protobuf alone (no TensorFlow).

A SavedModel may declare variables that its serving signature never reads: Keras 3's
``model.export`` writes every weight twice in the object graph (the model's own variables and
``_all_variables/...``), and a model may carry an optimizer or a second head.  Freezing keeps
only what the signature reads, so the 2 GB estimate must count only that
(:func:`read_variables`).

* The walk starts at the nodes of the signature's outputs and goes back over data and control
  inputs (what freezing keeps: ``extract_sub_graph`` follows both).
* A function call (``StatefulPartitionedCall``, ``PartitionedCall``, or a node whose op is a
  library function) passes on only the inputs its function uses: those from which its return
  values or control outputs can be reached, followed the same way through nested calls.
  Other functional ops (``If``, ``While``, ...) are assumed to use every input.
* TF2: a variable reaches the signature's call as a captured input, a ``VarHandleOp`` of the
  graph; the function's ``bound_inputs`` in the object graph name the variable object, whose
  dtype and shape are counted.  TF1: the variable nodes reached (``VariableV2``,
  ``VarHandleOp``), with their own dtype and shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from neuroncli.format.weights import VARIABLE_OPS

CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
#: Calls nested deeper than this are assumed to use every input (a hostile library could nest
#: functions until Python's recursion limit; real models nest a handful).
MAX_CALL_DEPTH = 64


@dataclass(frozen=True)
class ReadVariable:
    """A variable the signature reads.

    key: what identifies it (``object:<id>`` for an object-graph variable, else
        ``node:<name>`` of its variable node), so two handles of one object count once.
    dtype: its DataType value.  shape: its declared ``TensorShapeProto``.
    """

    key: str
    dtype: int
    shape: Any


def _node_of(ref: str) -> str:
    """``^name``, ``name``, ``name:port`` or (in a function) ``name:out_arg:i`` -> ``name``."""
    return ref.lstrip("^").split(":")[0]


def _callee(node: Any, functions: Mapping[str, Any]) -> str | None:
    if node.op in CALL_OPS and "f" in node.attr:
        return node.attr["f"].func.name
    return node.op if node.op in functions else None


class _Library:
    """Which inputs each library function uses, computed once per function."""

    def __init__(self, library: Any) -> None:
        self.functions = {f.signature.name: f for f in library.function}
        self._used: dict[str, frozenset[int] | None] = {}
        self._depth = 0

    def used_args(self, name: str) -> frozenset[int] | None:
        """Indices of the inputs function ``name`` uses; None: assume all (unknown, or a
        recursive call still being worked out)."""
        if name in self._used:
            return self._used[name]
        function = self.functions.get(name)
        if function is None or self._depth >= MAX_CALL_DEPTH:
            return None
        self._used[name] = None
        self._depth += 1
        roots = [*function.ret.values(), *function.control_ret.values()]
        by_name = {node.name: node for node in function.node_def}
        try:
            _, reached_args = walk(by_name, roots, self)
        finally:
            self._depth -= 1
        positions = {arg.name: i for i, arg in enumerate(function.signature.input_arg)}
        used = frozenset(positions[a] for a in reached_args if a in positions)
        self._used[name] = used
        return used

    def followed_inputs(self, node: Any) -> Iterable[str]:
        """The inputs of ``node`` that its result depends on."""
        callee = _callee(node, self.functions)
        used = self.used_args(callee) if callee is not None else None
        if used is None:
            return node.input
        data = [ref for ref in node.input if not ref.startswith("^")]
        return [*(ref for i, ref in enumerate(data) if i in used),
                *(ref for ref in node.input if ref.startswith("^"))]


def walk(by_name: Mapping[str, Any], roots: Iterable[str],
         library: _Library) -> tuple[set[str], set[str]]:
    """Nodes reachable backwards from ``roots``, and the names reached that are not nodes
    (a function's arguments).  Iterative: graphs have tens of thousands of nodes."""
    reached: set[str] = set()
    others: set[str] = set()
    stack = [_node_of(ref) for ref in roots]
    while stack:
        name = stack.pop()
        if name in reached or name in others:
            continue
        node = by_name.get(name)
        if node is None:
            others.add(name)
            continue
        reached.add(name)
        stack.extend(_node_of(ref) for ref in library.followed_inputs(node))
    return reached, others


def _captured_objects(graph_def: Any, reached: set[str], library: _Library,
                      object_graph: Any) -> dict[str, int]:
    """Variable node name -> object-graph node id, from the reached calls' bound inputs."""
    objects: dict[str, int] = {}
    for node in graph_def.node:
        callee = _callee(node, library.functions) if node.name in reached else None
        if callee is None or callee not in object_graph.concrete_functions:
            continue
        bound = list(object_graph.concrete_functions[callee].bound_inputs)
        data = [ref for ref in node.input if not ref.startswith("^")]
        first = len(data) - len(bound)
        for i, node_id in enumerate(bound):
            if 0 <= first + i < len(data) and 0 <= node_id < len(object_graph.nodes):
                objects.setdefault(_node_of(data[first + i]), node_id)
    return objects


def read_variables(meta_graph: Any, signature: Any) -> list[ReadVariable]:
    """The variables ``signature`` (a SignatureDef of ``meta_graph``) reads, in a stable
    order, each once."""
    graph_def = meta_graph.graph_def
    library = _Library(graph_def.library)
    by_name = {node.name: node for node in graph_def.node}
    roots = [signature.outputs[key].name for key in sorted(signature.outputs)]
    reached, _ = walk(by_name, roots, library)
    object_graph = meta_graph.object_graph_def
    objects = _captured_objects(graph_def, reached, library, object_graph)
    found: dict[str, ReadVariable] = {}
    for name in sorted(reached):
        node = by_name[name]
        if node.op not in VARIABLE_OPS:
            continue
        obj = object_graph.nodes[objects[name]] if name in objects else None
        if obj is not None and obj.WhichOneof("kind") == "variable":
            key = f"object:{objects[name]}"
            found.setdefault(key, ReadVariable(key, obj.variable.dtype, obj.variable.shape))
        else:
            key = f"node:{name}"
            found[key] = ReadVariable(key, node.attr["dtype"].type, node.attr["shape"].shape)
    return list(found.values())
