"""Does a compiled model compute what its original computes?  ``verify`` answers with a report.

The original SavedModel runs in TensorFlow (:mod:`neuroncli.runtime.reference`), the compiled
one on the simulated runtime, on the same inputs: a given dict (an ``.npz``), or ``runs`` sets
of random inputs (seeds ``seed``, ``seed+1``, ...) shaped from the compiled model's signature
and NeuronOps.  Every output is compared:

* floating point: ``|compiled - original| <= atol + rtol * |original|`` element-wise (numpy's
  ``allclose`` rule); NaN equals NaN and is counted in the report, inf must match exactly;
* integers, booleans and strings: exactly.

The signatures must correspond (same input and output keys, dtypes, compatible shapes),
otherwise :class:`~neuroncli.errors.UserError`: comparing a model with another model's
compiled version is a mistake, not a mismatch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from neuroncli.errors import UserError, stage
from neuroncli.proto.dtypes import dtype_name
from neuroncli.runtime.inputs import TensorSpec

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6


@dataclass(frozen=True)
class OutputComparison:
    """One output over all runs.

    key: the signature output key.  shape / dtype: of the compiled model's output (last run).
    max_abs_error / max_rel_error: largest errors over elements where both are finite (relative
        to the original, where it is non-zero); NaN when not applicable (strings).
    mismatches: elements outside the tolerance (or unequal, for exact kinds), all runs.
    nan_count: NaNs found in the same place in both (they count as equal).
    passed: no mismatch and same shapes.  note: why not, or how it was compared.
    """

    key: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_error: float
    max_rel_error: float
    mismatches: int
    nan_count: int
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class VerifyReport:
    """The verdict of one verification.

    original_dir / compiled_dir: the two models.  signature_key: the signature compared.
    runs: input sets compared.  inputs: ``"random"`` or ``"given"``.  seed: first random seed.
    rtol / atol: the tolerance.  outputs: one comparison per output key, sorted.
    """

    original_dir: str
    compiled_dir: str
    signature_key: str
    runs: int
    inputs: str
    seed: int
    rtol: float
    atol: float
    outputs: tuple[OutputComparison, ...]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        for item in data["outputs"]:
            item["shape"] = list(item["shape"])
            for key in ("max_abs_error", "max_rel_error"):
                if not np.isfinite(item[key]):
                    item[key] = None if np.isnan(item[key]) else str(item[key])
        return data


@dataclass(frozen=True)
class _Diff:
    max_abs: float
    max_rel: float
    mismatches: int
    nans: int
    note: str = ""


def compare(compiled: np.ndarray, original: np.ndarray, rtol: float, atol: float) -> _Diff:
    """One output of one run."""
    a, b = np.asarray(compiled), np.asarray(original)
    if a.shape != b.shape:
        return _Diff(np.nan, np.nan, max(a.size, b.size, 1), 0,
                     f"shape {list(a.shape)} but the original's is {list(b.shape)}")
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        if a.dtype.kind in "USO" or b.dtype.kind in "USO":
            return _Diff(np.nan, np.nan, max(a.size, 1), 0, "string vs number")
        return _compare_float(a, b, rtol, atol)
    equal = a == b
    mismatches = int(equal.size - np.count_nonzero(equal))
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        return _Diff(float(diff.max(initial=0.0)), np.nan, mismatches, 0, "exact")
    return _Diff(np.nan, np.nan, mismatches, 0, "exact")


def _compare_float(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> _Diff:
    a64 = a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)
    b64 = b.astype(np.complex128 if b.dtype.kind == "c" else np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    finite = np.isfinite(a64) & np.isfinite(b64)
    diff = np.abs(np.subtract(a64, b64, where=finite, out=np.zeros(a64.shape, a64.dtype)))
    magnitude = np.abs(b64, where=finite, out=np.zeros(b64.shape))
    bad = finite & (diff > atol + rtol * magnitude)
    bad |= nan_a != nan_b
    with np.errstate(invalid="ignore"):  # inf must match inf of the same sign
        bad |= ~finite & ~(nan_a & nan_b) & (a64 != b64)
    nonzero = finite & (magnitude > 0)
    rel = np.divide(diff, magnitude, where=nonzero, out=np.zeros(diff.shape))
    nans = int(np.count_nonzero(nan_a & nan_b))
    return _Diff(float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                 int(np.count_nonzero(bad)), nans, f"{nans} NaN matched" if nans else "")


def _compatible(left: tuple | None, right: tuple | None) -> bool:
    if left is None or right is None:
        return True
    return len(left) == len(right) and all(
        x is None or y is None or x == y for x, y in zip(left, right))


def check_signatures(original: Mapping[str, Any], compiled: Mapping[str, TensorSpec],
                     kind: str, original_dir: str, compiled_dir: str) -> None:
    """Raise :class:`UserError` unless the two sides have the same keys, dtypes and shapes."""
    if set(original) != set(compiled):
        raise UserError(f"the signatures do not correspond: {original_dir} has {kind}s "
                        f"{sorted(original)} but {compiled_dir} has {sorted(compiled)}: "
                        "verify a compiled model against the model it was compiled from")
    for key in sorted(original):
        left, right = original[key], compiled[key]
        if int(left.dtype) != int(right.dtype) or not _compatible(left.shape, right.shape):
            raise UserError(
                f"the signatures do not correspond: {kind} {key!r} is {_describe(right)} in "
                f"{compiled_dir} but {_describe(left)} in {original_dir}: verify a compiled "
                "model against the model it was compiled from")


def _describe(spec: Any) -> str:
    shape = "(unknown rank)" if spec.shape is None else \
        "(" + ", ".join("?" if d is None else str(d) for d in spec.shape) + ")"
    return f"{dtype_name(spec.dtype)} {shape}"


def _check_roles(original_dir: str, compiled_dir: str) -> None:
    """Protobuf-only, before TensorFlow starts: the arguments swapped or repeated fail late
    and obscurely otherwise (TensorFlow cannot load a NeuronOp).  An original passed as the
    compiled model is refused by :func:`~neuroncli.runtime.model.load` itself."""
    from neuroncli.savedmodel.reader import count_neuron_ops
    if count_neuron_ops(original_dir):
        raise UserError(f"{original_dir}: is a compiled model (it has NeuronOps), not the "
                        "original: pass the model it was compiled from first, then the "
                        "compiled one")


def verify(original_dir: str | os.PathLike, compiled_dir: str | os.PathLike,
           inputs: Mapping[str, Any] | None = None, runs: int = 1,
           rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, seed: int = 0, *,
           batch: int | None = None, signature_def_key: str | None = None,
           tags: Iterable[str] | None = None, runtime: Any = None) -> VerifyReport:
    """Run both models on the same inputs and compare every output (see module doc)."""
    from neuroncli.runtime.model import load
    from neuroncli.runtime.reference import ReferenceModel
    if runs < 1:
        raise UserError(f"runs must be at least 1, got {runs}")
    if rtol < 0 or atol < 0:
        raise UserError(f"tolerances must be non-negative (rtol {rtol}, atol {atol})")
    original_dir, compiled_dir = os.fspath(original_dir), os.fspath(compiled_dir)
    _check_roles(original_dir, compiled_dir)
    with load(compiled_dir, signature_def_key, tags, runtime=runtime) as compiled, \
            ReferenceModel(original_dir, signature_def_key=signature_def_key,
                           tags=tags) as original:
        check_signatures(original.inputs, compiled.signature.inputs, "input",
                         original_dir, compiled_dir)
        check_signatures(original.outputs, compiled.signature.outputs, "output",
                         original_dir, compiled_dir)
        feeds = [dict(inputs)] if inputs is not None else [
            compiled.random_inputs(batch, seed + run) for run in range(runs)]
        diffs: dict[str, list[_Diff]] = {key: [] for key in compiled.signature.outputs}
        last: dict[str, np.ndarray] = {}
        for feed in feeds:
            with stage("run"):
                got, want = compiled(feed), original(feed)
            for key in diffs:
                diffs[key].append(compare(got[key], want[key], rtol, atol))
                last[key] = got[key]
    outputs = tuple(_summarize(key, diffs[key], last[key]) for key in sorted(diffs))
    return VerifyReport(original_dir, compiled_dir, compiled.signature.key, len(feeds),
                        "given" if inputs is not None else "random", seed, rtol, atol,
                        outputs)


def _summarize(key: str, diffs: list[_Diff], sample: np.ndarray) -> OutputComparison:
    def worst(values: list[float]) -> float:
        finite = [v for v in values if not np.isnan(v)]
        return max(finite) if finite else float("nan")

    mismatches = sum(d.mismatches for d in diffs)
    notes = sorted({d.note for d in diffs if d.note})
    dtype = "string" if sample.dtype == object else str(sample.dtype)
    return OutputComparison(
        key=key, shape=tuple(sample.shape), dtype=dtype,
        max_abs_error=worst([d.max_abs for d in diffs]),
        max_rel_error=worst([d.max_rel for d in diffs]), mismatches=mismatches,
        nan_count=sum(d.nans for d in diffs), passed=mismatches == 0,
        note="; ".join(notes))
