"""A lazy, memory-mapped view of a SavedModel's NeuronOps, and byte-level attribute patches.

:func:`open_view` maps ``saved_model.pb`` and walks only field headers: per meta graph it
parses the small parts (tags, signatures: the MetaGraphDef minus its graph), counts graph
nodes, and gives each NeuronOp a *light* ``NodeDef`` (every attribute but ``graph_def`` and
``executable``, whose bytes stay in the map).  :func:`patched_chunks` produces the bytes of a
SavedModel whose chosen NodeDefs get new attributes, copying every untouched range verbatim:
what ``tf-neuron-auto-multicore`` and ``neuron-place`` write, in milliseconds instead of the
second a parse and re-serialization of a 200 MB model takes.
"""

from __future__ import annotations

import bisect
import mmap
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from neuroncli import proto
from neuroncli.format import wire
from neuroncli.format.neuron_op import NEURON_OP

_HEAVY = {b"graph_def", b"executable"}
# field numbers (tensorflow/core/protobuf/*.proto)
SM_META_GRAPHS, MG_GRAPH_DEF = 2, 2
GD_NODE, GD_LIBRARY, LIB_FUNCTION, FN_SIGNATURE, FN_NODE_DEF = 1, 2, 1, 1, 3
ND_OP, ND_ATTR = 2, 5


@dataclass
class NeuronOpView:
    """One NeuronOp: where it is, its light NodeDef, and its heavy attributes' byte ranges."""

    where: str
    start: int  # offset of the NodeDef payload in the file: its identity for patches
    node: Any   # NodeDef without graph_def/executable
    heavy: dict[str, memoryview] = field(default_factory=dict)


@dataclass
class MetaGraphView:
    meta: Any  # MetaGraphDef without graph_def
    graph_nodes: int
    neuron_ops: list[NeuronOpView]
    library_nodes: dict[str, int]  # function name -> node count, for functions with NeuronOps
    # op type -> count of the other nodes of those parts (what runs on the CPU)
    cpu_op_types: Counter = field(default_factory=Counter)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.meta.meta_info_def.tags)


@dataclass
class SavedModelView:
    path: str
    size: int
    buf: memoryview
    meta_graphs: list[MetaGraphView]
    _map: Any = None

    def close(self) -> None:
        """Unmap now if no slice of the buffer is still in use; else when the last one goes."""
        self.meta_graphs = []
        try:
            self.buf.release()
            if self._map is not None:
                self._map.close()
        except BufferError:
            pass


def _attr_key(buf: memoryview, entry: wire.Field) -> bytes:
    key = wire.first(buf, entry.value_start, entry.end, 1)
    return b"" if key is None else bytes(buf[key.value_start:key.end])


def _node(buf: memoryview, start: int, end: int, where: str,
          cpu_ops: Counter) -> NeuronOpView | None:
    """The NeuronOp at ``buf[start:end]``, or None after counting the node's op type."""
    op, attrs = None, []  # one pass: a node may hold 10^6 inputs
    for f in wire.fields(buf, start, end):
        # a field of another wire type is an unknown field to protobuf: neither op nor attr
        if f.wire_type == wire.LEN:
            if f.number == ND_OP:
                op = f  # protobuf keeps the last occurrence of a singular field
            elif f.number == ND_ATTR:
                attrs.append(f)
    op_type = b"" if op is None else bytes(buf[op.value_start:op.end])
    if op_type != NEURON_OP.encode():
        cpu_ops[op_type.decode(errors="replace")] += 1
        return None
    light, heavy, kept = bytearray(), {}, start  # copy the runs between heavy attributes
    for f in attrs:
        if (key := _attr_key(buf, f)) in _HEAVY:
            value = wire.first(buf, f.value_start, f.end, 2)
            payload = wire.first(buf, value.value_start, value.end, 2) if value else None
            heavy[key.decode()] = (buf[payload.value_start:payload.end] if payload
                                   else memoryview(b""))
            light += buf[kept:f.start]
            kept = f.end
    light += buf[kept:end]
    return NeuronOpView(where, start, proto.NodeDef.FromString(bytes(light)), heavy)


def _graph(buf: memoryview, start: int, end: int, ops: list, library: dict,
           cpu_ops: Counter) -> int:
    """Add a GraphDef's NeuronOps to ``ops`` (and ``library``), the op types of its other
    counted nodes to ``cpu_ops``; returns its node count."""
    count = 0
    for f in wire.fields(buf, start, end):
        if f.wire_type != wire.LEN:
            continue  # protobuf keeps such a field as unknown: neither a node nor a library
        if f.number == GD_NODE:
            count += 1
            if (view := _node(buf, f.value_start, f.end, "graph", cpu_ops)) is not None:
                ops.append(view)
        elif f.number == GD_LIBRARY:
            for fn in wire.fields(buf, f.value_start, f.end):
                if fn.number == LIB_FUNCTION and fn.wire_type == wire.LEN:
                    _function(buf, fn, ops, library, cpu_ops)
    return count


