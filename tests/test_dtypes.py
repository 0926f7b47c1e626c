"""DataType facts come from ``proto.DataType`` and numpy (``neuroncli.proto.dtypes``)."""

from __future__ import annotations

import numpy as np
import pytest

from neuroncli.proto import dtypes

tf = pytest.importorskip("tensorflow")


def test_every_dtype_numpy_knows_agrees_with_tensorflow() -> None:
    """Name, numpy type and size of each DataType TensorFlow maps to a numpy type."""
    checked = 0
    for number in range(1, 30):
        try:
            tf_dtype = tf.dtypes.as_dtype(number)
            want = np.dtype(tf_dtype.as_numpy_dtype)
        except (TypeError, KeyError):  # no such DataType, or no numpy type (resource)
            continue
        assert dtypes.numpy_dtype(number) == want, tf_dtype.name
        if want != np.dtype(object):
            assert dtypes.dtype_size(number) == tf_dtype.size, tf_dtype.name
            assert dtypes.dtype_size(number + dtypes.REF_OFFSET) == tf_dtype.size
        checked += 1
    assert checked >= 20


def test_names_sizes_and_constants_users_see() -> None:
    assert [dtypes.dtype_name(n) for n in (1, 2, 7, 19, 101, 999)] == \
        ["float32", "float64", "string", "float16", "float_ref", "dtype(999)"]
    assert (dtypes.DT_FLOAT, dtypes.DT_STRING) == (1, 7)
    assert dtypes.dtype_size(8) == 8 and dtypes.dtype_size(18) == 16  # complex: were 4
    assert dtypes.dtype_size(14) == 2  # bfloat16: no numpy type
    assert dtypes.dtype_size(11) == 1 and dtypes.dtype_size(13) == 4  # qint8, qint32
    assert dtypes.dtype_size(20) == dtypes.UNKNOWN_ELEMENT_BYTES  # resource
