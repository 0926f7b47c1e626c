"""Protobuf wire format, just enough to read and patch a compiled SavedModel without parsing it.

A compiled ResNet50's ``saved_model.pb`` is ~200 MB, nearly all of it two string attributes of
one NeuronOp (``graph_def`` and ``executable``).  Parsing and re-serializing it costs a second;
walking its field headers and copying untouched byte ranges costs a few milliseconds.  This
module does the walking: :func:`fields` lists the fields of a message inside a buffer (a
``memoryview`` over an mmap), and :func:`length_delimited` frames a new sub-message.

Map entries (``NodeDef.attr``) are ordinary length-delimited fields whose payload holds a key
(field 1) and a value (field 2); a parser keeps the *last* entry of a key.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


class Field(NamedTuple):
    """One field occurrence: its number, wire type, and byte ranges in the buffer.

    ``start`` is where the tag begins, ``value_start``/``end`` delimit the payload (for LEN
    fields the bytes after the length prefix; for others the encoded value).  A named tuple:
    a 200 MB model can hold millions of fields, and this is built once per field.
    """

    number: int
    wire_type: int
    start: int
    value_start: int
    end: int


def read_varint(buf: memoryview, pos: int, limit: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= limit or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def fields(buf: memoryview, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """The fields of the message occupying ``buf[start:end]``, in stored order."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        tag_start = pos
        tag = buf[pos]  # one-byte tags and lengths are the common case: no call
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = read_varint(buf, pos, end)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == LEN:
            if pos < end and buf[pos] < 0x80:
                length, value_start = buf[pos], pos + 1
            else:
                length, value_start = read_varint(buf, pos, end)
            pos = value_start + length
        elif wire_type == VARINT:
            value_start = pos
            _, pos = read_varint(buf, pos, end)
        elif wire_type == I64:
            value_start, pos = pos, pos + 8
        elif wire_type == I32:
            value_start, pos = pos, pos + 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if pos > end:
            raise WireError("field runs past the end of its message")
        yield Field(number, wire_type, tag_start, value_start, pos)


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, size: int) -> bytes:
    """The tag and length prefix of a LEN field of ``size`` payload bytes."""
    return encode_varint(number << 3 | LEN) + encode_varint(size)


def first(buf: memoryview, start: int, end: int, number: int) -> Field | None:
    for field in fields(buf, start, end):
        if field.number == number:
            return field
    return None


def string(buf: memoryview, field: Field | None) -> str:
    return "" if field is None else bytes(buf[field.value_start:field.end]).decode("utf-8")
