"""The mutation engine of the ``saved_model.pb`` fuzzer (:mod:`tests.fuzz_savedmodel`).

:func:`generate` turns ``(seed, index)`` and the seed models into one mutated ``saved_model.pb``
and the command to feed it to.  Nothing else goes in: case ``index`` is reproducible from the
seed, the index and the seed models alone (each case draws from its own ``random.Random``).

Mutations are byte-level (bit flips, truncation, random byte runs) and structure-aware: a walk
guided by TensorFlow's descriptors picks a message anywhere in the file (a meta graph, a
NodeDef, an attribute, a shape, the GraphDef inside a NeuronOp's ``graph_def``) and reorders,
deletes, duplicates or re-tags its fields, lies about a length, pads a varint, nests a message
thousands deep or repeats a field 100,000 times; it also grafts fields of other seeds
(``crossover``), corrupts the NeuronOp program's JSON header (``exe_header``) and chains two
or three small mutations (``combo``).  Every enclosing length prefix is re-encoded, so a
structural mutation damages exactly one thing.  Outputs stay under :data:`MAX_BYTES`.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass
from typing import Callable

from neuroncli.format import wire
from tests.fuzz_walk import (
    GRAPH_PATH, MAX_BYTES, META_PATH, NEURON_OP, Span, attr_entry, boundary, chain, describe,
    field_bytes, fields_of, node_spans, pick_node, random_span, repeat_budget, replace_span,
    root, splice, string_field, tag_ends, walk,
)

HUGE_COUNTS = (2, 10, 1000, 100_000)
# neuron-inspect's table costs ~1 ms a NeuronOp in rich (2,000 take 2.2 s, 7 s on a loaded
# machine; 7,000 take 8 s): a rendering cost of the CLI, not a hang of the library.  Distinct
# copies stop at 1,000 so that a busy machine cannot turn it into a 10 s "hang".
MAX_RENAMED = 1000
DEPTHS = (50, 99, 100, 101, 200, 1000, 5000, 20_000, 100_000)


@dataclass(frozen=True)
class Case:
    """One fuzz case: the mutated bytes and the command line they are fed to.

    ``args`` holds the options after MODEL_DIR; ``{out}`` stands for a scratch output path.
    """

    seed: int
    index: int
    seed_model: str
    mutation: str
    detail: str
    command: str
    args: tuple[str, ...]
    data: bytes


Mutation = Callable[[random.Random, bytes, dict], "tuple[str, bytes] | None"]


# --- byte-level mutations -----------------------------------------------------------------------

def bit_flip(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    if not data:
        return None
    out, where = bytearray(data), []
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        pos, bit = rng.randrange(len(out)), rng.randrange(8)
        out[pos] ^= 1 << bit
        where.append(f"{pos}.{bit}")
    return f"bits {','.join(where)}", bytes(out)


def truncate(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    if not data:
        return None
    if rng.random() < 0.5:
        pos = rng.randrange(len(data))
    else:  # near a field boundary: cuts a header or a length prefix in half
        span, fields = random_span(rng, data)
        pos = min(len(data) - 1, max(0, boundary(rng, span, fields) + rng.randint(-2, 2)))
    return f"at {pos} of {len(data)}", data[:pos]


def byte_run(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    kind = rng.choice(("overwrite", "insert", "delete"))
    size = rng.choice((1, 2, 4, 16, 64, 1024))
    fill = rng.choice(("random", "00", "ff", "80"))
    run = (rng.randbytes(size) if fill == "random" else bytes.fromhex(fill) * size)
    pos = rng.randrange(len(data) + 1)
    if kind == "overwrite":
        out = data[:pos] + run + data[pos + size:]
    elif kind == "insert":
        out = data[:pos] + run + data[pos:]
    else:
        out = data[:pos] + data[pos + size:]
    return f"{kind} {size} {fill} bytes at {pos}", out


# --- structure-aware mutations ------------------------------------------------------------------

def field_shuffle(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    span, fields = random_span(rng, data)
    if len(fields) < 2:
        return None
    order = list(range(len(fields)))
    how = rng.choice(("shuffle", "swap", "reverse", "rotate"))
    if how == "shuffle":
        rng.shuffle(order)
    elif how == "swap":
        i, j = rng.sample(order, 2)
        order[i], order[j] = order[j], order[i]
    elif how == "reverse":
        order.reverse()
    else:
        k = rng.randrange(1, len(order))
        order = order[k:] + order[:k]
    payload = b"".join(data[fields[i].start:fields[i].end] for i in order)
    return f"{how} {len(fields)} fields of {describe(span)}", replace_span(data, span, payload)


def field_delete(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    span, fields = random_span(rng, data)
    if not fields:
        return None
    gone = set(rng.sample(range(len(fields)), rng.choice((1, 1, 2, len(fields)))
                          if len(fields) > 1 else 1))
    payload = b"".join(data[f.start:f.end] for i, f in enumerate(fields) if i not in gone)
    numbers = ",".join(str(fields[i].number) for i in sorted(gone))
    return f"delete fields {numbers} of {describe(span)}", replace_span(data, span, payload)


def wrong_wire_type(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    span, fields = random_span(rng, data)
    if not fields:
        return None
    f = rng.choice(fields)
    new = rng.choice([t for t in range(8) if t != f.wire_type])
    tag_end, _ = tag_ends(data, f)
    out = splice(data, span.ancestors, f.start, tag_end, wire.encode_varint(f.number << 3 | new))
    return f"field {f.number} of {describe(span)}: wire type {f.wire_type} -> {new}", out


def _padded_varint(value: int, total: int) -> bytes:
    out = bytearray()
    for i in range(total):
        out.append((value & 0x7F) | (0x80 if i < total - 1 else 0))
        value >>= 7
    return bytes(out)


def overlong_varint(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    span, fields = random_span(rng, data)
    if not fields:
        return None
    f = rng.choice(fields)
    tag_end, len_end = tag_ends(data, f)
    choices = [("tag", f.start, tag_end)]
    if f.wire_type == wire.LEN:
        choices.append(("length", tag_end, len_end))
    if f.wire_type == wire.VARINT:
        choices.append(("value", f.value_start, f.end))
    what, a, b = rng.choice(choices)
    value, _ = wire.read_varint(memoryview(data), a, b)
    total = (b - a) + rng.choice((1, 2, 5, 8, 12))
    out = splice(data, span.ancestors, a, b, _padded_varint(value, total))
    return f"{what} varint of field {f.number} of {describe(span)} in {total} bytes", out


def huge_length(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    span, fields = random_span(rng, data)
    lens = [f for f in fields if f.wire_type == wire.LEN]
    if not lens:
        return None
    f = rng.choice(lens)
    size = f.end - f.value_start
    claim = rng.choice((size + 1, size + 1000, 2**31 - 1, 2**31, 2**32 + size, 2**40,
                        2**63 - 1, 2**64 - 1))
    tag_end, len_end = tag_ends(data, f)
    out = splice(data, span.ancestors, tag_end, len_end, wire.encode_varint(claim))
    return f"field {f.number} of {describe(span)} claims {claim} bytes (has {size})", out


def _renamed_copies(data: bytes, node: Span, number: int, count: int) -> bytes:
    """``count`` copies of a NodeDef (field ``number`` of its graph), each with its own name."""
    fields = fields_of(data, node.start, node.end) or []
    names = [f for f in fields if f.number == 1 and f.wire_type == wire.LEN]
    base = data[names[-1].value_start:names[-1].end] if names else b"n"
    body = b"".join(data[f.start:f.end] for f in fields if f not in names)
    return b"".join(field_bytes(number, wire.LEN, string_field(1, base + b"_%d" % k) + body)
                    for k in range(count))


def huge_repeated(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    node = pick_node(rng, data) if rng.random() < 0.4 else None
    if node is not None:  # a whole NodeDef, in its GraphDef / FunctionDef
        f, ancestors, what = node.ancestors[-1], node.ancestors[:-1], "NodeDef"
        if rng.random() < 0.5:  # distinct names: thousands of NeuronOps, not one repeated
            count = min(MAX_RENAMED, repeat_budget(f.end - f.start, rng.choice(HUGE_COUNTS)))
            out = splice(data, ancestors, f.end, f.end,
                         _renamed_copies(data, node, f.number, count))
            return f"NodeDef ({f.end - f.start} bytes) copied {count} times, renamed", out
    else:
        span, fields = random_span(rng, data)
        if not fields:
            return None
        f, ancestors, what = rng.choice(fields), span.ancestors, f"field of {describe(span)}"
    unit = data[f.start:f.end]
    count = repeat_budget(len(unit), rng.choice(HUGE_COUNTS))
    out = splice(data, ancestors, f.start, f.end, unit * (count + 1))
    return f"{what} {f.number} ({len(unit)} bytes) repeated {count + 1} times", out


def huge_input(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    node = pick_node(rng, data)
    if node is None:
        return None
    name = rng.choice((b"x", b"features:0", b"^ctl", b"a" * 1000, b"", b"\xff\xfe"))
    entry = string_field(3, name)
    count = repeat_budget(len(entry), rng.choice((1000, 100_000, 1_000_000)))
    out = splice(data, node.ancestors, node.end, node.end, entry * count)
    return f"{count} inputs {name[:20]!r} on NodeDef@{node.start}", out


_LIST_ATTRS = ("input_names", "output_names", "input_dtypes", "output_dtypes", "input_shapes",
               "output_shapes", "input_batch_axis", "output_batch_axis", "model_config")


def huge_list(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    """A NeuronOp list attribute with up to millions of entries (packed or not)."""
    node = pick_node(rng, data)
    if node is None:
        return None
    key = rng.choice(_LIST_ATTRS)
    count = rng.choice((1000, 100_000, 1_000_000, MAX_BYTES))  # the last: as many as fit
    if "names" in key:
        unit, number, packed = string_field(2, b"t:0"), 2, False
    elif "shapes" in key:
        dim = field_bytes(2, wire.LEN, field_bytes(1, wire.VARINT, wire.encode_varint(2**63 - 1)))
        unit, number, packed = field_bytes(7, wire.LEN, dim * rng.choice((1, 64))), 7, False
    else:
        value = rng.choice((1, 2**31, 2**64 - 1, 0))  # 2**64 - 1 is -1 as an int64
        unit, number, packed = wire.encode_varint(value), 3 if "dtypes" not in key else 6, True
    count = repeat_budget(len(unit), count)
    body = field_bytes(number, wire.LEN, unit * count) if packed else unit * count
    value = field_bytes(1, wire.LEN, body)
    out = splice(data, node.ancestors, node.end, node.end, attr_entry(key.encode(), value))
    return f"{key} with {count} entries on NodeDef@{node.start}", out


def _deep_attr(kind: str, depth: int) -> bytes:
    """A serialized AttrValue nested ``depth`` messages deep."""
    name, key = string_field(1, b"f"), string_field(1, b"a")
    if kind == "attr_func":
        return chain([(b"", 10), (name, 2), (key, 2)], depth)
    if kind == "attr_list_func":
        return chain([(b"", 1), (b"", 9), (name, 2), (key, 2)], depth)
    if kind == "tensor_variant":
        return field_bytes(8, wire.LEN, chain([(b"\x08\x15", 15), (string_field(1, b"v"), 3)],
                                              depth))
    # graph_def: a GraphDef whose NeuronOp's graph_def holds a GraphDef whose NeuronOp ...
    node = string_field(1, b"n") + string_field(2, NEURON_OP)
    return field_bytes(2, wire.LEN, chain([(b"", 1), (node, 5), (string_field(1, b"graph_def"),
                                                                 2), (b"", 2)], depth))


def deep_nesting(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    kind = rng.choice(("attr_func", "attr_list_func", "tensor_variant", "graph_def",
                       "structured_value", "groups", "unknown_len"))
    depth = rng.choice(DEPTHS)
    if kind in ("attr_func", "attr_list_func", "tensor_variant", "graph_def"):
        node = pick_node(rng, data)
        if node is None:
            return None
        key = b"graph_def" if kind == "graph_def" else rng.choice(
            (b"_fuzz", b"model_config", b"input_shapes", b"value"))
        entry = attr_entry(key, _deep_attr(kind, depth))
        return (f"{kind} {depth} deep as attr {key.decode()} of NodeDef@{node.start}",
                splice(data, node.ancestors, node.end, node.end, entry))
    if kind == "structured_value":  # MetaGraphDef.object_graph_def .. StructuredValue lists
        metas = walk(data, root(data), META_PATH)
        if not metas:
            return None
        meta = rng.choice(metas)
        function = field_bytes(3, wire.LEN, chain([(b"", 51), (b"", 1)], depth))
        entry = string_field(1, b"f") + field_bytes(2, wire.LEN, function)
        extra = field_bytes(7, wire.LEN, field_bytes(2, wire.LEN, entry))
        return (f"{kind} {depth} deep in MetaGraphDef@{meta.start}",
                splice(data, meta.ancestors, meta.end, meta.end, extra))
    span, fields = random_span(rng, data)
    if kind == "groups":
        nest = wire.encode_varint(999 << 3 | 3) * depth + wire.encode_varint(999 << 3 | 4) * depth
    else:
        nest = chain([(b"", 1234)], depth)
    at = boundary(rng, span, fields)
    return f"{kind} {depth} deep in {describe(span)} at {at}", splice(data, span.ancestors, at,
                                                                       at, nest)


def crossover(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    """A field of another (or the same) seed model inserted into a random message."""
    donor_name = rng.choice(sorted(seeds))
    donor = seeds[donor_name]
    node = pick_node(rng, donor) if rng.random() < 0.5 else None
    if node is not None:
        f = node.ancestors[-1]
    else:
        span, fields = random_span(rng, donor)
        if not fields:
            return None
        f = rng.choice(fields)
    graphs = walk(data, root(data), GRAPH_PATH)
    if graphs and node is not None:
        target = rng.choice(graphs)
        fields = fields_of(data, target.start, target.end) or []
    else:
        target, fields = random_span(rng, data)
    at = boundary(rng, target, fields)
    out = splice(data, target.ancestors, at, at, donor[f.start:f.end])
    return f"field {f.number} of {donor_name}@{f.start} into {describe(target)} at {at}", out


def _executable(data: bytes, node: Span) -> Span | None:
    """The bytes of a NeuronOp's ``executable`` attribute (AttrValue.s) as a span."""
    buf = memoryview(data)
    for f in fields_of(data, node.start, node.end) or []:
        if f.number != 5 or f.wire_type != wire.LEN:
            continue
        key = wire.first(buf, f.value_start, f.end, 1)
        if key is None or data[key.value_start:key.end] != b"executable":
            continue
        value = wire.first(buf, f.value_start, f.end, 2)
        s = wire.first(buf, value.value_start, value.end, 2) if value else None
        if s is not None and s.wire_type == wire.LEN:
            return Span(s.value_start, s.end, None, node.ancestors + (f, value, s))
    return None


