"""Tensors in and out of the server: ``TensorProto`` for gRPC, JSON for REST.

gRPC requests carry typed ``TensorProto`` messages, so their dtype must be the signature's
(TF Serving checks it exactly too); outputs are written as ``tensor_content`` bytes (strings
as ``string_val``), which is what ``tf.make_ndarray`` reads fastest.  REST follows TF
Serving's JSON mapping: numbers become the signature's dtype, ``{"b64": ...}`` is binary,
string outputs are text unless their key ends in ``_bytes`` (then ``{"b64": ...}``), and
non-finite floats are ``NaN``/``Infinity`` as TF Serving writes them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

import numpy as np

from neuroncli.runtime import TensorSpec
from neuroncli.serving.status import INVALID_ARGUMENT, ServingError

DT_STRING = 7


def numpy_dtype(dtype: int) -> np.dtype:
    from neuroncli.runtime.inputs import numpy_dtype as lookup
    return lookup(dtype)


def dtype_name(dtype: int) -> str:
    from neuroncli.proto import dtype_name as name
    return name(dtype)


# -- gRPC ---------------------------------------------------------------------------------
def from_proto(key: str, proto: Any, spec: TensorSpec | None) -> np.ndarray:
    """A request's ``TensorProto`` as an array; its dtype must be the signature's."""
    if spec is not None and proto.dtype != spec.dtype:
        raise ServingError(INVALID_ARGUMENT, f"input {key!r} is {dtype_name(spec.dtype)} but "
                           f"the request sent {dtype_name(proto.dtype)}: send "
                           f"{dtype_name(spec.dtype)} values")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if proto.dtype != DT_STRING and proto.tensor_content:
        dtype = numpy_dtype(proto.dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise ServingError(INVALID_ARGUMENT, f"input {key!r}: tensor_content holds "
                               f"{len(proto.tensor_content)} bytes but shape {list(shape)} of "
                               f"{dtype.name} needs {count * dtype.itemsize}")
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
    from neuroncli.lazy_tf import import_tensorflow
    try:
        return import_tensorflow().make_ndarray(proto)
    except (ValueError, TypeError) as exc:
        raise ServingError(INVALID_ARGUMENT, f"input {key!r}: not a valid TensorProto "
                           f"({exc})") from None


def to_proto(array: np.ndarray, dtype: int, out: Any) -> None:
    """Fill ``out`` (a ``TensorProto``) with ``array`` as DataType ``dtype``."""
    out.dtype = dtype
    for size in array.shape:
        out.tensor_shape.dim.add().size = int(size)
    if dtype == DT_STRING:
        out.string_val.extend(item if isinstance(item, bytes) else str(item).encode()
                              for item in array.reshape(-1))
    else:
        out.tensor_content = np.ascontiguousarray(array, dtype=numpy_dtype(dtype)).tobytes()


# -- REST ---------------------------------------------------------------------------------
def from_json(key: str, value: Any, spec: TensorSpec) -> np.ndarray:
    """A JSON value (nested lists, numbers, strings, ``{"b64": ...}``) as an array."""
    if spec.dtype == DT_STRING:
        decoded = _decode_strings(key, value)
        array = np.empty(np.shape(decoded) if isinstance(decoded, list) else (), dtype=object)
        try:
            array[...] = decoded
        except ValueError:
            raise ServingError(INVALID_ARGUMENT, f"input {key!r}: the lists are ragged: "
                               "every row needs the same length") from None
        return array
    if _has_b64(value):
        raise ServingError(INVALID_ARGUMENT, f"input {key!r} is {dtype_name(spec.dtype)}: "
                           '{"b64": ...} is only for string inputs')
    try:
        array = np.asarray(value)
    except ValueError:
        array = None
    if array is None or array.dtype == object:
        raise ServingError(INVALID_ARGUMENT, f"input {key!r}: the lists are ragged or mix "
                           "types: every row needs the same length and numbers only")
    if array.dtype.kind == "f" and numpy_dtype(spec.dtype).kind in "iub":
        raise ServingError(INVALID_ARGUMENT, f"input {key!r} is {dtype_name(spec.dtype)} but "
                           "got floating-point numbers: send integers")
    target = numpy_dtype(spec.dtype)
    if np.can_cast(array.dtype, target, "same_kind"):
        return array.astype(target, copy=False)
    return array  # the model's own check names the mismatch, as the CLI does


def _decode_strings(key: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_strings(key, item) for item in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise ServingError(INVALID_ARGUMENT, f"input {key!r}: a binary value is "
                               '{"b64": "<base64 text>"} and nothing else')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise ServingError(INVALID_ARGUMENT, f"input {key!r}: {value['b64'][:40]!r} is "
                               "not valid base64") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ServingError(INVALID_ARGUMENT, f"input {key!r} is a string tensor but got "
                       f"{type(value).__name__} values: send strings or {{\"b64\": ...}}")


def _has_b64(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(_has_b64(v) for v in value[:1])


def to_json(key: str, array: np.ndarray) -> Any:
    """An output array as JSON-ready lists (binary strings as ``{"b64": ...}``)."""
    if array.dtype == object or array.dtype.kind == "S":
        binary = key.endswith("_bytes")
        flat = [_string_out(item, binary) for item in array.reshape(-1)]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


def _string_out(item: Any, binary: bool) -> Any:
    data = item if isinstance(item, bytes) else str(item).encode()
    if binary:
        return {"b64": base64.b64encode(data).decode("ascii")}
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # TF Serving sends such strings base64-encoded too
        return {"b64": base64.b64encode(data).decode("ascii")}


def rows(outputs: Mapping[str, np.ndarray]) -> list[Any]:
    """Row format (``predictions``): one entry per row, a dict when there are several
    outputs.  Every output needs the same number of rows, as TF Serving requires."""
    counts = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
    if len(set(counts.values())) != 1 or None in counts.values():
        raise ServingError(INVALID_ARGUMENT, f"the outputs have different batch sizes "
                           f"{counts}: ask for the columnar format (\"inputs\") instead of "
                           "\"instances\"")
    columns = {k: to_json(k, v) for k, v in outputs.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    count = next(iter(counts.values()))
    return [{k: columns[k][i] for k in columns} for i in range(count)]
