"""Output in CI logs (no terminal: the console scripts run under subprocess): tables keep
every cell (NeuronOp names, shapes) whole, COLUMNS wraps text lines, no colour, --json as is."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import neuroncli
from tests.conftest import FIXTURES, script

ANSI = re.compile(r"\x1b\[")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ci") / "tf1_conv_neuron"
    neuroncli.saved_model.compile(FIXTURES / "tf1_conv", out)
    return out


def _run(*args: str, columns: int | None = None, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR", "FORCE_COLOR")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    env.update(extra)
    result = subprocess.run([script(args[0]), *args[1:]], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return result


def _names_and_shapes(model: Path) -> list[str]:
    doc = json.loads(_run("neuron-inspect", str(model), "--json").stdout)
    ops = doc["meta_graphs"][0]["neuron_ops"]
    shapes = [f"{t['dtype']}({','.join('?' if d is None else str(d) for d in t['shape'])})"
              for op in ops for t in op["inputs"] + op["outputs"]]
    return [op["name"] for op in ops] + shapes


def _table_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line[:1] in "┏┃┡│└"]


@pytest.mark.parametrize("columns", [None, 40, 100, 400])
def test_inspect_never_breaks_names_or_shapes(compiled: Path, columns: int | None) -> None:
    words = _names_and_shapes(compiled)
    text = _run("neuron-inspect", str(compiled), columns=columns).stdout
    rows = [line for line in _table_lines(text) if line.startswith("│")]
    for word in words:
        assert any(word in line for line in rows), (word, text)
    assert not ANSI.search(text)


def test_compile_segment_table_keeps_names_whole(tmp_path: Path) -> None:
    for columns in (None, 50):
        out = tmp_path / f"c{columns}"
        text = _run("neuron-compile", str(FIXTURES / "tf1_conv"), str(out),
                    columns=columns).stdout
        name = _names_and_shapes(out)[0]
        assert any(name in line for line in _table_lines(text)), text
        assert not ANSI.search(text)


def test_columns_is_honoured(compiled: Path) -> None:
    """Without COLUMNS a table is as wide as its content and text lines are never wrapped;
    with COLUMNS text lines wrap there, and a table never shrinks below its content."""
    natural = _run("neuron-inspect", str(compiled)).stdout
    widest = max(len(line) for line in _table_lines(natural))
    signature = next(line for line in natural.splitlines() if "signature 'serving" in line)
    assert widest > 80 and len(signature) > 80  # not rich's default 80 columns
    wide = _run("neuron-inspect", str(compiled), columns=widest + 50).stdout
    assert wide == natural  # sized to content, not stretched
    narrow = _run("neuron-inspect", str(compiled), columns=60).stdout
    assert _table_lines(narrow) == _table_lines(natural)  # every cell whole
    text = [line for line in narrow.splitlines() if line and line[0] not in "┏┃┡│└"]
    assert all(len(line) <= 60 for line in text) and len(text) > len(
        [line for line in natural.splitlines() if line and line[0] not in "┏┃┡│└"])


def test_no_colour_even_when_forced_off_and_json_unchanged(compiled: Path) -> None:
    text = _run("neuron-inspect", str(compiled), NO_COLOR="1").stdout
    assert not ANSI.search(text)
    plain = _run("neuron-inspect", str(compiled), "--json").stdout
    assert _run("neuron-inspect", str(compiled), "--json", columns=30).stdout == plain
    json.loads(plain)


def test_init_op_signature_names_its_operation() -> None:
    """TF2's ``__saved_model_init_op`` signature maps to an operation (TensorInfo with a name
    and no dtype, DT_INVALID), not to a tensor: say so instead of "invalid?"."""
    text = _run("neuron-inspect", str(FIXTURES / "keras_dense")).stdout
    assert "invalid?" not in text
    assert ("signature '__saved_model_init_op': () -> (__saved_model_init_op: "
            "operation NoOp (no tensor: DT_INVALID))") in text