_EXE = struct.Struct("<8sHI")  # magic, version, header length (neuroncli/format/executable.py)


def _odd_header(rng: random.Random, header: bytes) -> tuple[str, bytes]:
    kind = rng.choice(("deep_json", "wrong_type", "bad_utf8", "extra_key", "huge_number",
                       "not_an_object", "empty"))
    if kind == "deep_json":
        depth = rng.choice((100, 1000, 100_000, 1_000_000))
        return f"{kind} {depth}", b'{"batch_size":' + b"[" * depth + b"]" * depth + b"}"
    try:
        fields = json.loads(header)
    except ValueError:
        fields = {}
    if kind == "wrong_type" and isinstance(fields, dict) and fields:
        key = rng.choice(sorted(fields))
        fields[key] = rng.choice((None, "x", [], {}, 1e308, -1, 10**30, True, [[1]],
                                  float("inf"), float("nan")))
        return f"{kind} {key}={fields[key]!r}"[:80], json.dumps(fields).encode()
    if kind == "bad_utf8":
        return kind, b"\xff\xfe" + header
    if kind == "extra_key" and isinstance(fields, dict):
        fields["zzz"] = 1
        return kind, json.dumps(fields).encode()
    if kind == "huge_number":
        number = rng.choice((b"1" + b"0" * 5000, b"1e999", b"-1e999", b"NaN", b"Infinity"))
        return f"{kind} {number[:8]!r}", b'{"batch_size":' + number + b"}"
    if kind == "not_an_object":
        return kind, rng.choice((b"[]", b'"x"', b"null", b"1"))
    return "empty", b""


