"""The simulated NeuronCore program: a small versioned container of our own.

Layout (all integers little-endian)::

    b"NCSIMEXE"                 8-byte magic
    u16 version                 FORMAT_VERSION
    u32 header length
    header                      UTF-8 JSON, keys sorted, no spaces (deterministic)
    payload                     the optimized segment GraphDef, serialized

The header carries what a loader needs before it touches the payload: batch size, pipeline
cores, parameter bytes (device memory), FLOPs, payload SHA-256 (tamper check) and the
input/output tensor names inside the payload.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field

MAGIC = b"NCSIMEXE"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<8sHI")


class ExecutableError(ValueError):
    """The bytes are not a valid executable of a version we read."""


@dataclass(frozen=True)
class ExecutableHeader:
    """Metadata of one compiled segment.

    batch_size: the compiled size of axis 0 of the inputs (0 when there is no batch axis).
    pipeline_cores: NeuronCores one copy of the program spans.
    parameter_bytes: bytes of constants (weights) in the program: its device memory.
    flops: estimated floating point operations of one execution.
    input_names / output_names: tensor names inside the payload GraphDef.
    payload_sha256: hex digest of the payload, checked on load.
    compiler: name and version of what produced it.
    """

    batch_size: int
    pipeline_cores: int
    parameter_bytes: int
    flops: int
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    payload_sha256: str = ""
    compiler: str = "neuroncli-sim"
    extra: dict = field(default_factory=dict)

    @property
    def device_bytes(self) -> int:
        """Device memory one copy needs: the weights plus a fixed 1 MiB of program/scratch."""
        return self.parameter_bytes + (1 << 20)


BATCH_NOTE = "dynamic_batch"  # header.extra key: how the compiler set the batch axes
BATCH_MODES = ("auto", "forced", "static")


@dataclass(frozen=True)
class BatchNote:
    """How a program's batch axes were set.

    mode: ``auto`` (the compiler proved rows independent), ``forced``
    (``--dynamic-batch-size``) or ``static`` (compiled batch only).
    reason: for ``static``, the first op (or input) that keeps the batch fixed.
    """

    mode: str
    reason: str = ""

    def text(self) -> str:
        """One line, as the compile report and ``neuron-inspect`` print it."""
        if self.mode == "static":
            return f"static batch: {self.reason}"
        return "dynamic batch (forced)" if self.mode == "forced" else "dynamic batch"


def batch_note(header: ExecutableHeader) -> BatchNote | None:
    """The header's batch note, or None (older programs, or a corrupt header)."""
    extra = header.extra if isinstance(header.extra, dict) else {}
    note = extra.get(BATCH_NOTE)
    if not isinstance(note, dict):
        return None
    mode, reason = note.get("mode"), note.get("reason", "")
    if mode not in BATCH_MODES or not isinstance(reason, str):
        return None
    return BatchNote(mode, reason)


def pack(header: ExecutableHeader, payload: bytes) -> bytes:
    """Serialize a program; the payload digest is computed here."""
    fields = asdict(header)
    fields["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    fields["input_names"] = list(header.input_names)
    fields["output_names"] = list(header.output_names)
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return _FIXED.pack(MAGIC, FORMAT_VERSION, len(blob)) + blob + payload


def read_header(data: bytes) -> tuple[ExecutableHeader, int]:
    """Parse the header; returns it and the payload offset.  Does not verify the payload."""
    if len(data) < _FIXED.size:
        raise ExecutableError("executable is truncated (no header)")
    magic, version, length = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise ExecutableError("executable has an unknown magic number (not a neuroncli program)")
    if version != FORMAT_VERSION:
        raise ExecutableError(f"executable format version {version} is not supported "
                              f"(this neuroncli reads version {FORMAT_VERSION}): recompile")
    end = _FIXED.size + length
    if end > len(data):
        raise ExecutableError("executable is truncated (header cut short)")
    try:
        fields = json.loads(bytes(data[_FIXED.size:end]))
        fields["input_names"] = tuple(fields["input_names"])
        fields["output_names"] = tuple(fields["output_names"])
        return ExecutableHeader(**fields), end
    except (ValueError, TypeError, KeyError, RecursionError) as exc:  # deeply nested JSON
        raise ExecutableError(f"executable header is corrupt: {exc}") from None


def unpack(data: bytes) -> tuple[ExecutableHeader, bytes]:
    """Parse and verify a program: the payload must match its recorded digest."""
    header, offset = read_header(data)
    payload = bytes(data[offset:])
    if hashlib.sha256(payload).hexdigest() != header.payload_sha256:
        raise ExecutableError("executable payload does not match its checksum (corrupt or "
                              "tampered): recompile the model")
    return header, payload
