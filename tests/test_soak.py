"""``bench/soak.py`` in miniature: a few seconds of 4 threads over the 3 fixture models.

The real soak (``make soak``, 10 minutes) also gates resident-memory growth; a run this short
says nothing about memory, so only the calls, the errors and the report's shape are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_short_soak_has_no_errors() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.1",
                           "--max-growth", "1000", "--json"],
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
