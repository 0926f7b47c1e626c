"""``bench/soak.py`` in miniature: a few seconds of 4 threads over the 3 fixture models.

The short run keeps the real gate (resident memory after warm-up may grow less than 5%; it
moves by a fraction of a percent here); ``make soak`` runs the same for 10 minutes.  The gate
itself is checked on hand-made reports.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_short_soak_has_no_errors() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.1",
                           "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["errors"] == {"keras_dense": 0, "tf1_conv": 0, "strings_dense": 0, "total": 0}
    assert report["first_errors"] == []
    calls = report["calls"]
    assert min(calls["keras_dense"], calls["tf1_conv"], calls["strings_dense"]) > 0
    assert calls["total"] == calls["keras_dense"] + calls["tf1_conv"] + calls["strings_dense"]
    assert report["threads"] == 4 and report["seconds"] > 0
    assert report["rss_start"] > 0 and report["rss_end"] > 0 and report["passed"] is True
    assert report["max_growth_pct"] == 5.0 and report["growth_pct"] < 5.0


def test_soak_gate_fails_on_memory_growth_or_any_error() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from soak import SoakReport
    finally:
        sys.path.remove(str(ROOT / "bench"))

    def report(growth: float, errors: int) -> SoakReport:
        return SoakReport(1.0, 4, {"total": 10}, {"total": errors}, 100, 100, growth, 5.0)

    assert report(4.99, 0).passed and report(-3.0, 0).passed
    assert not report(5.0, 0).passed and not report(12.0, 0).passed
    assert not report(0.0, 1).passed


def test_soak_counts_wrong_outputs_as_errors() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import numpy as np
        from soak import same_outputs
    finally:
        sys.path.remove(str(ROOT / "bench"))
    want = {"y": np.ones(3, np.float32), "label": np.array([b"a"], dtype=object)}
    assert same_outputs({"y": np.ones(3, np.float32) + 1e-8, "label": want["label"]}, want) is None
    assert "max difference" in same_outputs({"y": np.zeros(3, np.float32),
                                             "label": want["label"]}, want)
    assert "values differ" in same_outputs({"y": want["y"],
                                            "label": np.array([b"b"], dtype=object)}, want)
    assert "output keys" in same_outputs({"y": want["y"]}, want)
