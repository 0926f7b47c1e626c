"""`make demo` (examples/demo.sh): every step runs, prints its command, and tells the story."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np

from neuroncli.runtime.reference import run_savedmodel
from tests.conftest import ROOT


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run([str(ROOT / "examples" / "demo.sh"), str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout
    commands = re.findall(r"^\$ (\S+)", text, flags=re.M)
    assert [Path(c).name for c in commands] == [
        "neuron-compile", "neuron-verify", "tf-neuron-auto-multicore", "neuron-place",
        "neuron-inspect", "neuron-run", "neuron-serve", "curl", "curl", "kill"]
    assert "Outputs match the original" in text and "FAIL" not in text
    assert "neuron_op_" in text and "OnNeuronRatio" in text
    cores = re.findall(r"^│\s+(\d)\s+│\s+\d+\s+│\s+(\d+)\s+│", text, flags=re.M)
    assert len(cores) == 2 and all(int(calls) > 0 for _, calls in cores), text
    assert '"state":"AVAILABLE"' in text
    assert re.search(r"^mean: shape \(1, 4\)", text, flags=re.M)
    assert text.rstrip().endswith("neuron-serve exited 0")
    # the served answer is the original model's (TensorFlow) on the request's row
    served = json.loads((out / "response.json").read_text())["outputs"]
    data = np.load(ROOT / "fixtures" / "tf1_conv.inputs.npz")
    expected = run_savedmodel(ROOT / "fixtures" / "tf1_conv", {k: data[k][:1] for k in data.files})
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(served[key]), value, rtol=1e-5, atol=1e-6)
