"""TensorFlow ``DataType`` facts, derived from ``proto.DataType`` and numpy: never retyped.

A ``DataType`` number's name comes from the enum in TensorFlow's own descriptors
(``DT_FLOAT`` -> ``float32``), and its numpy type and element size from numpy's type of the
same name.  Only what numpy has no name for is stated here, with its reason.  No TensorFlow,
except :func:`numpy_dtype` for the types numpy lacks (``bfloat16``, quantized types), where
TensorFlow's own table is the source.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from neuroncli import proto

#: TensorFlow's reference dtypes are the base dtype plus this (``DT_FLOAT_REF`` = 101).
REF_OFFSET = 100
#: TensorFlow names numpy does not use: its ``float``/``double``/``half`` are numpy's
#: ``float32``/``float64``/``float16``; a string tensor holds Python ``bytes`` objects.
_NUMPY_NAMES = {"float": "float32", "double": "float64", "half": "float16", "string": "object"}
#: Element sizes numpy cannot give: bfloat16 is 2 bytes and has no numpy type.
_SIZES_WITHOUT_NUMPY = {"bfloat16": 2}
#: Bytes counted for an element of a type of unknown size (resource, variant): a word.
UNKNOWN_ELEMENT_BYTES = 4


def dtype_enum(name: str) -> int:
    """``"DT_STRING"`` -> its number, from the enum."""
    return proto.DataType.values_by_name[name].number


def _short(dtype: int) -> str | None:
    """``DT_FLOAT`` -> ``float``; ``DT_FLOAT_REF`` -> ``float_ref``; None if unknown."""
    value = proto.DataType.values_by_number.get(int(dtype))
    return None if value is None else value.name.removeprefix("DT_").lower()


@lru_cache(maxsize=None)
def dtype_name(dtype: int) -> str:
    """``DT_FLOAT`` -> ``float32``-style short names, for reports (``dtype(N)`` if unknown)."""
    short = _short(dtype)
    if short is None:
        return f"dtype({dtype})"
    return short if short == "string" else _NUMPY_NAMES.get(short, short)


@lru_cache(maxsize=None)
def _numpy_or_none(dtype: int) -> np.dtype | None:
    """numpy's type of the same name as the base (non-reference) dtype, None if it has none."""
    short = _short(int(dtype) % REF_OFFSET)
    if short is None:
        return None
    try:
        return np.dtype(_NUMPY_NAMES.get(short, short))
    except TypeError:
        return None


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype of a DataType number (TensorFlow's table for the types numpy lacks)."""
    found = _numpy_or_none(int(dtype))
    if found is not None:
        return found
    from neuroncli.lazy_tf import import_tensorflow
    return np.dtype(import_tensorflow().dtypes.as_dtype(int(dtype)).as_numpy_dtype)


def dtype_size(dtype: int) -> int:
    """Bytes per element of a DataType value (:data:`UNKNOWN_ELEMENT_BYTES` when unknown)."""
    found = _numpy_or_none(int(dtype))
    if found is not None and found != np.dtype(object):
        return found.itemsize
    short = _short(int(dtype) % REF_OFFSET) or ""
    if short.startswith("q"):  # quantized qint8, quint16, ...: the integer they hold
        return np.dtype(short[1:]).itemsize
    return _SIZES_WITHOUT_NUMPY.get(short, UNKNOWN_ELEMENT_BYTES)


DT_FLOAT = dtype_enum("DT_FLOAT")
DT_STRING = dtype_enum("DT_STRING")
