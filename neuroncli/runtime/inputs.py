"""Signature inputs: bind call arguments, convert and check them, make random ones, read .npz.

Used by the loaded model (every call), by ``neuron-run`` and by ``neuron-verify``.  Numeric
inputs are cast to the signature dtype when numpy's ``same_kind`` rule allows it (float64 ->
float32, int -> float); string inputs may be ``str``/``bytes`` arrays and become object arrays
of bytes, as TensorFlow returns them.  Random inputs are deterministic for a seed.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from neuroncli.errors import UserError
from neuroncli.proto.dtypes import DT_STRING, numpy_dtype



@dataclass(frozen=True)
class TensorSpec:
    """One signature input or output.

    key: the signature key.  name: the tensor in the graph.  dtype: TensorFlow DataType
    number.  shape: None for unknown rank, else a tuple with None for unknown dimensions.
    """

    key: str
    name: str
    dtype: int
    shape: tuple | None

    @property
    def dtype_name(self) -> str:
        from neuroncli.proto.dtypes import dtype_name
        return dtype_name(self.dtype)

    @property
    def is_string(self) -> bool:
        return self.dtype == DT_STRING

    @classmethod
    def from_tensor_info(cls, key: str, info: Any) -> TensorSpec:
        from neuroncli.format.neuron_op import shape_from_proto
        return cls(key, info.name, int(info.dtype), shape_from_proto(info.tensor_shape))


def _fmt(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "(unknown rank)"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def bind(specs: Mapping[str, TensorSpec], args: tuple, kwargs: Mapping[str, Any],
         signature_key: str) -> dict[str, Any]:
    """Call arguments -> ``{key: value}``: keywords, one dict, or one array."""
    if args:
        if len(args) > 1 or kwargs:
            raise UserError("pass the inputs as keywords (one per signature input), one dict, "
                            "or one array for a single-input signature")
        value = args[0]
        if isinstance(value, Mapping):
            kwargs = value
        elif len(specs) == 1:
            kwargs = {next(iter(specs)): value}
        else:
            raise UserError(f"signature {signature_key!r} has {len(specs)} inputs "
                            f"({', '.join(specs)}): pass them by keyword or as a dict")
    missing = sorted(set(specs) - set(kwargs))
    unknown = sorted(set(kwargs) - set(specs))
    if missing or unknown:
        parts = ([f"missing {missing}"] if missing else []) + \
                ([f"unknown {unknown}"] if unknown else [])
        raise UserError(f"inputs for signature {signature_key!r}: {'; '.join(parts)}; "
                        f"expected keys {sorted(specs)}")
    return {key: convert(kwargs[key], specs[key]) for key in specs}


def convert(value: Any, spec: TensorSpec) -> np.ndarray:
    """One input as a numpy array of the signature's dtype, shape-checked."""
    array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    if spec.dtype == DT_STRING:
        if array.dtype.kind not in "USO":
            raise UserError(f"input {spec.key!r} is a string tensor but got {array.dtype} "
                            "values")
        array = _to_bytes(array)
    else:
        target = numpy_dtype(spec.dtype)
        if array.dtype.kind in "USO" or not np.can_cast(array.dtype, target, "same_kind"):
            raise UserError(f"input {spec.key!r} is {target} but got {array.dtype} values: "
                            f"convert it with .astype({target.name})")
        array = np.ascontiguousarray(array, dtype=target)
    if spec.shape is not None:
        bad = len(spec.shape) != array.ndim or any(
            w is not None and w != g for w, g in zip(spec.shape, array.shape))
        if bad:
            raise UserError(f"input {spec.key!r} has shape {_fmt(array.shape)} but the "
                            f"signature expects {_fmt(spec.shape)}: reshape it")
    return array


def _to_bytes(array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, item in enumerate(array.reshape(-1)):
        if isinstance(item, str):
            item = item.encode("utf-8")
        elif isinstance(item, np.bytes_):
            item = bytes(item)
        if not isinstance(item, bytes):
            raise UserError(f"string input holds a {type(item).__name__}, not str/bytes")
        flat[i] = item
    return out


def random_value(spec: TensorSpec, shape: Sequence[int], rng: np.random.Generator) -> Any:
    """Deterministic random data: normal floats, integers in [0, 10), strings holding decimal
    numbers (so that models parsing their string inputs accept them)."""
    dtype = numpy_dtype(spec.dtype)
    if spec.dtype == DT_STRING:
        values = rng.standard_normal(tuple(shape))
        out = np.empty(values.shape, dtype=object)
        out.reshape(-1)[:] = [f"{v:.3f}".encode() for v in values.reshape(-1)]
        return out
    if dtype.kind == "f":
        return rng.standard_normal(tuple(shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=tuple(shape)).astype(bool)
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=tuple(shape)).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(tuple(shape)) + 0j).astype(dtype)
    raise UserError(f"input {spec.key!r}: cannot make random {dtype} values: pass --inputs")


def random_inputs(specs: Mapping[str, TensorSpec], shapes: Mapping[str, Sequence[int]],
                  seed: int) -> dict[str, Any]:
    """Random inputs for every key (keys in sorted order draw from one generator)."""
    rng = np.random.default_rng(seed)
    return {key: random_value(specs[key], shapes[key], rng) for key in sorted(specs)}


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an ``.npz`` of inputs (keys = signature input keys), without pickles."""
    path = os.fspath(path)
    if not path:
        raise UserError("the inputs file is an empty string: pass an .npz made with numpy.savez")
    if not os.path.lexists(path):
        raise UserError(f"{path}: no such file: pass an .npz made with numpy.savez")
    if not os.path.isfile(path):  # a directory, or a FIFO that would block the read
        raise UserError(f"{path}: not a regular file: pass an .npz made with numpy.savez")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc}): write it with "
                        "numpy.savez") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # np.load also reads .npy and pickles
        raise UserError(f"{path}: a single .npy array, not an .npz of named inputs: write "
                        "it with numpy.savez(path, <input key>=array)")
    try:
        with data:
            return {key: data[key] for key in sorted(data.files)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc}): write it with "
                        "numpy.savez") from None