def _function(buf: memoryview, fn: wire.Field, ops: list, library: dict,
              cpu_ops: Counter) -> None:
    sig = wire.first(buf, fn.value_start, fn.end, FN_SIGNATURE)
    name = wire.string(buf, wire.first(buf, sig.value_start, sig.end, 1)) if sig else ""
    found, nodes, types = [], 0, Counter()
    for f in wire.fields(buf, fn.value_start, fn.end):
        if f.number == FN_NODE_DEF and f.wire_type == wire.LEN:
            nodes += 1
            if (view := _node(buf, f.value_start, f.end, f"function:{name}", types)) \
                    is not None:
                found.append(view)
    if found:  # a function without NeuronOps is an uncompiled copy: not counted
        library[name] = library.get(name, 0) + nodes
        ops.extend(found)
        cpu_ops.update(types)


def _check_unique(ops: list[NeuronOpView]) -> None:
    """Node names are unique in a graph or function (TensorFlow refuses to load it else);
    a NeuronOp repeated thousands of times is a corrupt file, not thousands of programs."""
    seen: set[tuple[str, str]] = set()
    for op in ops:
        key = (op.where, op.node.name)
        if key in seen:
            raise wire.WireError(f"NeuronOp {op.node.name!r} appears twice in {op.where}")
        seen.add(key)


def _check_tag_sets(metas: list[MetaGraphView]) -> None:
    """TensorFlow loads the first meta graph with a tag set and never sees the others: two
    with one tag set make a corrupt (ambiguous) SavedModel, not two models."""
    seen: set[frozenset[str]] = set()
    for meta in metas:
        tags = frozenset(meta.tags)
        if tags in seen:
            raise wire.WireError(f"two meta graphs with the tag set {sorted(tags)}")
        seen.add(tags)


def open_view(path: str) -> SavedModelView:
    """Map ``path/saved_model.pb``; raises :class:`wire.WireError` on malformed bytes."""
    pb = os.path.join(path, "saved_model.pb")
    with open(pb, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    buf = memoryview(mapped) if mapped is not None else memoryview(b"")
    metas = []
    for f in wire.fields(buf):
        if f.number != SM_META_GRAPHS or f.wire_type != wire.LEN:
            continue
        small, count, ops, library, cpu_ops = bytearray(), 0, [], {}, Counter()
        for g in wire.fields(buf, f.value_start, f.end):
            if g.number == MG_GRAPH_DEF and g.wire_type == wire.LEN:
                # a repeated singular message is merged by protobuf: one graph, in parts
                count += _graph(buf, g.value_start, g.end, ops, library, cpu_ops)
            else:
                small += buf[g.start:g.end]
        _check_unique(ops)
        metas.append(MetaGraphView(proto.MetaGraphDef.FromString(bytes(small)), count, ops,
                                   library, cpu_ops))
    _check_tag_sets(metas)
    return SavedModelView(path, size, buf, metas, mapped)


def _patched_node(buf: memoryview, start: int, end: int,
                  attrs: Mapping[str, Any]) -> list:
    new = {k.encode(): wire.length_delimited(2, v.ByteSize()) + v.SerializeToString()
           for k, v in attrs.items()}
    entries = {k: b"".join((wire.length_delimited(1, len(k)), k, value))
               for k, value in new.items()}
    chunks: list = []
    kept: list[tuple[bytes, Any]] = []
    placed, run = False, start  # other fields are copied as runs between attr entries
    for f in wire.fields(buf, start, end):
        if f.number != ND_ATTR or f.wire_type != wire.LEN:
            continue
        chunks.append(buf[run:f.start])
        run = f.end
        if not placed:
            chunks.append(kept)  # attribute entries go here, sorted by key
            placed = True
        key = _attr_key(buf, f)
        if key not in new:
            kept.append((key, buf[f.start:f.end]))
    chunks.append(buf[run:end])
    if not placed:
        chunks.append(kept)
    for key, entry in entries.items():
        kept.append((key, wire.length_delimited(ND_ATTR, len(entry)) + entry))
    kept.sort(key=lambda kv: kv[0])
    flat: list = []
    for chunk in chunks:
        flat.extend(e for _, e in chunk) if isinstance(chunk, list) else flat.append(chunk)
    return flat


def _rebuild(buf: memoryview, start: int, end: int, edits: Mapping[int, Mapping],
             starts: list[int]) -> list:
    """Chunks of the message ``buf[start:end]`` with the edited NodeDefs patched
    (``starts``: the edited offsets, sorted, so that finding them is not quadratic)."""
    if start in edits:
        return _patched_node(buf, start, end, edits[start])
    chunks: list = []
    for f in wire.fields(buf, start, end):
        first = bisect.bisect_left(starts, f.value_start)
        if f.wire_type != wire.LEN or first == len(starts) or starts[first] >= f.end:
            chunks.append(buf[f.start:f.end])
            continue
        body = _rebuild(buf, f.value_start, f.end, edits, starts)
        chunks.append(wire.length_delimited(f.number, sum(len(c) for c in body)))
        chunks.extend(body)
    return chunks


def patched_chunks(view: SavedModelView, edits: Mapping[int, Mapping[str, Any]]) -> list:
    """The bytes of the SavedModel with ``edits`` (NodeDef start -> {attr: AttrValue})."""
    return _rebuild(view.buf, 0, len(view.buf), edits, sorted(edits))
