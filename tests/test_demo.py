"""`make demo` (examples/demo.sh): every step runs, prints its command, and tells the story."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from neuroncli.runtime.reference import run_savedmodel
from tests.conftest import ROOT
from tests.test_readme import _normalise, _pattern, _table_rule


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    # as `make demo` runs it: no COLUMNS (pytest sets one, and text lines wrap at it)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run([str(ROOT / "examples" / "demo.sh"), str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def _readme_tour() -> list[str]:
    """The output lines of the README's tour transcript (commands and comments left out)."""
    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("## A short tour"):]
    block = tour[tour.index("```console\n") + len("```console\n"):]
    block = block[:block.index("```")]
    return [line for line in block.splitlines()
            if line.strip() and not line.startswith(("$ ", "# ", "    "))]


def test_readme_tour_is_the_demo_transcript(demo: tuple[Path, str]) -> None:
    """Each output line the README's tour shows is printed by the demo, in order: exactly for
    the counts, ratios and rewrite summaries, with numbers as placeholders for the lines that
    vary from run to run (latencies, throughput, busy %, ports, values)."""
    _, text = demo
    exact = ("Number of operations", "OnNeuronRatio", "meta graph", "Outputs match")
    actual = [_normalise(line) for line in text.splitlines() if not _table_rule(line)]
    position = 0
    for line in (s for s in _readme_tour() if not _table_rule(s)):
        shown = _normalise(line)
        if not line.startswith(exact):
            shown = re.sub(r"\d+(\.\d+)?", "N", shown)
        while position < len(actual):
            got = actual[position] if line.startswith(exact) else \
                re.sub(r"\d+(\.\d+)?", "N", actual[position])
            position += 1
            if _pattern(shown).fullmatch(got):
                break
        else:
            raise AssertionError(f"README tour line not printed by the demo: {line!r}\n{text}")


def test_demo_tells_the_whole_story(demo: tuple[Path, str]) -> None:
    out, text = demo
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
