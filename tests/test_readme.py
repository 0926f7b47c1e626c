"""The README is tested: its console blocks and Python snippets run in order, from a clean
working directory, and what each command prints is compared with what the README shows.

`sybil <https://sybil.readthedocs.io>`_ finds the examples and runs the Python ones (one shared
namespace, in document order); console blocks (```` ```console ````) are run here: each
``$ command`` (with ``\\`` continuations) runs in bash; the lines the README shows under it
must appear in its output (stdout and stderr together) in that order, after normalising
durations (``4.43 s`` -> ``N s``) and whitespace, with ``…`` matching anything.  A command
whose shown output has an ``error:`` line must fail, any other must succeed.  A block the
README cannot run here (a placeholder model, a long-running server) follows a visible note and
an HTML comment ``<!-- skip: next -->``.

The working directory is a fresh temporary one with ``fixtures/``, ``examples/`` and ``.venv``
linked in, so ``build/`` starts empty, as in a fresh clone.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.example import Example
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

from tests.conftest import ROOT

LINKED = ("fixtures", "examples", ".venv")
_DURATION = re.compile(r"\b\d+(\.\d+)? ?(s|ms)\b")


_RULE = re.compile(r"^[\s━─═┏┓┗┛┡┩┣┫┳┻╇╋┼┬┴├┤┌┐└┘╭╮╰╯╞╡╪]*$")


def _normalise(line: str) -> str:
    """Durations, whitespace and table borders (rich's box styles vary by terminal) out."""
    line = _DURATION.sub("N s", line).translate(str.maketrans("┃│║", "|||"))
    return " ".join(line.split())


def _table_rule(line: str) -> bool:
    return bool(_RULE.match(line))


def _pattern(shown: str) -> re.Pattern:
    parts = [re.escape(p) for p in _normalise(shown).split("…")]
    return re.compile(".*".join(parts))


def _commands(block: str) -> list[tuple[str, list[str]]]:
    """``[(command, shown output lines)]`` of a console block."""
    steps: list[tuple[str, list[str]]] = []
    lines = iter(block.splitlines())
    for line in lines:
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1] + " " + next(lines).strip()
            steps.append((command, []))
        elif steps and line.strip():
            steps[-1][1].append(line)
    return steps


def _check(command: str, shown: list[str], output: str, code: int) -> None:
    where = f"$ {command}\n--- output (exit {code}) ---\n{output}"
    expect_failure = any(s.startswith(("error:", "make: ***")) for s in shown)
    assert (code != 0) == expect_failure, where
    actual = [_normalise(line) for line in output.splitlines() if not _table_rule(line)]
    position = 0
    for line in (s for s in shown if not _table_rule(s)):
        pattern = _pattern(line)
        while position < len(actual) and not pattern.fullmatch(actual[position]):
            position += 1
        assert position < len(actual), f"README line not printed: {line!r}\n{where}"
        position += 1


class ConsoleParser(CodeBlockParser):
    language = "console"

    def evaluate(self, example: Example) -> None:
        # as from a shell: not inside `make test`'s make (a nested make would print
        # "make[1]: Entering directory" lines the README does not show)
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        env.update(NO_COLOR="1", COLUMNS="200")
        for command, shown in _commands(example.parsed):
            done = subprocess.run(["bash", "-c", command], capture_output=False,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env, timeout=600)
            _check(command, shown, done.stdout, done.returncode)


README = Sybil(parsers=[ConsoleParser(), PythonCodeBlockParser(), SkipParser()],
               patterns=["README.md"])


def test_the_readme_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEURON_CC_FLAGS", raising=False)
    document = README.parse(ROOT / "README.md")
    try:
        for example in document:
            try:
                example.evaluate()
            except Exception as exc:
                raise AssertionError(f"README.md line {example.line}: {exc}") from exc
    finally:  # the snippets' models hold simulated cores of this process's default runtime
        document.namespace.clear()
        gc.collect()
