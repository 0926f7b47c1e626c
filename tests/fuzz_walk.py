"""Walking and editing protobuf bytes for the fuzzer (:mod:`tests.fuzz_mutations`).

A :class:`Span` is a message somewhere in a ``saved_model.pb``, typed by TensorFlow's
descriptors when known.  :func:`random_span` reaches a random one (a meta graph, a NodeDef, an
attribute, a shape, the GraphDef inside a NeuronOp's ``graph_def``); :func:`splice` replaces
bytes inside it and re-encodes every enclosing length prefix, so that an edit damages exactly
what it means to; :func:`chain` builds a message nested any depth deep in one pass.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from neuroncli import proto
from neuroncli.format import wire

MAX_BYTES = 24 << 20   # a mutant's size budget: big enough to hurt, small enough to be fast
NEURON_OP = b"NeuronOp"


@dataclass(frozen=True)
class Span:
    """A message inside the buffer: its payload range, its type (None if unknown) and the LEN
    fields enclosing it, outermost first (their length prefixes change when it does)."""

    start: int
    end: int
    desc: Any
    ancestors: tuple[wire.Field, ...]


# --- walking ----------------------------------------------------------------------------------

def fields_of(data: bytes, start: int, end: int) -> list[wire.Field] | None:
    try:
        return list(wire.fields(memoryview(data), start, end))
    except wire.WireError:
        return None


def _children(data: bytes, span: Span, fields: list[wire.Field]) -> list[Span]:
    kids = []
    for f in fields:
        if f.wire_type != wire.LEN or f.end - f.value_start < 2:
            continue
        fd = span.desc.fields_by_number.get(f.number) if span.desc is not None else None
        if fd is not None and fd.message_type is not None:
            kids.append(Span(f.value_start, f.end, fd.message_type, span.ancestors + (f,)))
        elif fields_of(data, f.value_start, f.end):
            # AttrValue.s of a NeuronOp is its GraphDef; other bytes parse as unknown messages
            guess = (proto.GraphDef.DESCRIPTOR if span.desc is not None
                     and span.desc.full_name == "tensorflow.AttrValue" and f.number == 2 else None)
            kids.append(Span(f.value_start, f.end, guess, span.ancestors + (f,)))
    return kids


def root(data: bytes) -> Span:
    return Span(0, len(data), proto.SavedModel.DESCRIPTOR, ())


def random_span(rng: random.Random, data: bytes, max_depth: int = 12) -> tuple[Span, list]:
    """A random message of the file (and its fields): a walk of random depth from the root."""
    span = root(data)
    fields = fields_of(data, span.start, span.end) or []
    for _ in range(rng.randint(0, max_depth)):
        kids = _children(data, span, fields)
        if not kids:
            break
        nxt = rng.choice(kids)
        nxt_fields = fields_of(data, nxt.start, nxt.end)
        if nxt_fields is None:
            break
        span, fields = nxt, nxt_fields
    return span, fields


def walk(data: bytes, span: Span, path: tuple[tuple[int, str], ...]) -> list[Span]:
    """Spans reached from ``span`` through ``path``: (field number, type name) steps."""
    if not path:
        return [span]
    (number, type_name), rest = path[0], path[1:]
    found = []
    for f in fields_of(data, span.start, span.end) or []:
        if f.number == number and f.wire_type == wire.LEN:
            desc = proto.SavedModel.DESCRIPTOR.file.pool.FindMessageTypeByName(type_name)
            found.extend(walk(data, Span(f.value_start, f.end, desc, span.ancestors + (f,)),
                               rest))
    return found


META_PATH = ((2, "tensorflow.MetaGraphDef"),)
GRAPH_PATH = META_PATH + ((2, "tensorflow.GraphDef"),)
_NODES = (GRAPH_PATH + ((1, "tensorflow.NodeDef"),),
          GRAPH_PATH + ((2, "tensorflow.FunctionDefLibrary"), (1, "tensorflow.FunctionDef"),
                    (3, "tensorflow.NodeDef")))


def node_spans(data: bytes) -> list[tuple[Span, bool]]:
    """Every NodeDef (top level and in library functions) and whether it is a NeuronOp."""
    out = []
    for path in _NODES:
        for span in walk(data, root(data), path):
            op = None
            try:
                op = wire.first(memoryview(data), span.start, span.end, 2)
            except wire.WireError:
                pass
            out.append((span, op is not None and data[op.value_start:op.end] == NEURON_OP))
    return out


def pick_node(rng: random.Random, data: bytes) -> Span | None:
    """A NodeDef, a NeuronOp three times in four when there is one."""
    nodes = node_spans(data)
    if not nodes:
        return None
    neuron = [s for s, is_op in nodes if is_op]
    return rng.choice(neuron) if neuron and rng.random() < 0.75 else rng.choice(nodes)[0]


# --- rewriting ----------------------------------------------------------------------------------

def splice(data: bytes, ancestors: tuple[wire.Field, ...], start: int, end: int,
           new: bytes) -> bytes:
    """Replace ``data[start:end]`` (inside the innermost ancestor) by ``new``, re-encoding the
    length prefix of every ancestor so that the rest of the file still parses."""
    out = bytearray(data[:start]) + new + data[end:]
    delta = len(new) - (end - start)
    for f in reversed(ancestors):
        _, len_pos = wire.read_varint(out, f.start, len(out))  # type: ignore[arg-type]
        length = wire.encode_varint(f.end - f.value_start + delta)
        out[len_pos:f.value_start] = length
        delta += len(length) - (f.value_start - len_pos)
    return bytes(out)


def replace_span(data: bytes, span: Span, payload: bytes) -> bytes:
    return splice(data, span.ancestors, span.start, span.end, payload)


def tag_ends(data: bytes, f: wire.Field) -> tuple[int, int]:
    """(end of the tag varint, end of the length varint) of a field."""
    _, pos = wire.read_varint(memoryview(data), f.start, f.end)
    return pos, f.value_start


def chain(cycle: list[tuple[bytes, int]], depth: int, inner: bytes = b"") -> bytes:
    """A message nested ``depth`` deep: level k is ``pre + field(number, level k+1)`` with
    ``(pre, number) = cycle[k % len(cycle)]``; built in one pass, outermost payload first."""
    heads, size = [], len(inner)
    for k in reversed(range(depth)):
        pre, number = cycle[k % len(cycle)]
        head = pre + wire.length_delimited(number, size)
        heads.append(head)
        size += len(head)
    heads.reverse()
    return b"".join(heads) + inner


def field_bytes(number: int, wire_type: int, payload: bytes) -> bytes:
    tag = wire.encode_varint(number << 3 | wire_type)
    return tag + (wire.encode_varint(len(payload)) if wire_type == wire.LEN else b"") + payload


def string_field(number: int, text: bytes) -> bytes:
    return field_bytes(number, wire.LEN, text)


def attr_entry(key: bytes, value: bytes) -> bytes:
    """A ``NodeDef.attr`` map entry (field 5) holding the serialized AttrValue ``value``."""
    return field_bytes(5, wire.LEN, string_field(1, key) + field_bytes(2, wire.LEN, value))


def repeat_budget(unit: int, wanted: int) -> int:
    return max(1, min(wanted, MAX_BYTES // max(unit, 1)))




def describe(span: Span) -> str:
    name = span.desc.name if span.desc is not None else "message"
    return f"{name}@{span.start}"


def boundary(rng: random.Random, span: Span, fields: list[wire.Field]) -> int:
    """A random field boundary of a message (its start, between two fields, or its end)."""
    return rng.choice([span.start] + [f.end for f in fields])
