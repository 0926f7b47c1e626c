"""The small graph IR every pass works on: named nodes, tensor edges, deterministic order.

A :class:`Graph` is an ordered dict of :class:`Node` objects.  Data inputs are tensor
references ``"node:port"`` (always with the port, normalised on import); control inputs are
plain node names kept apart.  The consumer index is derived from the inputs and rebuilt
lazily after any mutation made through the graph's methods, so a rewrite cannot leave it
stale.  Attributes stay ``AttrValue`` protobuf messages: passes read the few they need and
the rest travels through untouched.

Determinism: iteration follows insertion order (which import takes from the GraphDef), and
:meth:`Graph.topological_order` breaks ties by that order too: no hashing of objects, no
``id()``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

Shape = tuple  # tuple[int | None, ...]; None for an unknown dimension


class GraphError(ValueError):
    """The graph is malformed: a dangling input, a duplicate name or a cycle."""


def split_tensor(ref: str) -> tuple[str, int]:
    """``"a/b:1"`` -> ``("a/b", 1)``; ``"a/b"`` -> ``("a/b", 0)``."""
    name, sep, port = ref.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return ref, 0


def tensor_ref(node: str, port: int = 0) -> str:
    return f"{node}:{port}"


@dataclass(eq=False)
class Node:
    """One operation.  ``output_dtypes``/``output_shapes`` are filled by shape inference."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    control_inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    output_dtypes: list[int] | None = None
    output_shapes: list[Shape | None] | None = None

    def input_nodes(self) -> Iterator[str]:
        """Producer names of data then control inputs (with repeats)."""
        for ref in self.inputs:
            yield split_tensor(ref)[0]
        yield from self.control_inputs

    def output_dtype(self, port: int) -> int | None:
        if self.output_dtypes is None or port >= len(self.output_dtypes):
            return None
        return self.output_dtypes[port]

    def output_shape(self, port: int) -> Shape | None:
        if self.output_shapes is None or port >= len(self.output_shapes):
            return None
        return self.output_shapes[port]


class Graph:
    """Nodes by name in a stable order, plus the GraphDef parts passes never look into."""

    def __init__(self, nodes: Iterable[Node] = (), *, library: Any = None,
                 versions: Any = None) -> None:
        self.nodes: dict[str, Node] = {}
        self.library = library    # FunctionDefLibrary message or None
        self.versions = versions  # VersionDef message or None
        self._consumers: dict[str, list[tuple[str, int]]] | None = None
        for node in nodes:
            self.add(node)

    # -- mutation -------------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise GraphError(f"duplicate node name {node.name!r}")
        self.nodes[node.name] = node
        self._consumers = None
        return node

    def remove(self, name: str) -> Node:
        self._consumers = None
        return self.nodes.pop(name)

    def set_inputs(self, node: Node, inputs: list[str],
                   control_inputs: list[str] | None = None) -> None:
        node.inputs = list(inputs)
        if control_inputs is not None:
            node.control_inputs = list(control_inputs)
        self._consumers = None

    def invalidate(self) -> None:
        """Call after editing ``node.inputs`` directly."""
        self._consumers = None

    # -- queries --------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def consumers(self, name: str) -> list[tuple[str, int]]:
        """``(consumer, input index)`` pairs; control edges have index ``-1``."""
        if self._consumers is None:
            self._consumers = self._index_consumers()
        return self._consumers.get(name, [])

    def _index_consumers(self) -> dict[str, list[tuple[str, int]]]:
        index: dict[str, list[tuple[str, int]]] = {}
        for node in self.nodes.values():
            for i, ref in enumerate(node.inputs):
                index.setdefault(split_tensor(ref)[0], []).append((node.name, i))
            for src in node.control_inputs:
                index.setdefault(src, []).append((node.name, -1))
        return index

    def tensor_dtype(self, ref: str) -> int | None:
        name, port = split_tensor(ref)
        node = self.nodes.get(name)
        return None if node is None else node.output_dtype(port)

    def tensor_shape(self, ref: str) -> Shape | None:
        name, port = split_tensor(ref)
        node = self.nodes.get(name)
        return None if node is None else node.output_shape(port)

    def topological_order(self) -> list[Node]:
        """Kahn's algorithm; ties keep insertion order.  Raises :class:`GraphError` on a cycle."""
        indegree = {name: 0 for name in self.nodes}
        for node in self.nodes.values():
            for src in node.input_nodes():
                if src in indegree:
                    indegree[node.name] += 1
        ready = deque(name for name, d in indegree.items() if d == 0)
        order: list[Node] = []
        while ready:
            name = ready.popleft()
            order.append(self.nodes[name])
            for consumer, _ in self.consumers(name):
                indegree[consumer] -= 1
                if indegree[consumer] == 0:
                    ready.append(consumer)
        if len(order) != len(self.nodes):
            stuck = sorted(n for n, d in indegree.items() if d > 0)[:5]
            raise GraphError(f"the graph has a cycle through {', '.join(stuck)}")
        return order

    def validate(self) -> None:
        """Check for dangling inputs and cycles (duplicates cannot be added)."""
        for node in self.nodes.values():
            for src in node.input_nodes():
                if src not in self.nodes:
                    raise GraphError(f"node {node.name!r} reads {src!r}, which does not exist")
        self.topological_order()

    def unique_name(self, base: str) -> str:
        if base not in self.nodes:
            return base
        i = 1
        while f"{base}_{i}" in self.nodes:
            i += 1
        return f"{base}_{i}"