def exe_header(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    """The program container of a NeuronOp: its JSON header, version or length field."""
    ops = [span for span, is_op in node_spans(data) if is_op]
    span = _executable(data, rng.choice(ops)) if ops else None
    if span is None:
        return None
    old = data[span.start:span.end]
    magic, version, length = _EXE.unpack_from(old) if len(old) >= _EXE.size else (
        b"NCSIMEXE", 1, 0)
    header, payload = old[_EXE.size:_EXE.size + length], old[_EXE.size + length:]
    what = rng.choice(("header", "header", "version", "length"))
    if what == "header":
        detail, header = _odd_header(rng, header)
        length = len(header)
    elif what == "version":
        version = rng.choice((0, 2, 65535))
        detail = f"version {version}"
    else:
        length = rng.choice((length + 1, 2**32 - 1, 0))
        detail = f"header length {length}"
    new = _EXE.pack(magic, version, length) + header + payload
    return f"executable {detail}", replace_span(data, span, new)


def identity(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    return "unchanged", data


MUTATIONS: dict[str, tuple[Mutation, int]] = {
    "bit_flip": (bit_flip, 6), "truncate": (truncate, 4), "byte_run": (byte_run, 4),
    "field_shuffle": (field_shuffle, 4), "field_delete": (field_delete, 3),
    "wrong_wire_type": (wrong_wire_type, 3), "overlong_varint": (overlong_varint, 3),
    "huge_length": (huge_length, 3), "huge_repeated": (huge_repeated, 2),
    "huge_input": (huge_input, 1), "huge_list": (huge_list, 2),
    "deep_nesting": (deep_nesting, 4), "crossover": (crossover, 3),
    "exe_header": (exe_header, 2), "identity": (identity, 1),
}
_SMALL = ("bit_flip", "truncate", "byte_run", "field_shuffle", "field_delete",
          "wrong_wire_type", "overlong_varint", "huge_length", "crossover")


def combo(rng: random.Random, data: bytes, seeds: dict) -> tuple[str, bytes] | None:
    """Two or three small mutations in a row (the later ones see the earlier damage)."""
    steps = []
    for _ in range(rng.choice((2, 2, 3))):
        name = rng.choice(_SMALL)
        result = MUTATIONS[name][0](rng, data, seeds)
        if result is not None:
            steps.append(f"{name}({result[0]})")
            data = result[1]
    return (" + ".join(steps), data) if steps else None


MUTATIONS["combo"] = (combo, 4)


def choose_command(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """The command and its options (MODEL_DIR is first; ``{out}`` is the output path)."""
    command = rng.choice(("neuron-inspect", "tf-neuron-auto-multicore", "neuron-place"))
    json = ("--json",) if rng.random() < 0.3 else ()
    if command == "neuron-inspect":
        return command, rng.choice(((), ("--json",), ("-q",)))
    out = ("--new_model_dir", "{out}")
    if command == "tf-neuron-auto-multicore":
        return command, ("--num_cores", str(rng.choice((1, 2, 4, 16, 64)))) + out + json
    where = rng.choice((("--start-nc", "0", "--nc-count", "2"), ("--start-nc", "-1"),
                        ("--nc-count", "-1"), ("--multicore",), ("--start-nc", "3"),
                        ("--start-nc", "1", "--nc-count", "4")))
    return command, where + out + json


def generate(seed: int, index: int, seeds: dict[str, bytes]) -> Case:
    """Case ``index`` of the run with ``seed``: a function of its arguments alone."""
    rng = random.Random(f"neuroncli-fuzz:{seed}:{index}")
    seed_model = rng.choice(sorted(seeds))
    names = list(MUTATIONS)
    mutation = rng.choices(names, weights=[MUTATIONS[n][1] for n in names])[0]
    result = MUTATIONS[mutation][0](rng, seeds[seed_model], seeds)
    if result is None:  # nothing to mutate that way (no fields, no NodeDef): flip bits
        mutation, result = "bit_flip", bit_flip(rng, seeds[seed_model], seeds)
    command, args = choose_command(random.Random(f"neuroncli-fuzz-command:{seed}:{index}"))
    detail, data = result if result is not None else ("empty seed", b"")
    return Case(seed, index, seed_model, mutation, detail, command, args, data)
