"""``neuroncli.runtime.verify`` comparisons in process: every field of a comparison, exactly,
and the signature checks (``make mutate`` sees these; end-to-end runs are in
test_verify_fixtures)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroncli.errors import UserError
from neuroncli.runtime.inputs import TensorSpec
from neuroncli.runtime.verify import (
    OutputComparison, VerifyReport, check_signatures, compare,
)

NAN, INF = float("nan"), float("inf")


def _fields(diff: object) -> tuple:
    """The diff as a tuple where NaN compares equal (written "nan")."""
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v
                 for v in (diff.max_abs, diff.max_rel, diff.mismatches, diff.nans, diff.note))


def _f(*values: complex) -> np.ndarray:
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize("compiled, original, rtol, atol, expected", [
    # shapes: every element of the larger side counts (at least one)
    (np.zeros((2, 3)), np.zeros(3), 0, 0, ("nan", "nan", 6, 0,
                                           "shape [2, 3] but the original's is [3]")),
    (np.zeros(2), np.zeros((2, 2)), 0, 0, ("nan", "nan", 4, 0,
                                           "shape [2] but the original's is [2, 2]")),
    (np.zeros((0,)), np.zeros((0, 2)), 0, 0, ("nan", "nan", 1, 0,
                                              "shape [0] but the original's is [0, 2]")),
    # a float on either side compares with the tolerance
    (_f(1.5, 2), np.array([1, 2]), 0, 0, (0.5, 0.5, 1, 0, "")),
    (np.array([1, 2]), _f(1.5, 2), 0, 0, (0.5, 1 / 3, 1, 0, "")),
    (np.array([b"a", b"b"], dtype=object), _f(1, 2), 0, 0, ("nan", "nan", 2, 0,
                                                             "string vs number")),
    (_f(1), np.array(["x"]), 0, 0, ("nan", "nan", 1, 0, "string vs number")),
    # exact kinds
    (np.array([1, 2, 3]), np.array([1, 2, 5]), 1, 1, (2.0, "nan", 1, 0, "exact")),
    (np.array([1, 2]), np.array([1, 2]), 0, 0, (0.0, "nan", 0, 0, "exact")),
    (np.array([], int), np.array([], int), 0, 0, (0.0, "nan", 0, 0, "exact")),
    (np.array([True, False]), np.array([1, 1], np.uint8), 0, 0, (1.0, "nan", 1, 0, "exact")),
    (np.array([1, 2]), np.array([b"1", b"3"], dtype=object), 0, 0, ("nan", "nan", 2, 0,
                                                                    "exact")),
    (np.array([b"a", b"b"], dtype=object), np.array([b"a", b"c"], dtype=object), 0, 0,
     ("nan", "nan", 1, 0, "exact")),
    # floats: NaN, inf, the tolerance's edges, relative error
    (_f(1, NAN, INF, 2), _f(1, NAN, INF, 2), 0, 0, (0.0, 0.0, 0, 1, "1 NaN matched")),
    (_f(NAN, 1), _f(1, 1), 0, 0, (0.0, 0.0, 1, 0, "")),
    (_f(INF), _f(1), 0, 0, (0.0, 0.0, 1, 0, "")),
    (_f(INF), _f(-INF), 0, 0, (0.0, 0.0, 1, 0, "")),
    (_f(1.5), _f(1.0), 0, 0.5, (0.5, 0.5, 0, 0, "")),
    (_f(5), _f(4), 0.5, 0, (1.0, 0.25, 0, 0, "")),
    (_f(4), _f(2), 0.5, 0, (2.0, 1.0, 1, 0, "")),
    (_f(0.75), _f(0.5), 0, 0, (0.25, 0.5, 1, 0, "")),
    (_f(1e-7), _f(0), 0, 1e-6, (1e-7, 0.0, 0, 0, "")),
    (_f(0.25), _f(0.25), 0, 0, (0.0, 0.0, 0, 0, "")),
    (np.zeros(0), np.zeros(0), 0, 0, (0.0, 0.0, 0, 0, "")),
    (np.array([1 + 1j]), np.array([1 + 2j]), 0, 0, (1.0, 1 / abs(1 + 2j), 1, 0, "")),
])
def test_compare_fields(compiled: np.ndarray, original: np.ndarray, rtol: float, atol: float,
                        expected: tuple) -> None:
    assert _fields(compare(compiled, original, rtol, atol)) == pytest.approx(expected)


def _output(key: str, passed: bool, abs_error: float, rel_error: float) -> OutputComparison:
    return OutputComparison(key, (2, 3), "float32", abs_error, rel_error, 0 if passed else 1,
                            0, passed)


def test_report_passes_only_when_every_output_passes_and_serializes_non_finite() -> None:
    outputs = (_output("a", True, 0.0, 0.0), _output("b", False, INF, NAN))
    report = VerifyReport("orig", "comp", "serving_default", 2, "random", 7, 1e-5, 1e-6,
                          outputs)
    assert not report.passed
    assert VerifyReport(*[getattr(report, f) for f in ("original_dir", "compiled_dir",
                          "signature_key", "runs", "inputs", "seed", "rtol", "atol")],
                        outputs[:1]).passed
    data = report.to_dict()
    assert data["passed"] is False
    assert [(o["key"], o["shape"], o["max_abs_error"], o["max_rel_error"])
            for o in data["outputs"]] == [("a", [2, 3], 0.0, 0.0), ("b", [2, 3], "inf", None)]
    assert (data["original_dir"], data["seed"], data["runs"]) == ("orig", 7, 2)


def _spec(dtype: int, shape: tuple | None) -> TensorSpec:
    return TensorSpec("x", "t:0", dtype, shape)


def test_signatures_must_correspond() -> None:
    same = {"x": _spec(1, (None, 3))}
    check_signatures({"x": _spec(1, (2, None))}, same, "input", "o", "c")
    check_signatures({"x": _spec(1, None)}, same, "input", "o", "c")
    with pytest.raises(UserError) as caught:
        check_signatures({"y": _spec(1, (2,))}, same, "output", "o", "c")
    assert str(caught.value) == (
        "the signatures do not correspond: o has outputs ['y'] but c has ['x']: verify a "
        "compiled model against the model it was compiled from")
    for original, described in (({"x": _spec(1, (2, 4))}, "float32 (2, 4)"),
                                ({"x": _spec(3, (2, 3))}, "int32 (2, 3)"),
                                ({"x": _spec(1, (2, 3, 1))}, "float32 (2, 3, 1)")):
        with pytest.raises(UserError) as caught:
            check_signatures(original, same, "input", "o", "c")
        assert str(caught.value) == (
            f"the signatures do not correspond: input 'x' is float32 (?, 3) in c but "
            f"{described} in o: verify a compiled model against the model it was compiled "
            "from")
    with pytest.raises(UserError, match="is float32 \\(unknown rank\\) in c but int32"):
        check_signatures({"x": _spec(3, (1,))}, {"x": _spec(1, None)}, "input", "o", "c")
