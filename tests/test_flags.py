"""NEURON_CC_FLAGS / compiler_args parsing: shell-like, strict, environment then arguments."""

from __future__ import annotations

import pytest

from neuroncli.compiler.flags import CompilerFlags, resolve_flags
from neuroncli.errors import UserError


def test_empty_environment_gives_defaults() -> None:
    assert resolve_flags(None, environ={}) == CompilerFlags()


@pytest.mark.parametrize("text, expected", [
    ("--neuroncore-pipeline-cores 4", CompilerFlags(pipeline_cores=4)),
    ("--neuroncore-pipeline-cores=2 --dynamic-batch-size",
     CompilerFlags(pipeline_cores=2, dynamic_batch=True)),
    ("--workdir './my dir' --must-compile", CompilerFlags(workdir="./my dir", must_compile=True)),
    ("--extract-weights", CompilerFlags(extract_weights="inf1.2xlarge")),  # AWS documents it
    ("--extract-weights inf2.xlarge", CompilerFlags(extract_weights="inf2.xlarge")),
    ("--verbose=debug", CompilerFlags(verbose=3)),
    ("--verbose 1", CompilerFlags(verbose=1)),
])
def test_environment_flags(text: str, expected: CompilerFlags) -> None:
    assert resolve_flags(None, environ={"NEURON_CC_FLAGS": text}) == expected


def test_arguments_override_environment() -> None:
    flags = resolve_flags(["--neuroncore-pipeline-cores", "2"],
                          environ={"NEURON_CC_FLAGS": "--neuroncore-pipeline-cores 4"})
    assert flags.pipeline_cores == 2
    assert resolve_flags("--must-compile", environ={}).must_compile


@pytest.mark.parametrize("text, message", [
    ("--frobnicate", "unknown compiler flag '--frobnicate'; known flags:"),
    ("--workdir 'unterminated", "NEURON_CC_FLAGS is malformed"),
    ("--neuroncore-pipeline-cores", "needs a value"),
    ("--neuroncore-pipeline-cores abc", "needs an integer, got 'abc'"),
    ("--neuroncore-pipeline-cores 0", "between 1 and 64"),
    ("--must-compile=yes", "takes no value"),
    ("--extract-weights inf9.huge", "unknown instance type 'inf9.huge'"),
])
def test_malformed_flags_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(UserError, match=None) as info:
        resolve_flags(None, environ={"NEURON_CC_FLAGS": text})
    assert message in str(info.value)
    assert "\n" not in str(info.value)
