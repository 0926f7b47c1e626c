"""Compiler flags: ``NEURON_CC_FLAGS`` and ``--compiler_args``, parsed like a shell command line.

Both spellings ``--flag value`` and ``--flag=value`` are accepted.  Unknown flags are an error
listing the known ones: a typo must not silently compile something else.  Flags from the
command line / API win over the environment.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from neuroncli.errors import UserError
from neuroncli.format.instances import INSTANCE_TYPES
from neuroncli.format.placement import MAX_CORES

ENV = "NEURON_CC_FLAGS"
DEFAULT_EXTRACT_INSTANCE = "inf1.2xlarge"  # what AWS documents for a bare --extract-weights


@dataclass(frozen=True)
class CompilerFlags:
    """What the flags ask for.

    pipeline_cores: ``--neuroncore-pipeline-cores N``: cores one program spans (1..64).
    dynamic_batch: ``--dynamic-batch-size``: batch axis 0 on every NeuronOp input and output.
    workdir: ``--workdir DIR``: dump the shaped and fused graphs and each segment's files.
    extract_weights: ``--extract-weights [INSTANCE]``: the instance type weights are sized
        for (default inf1.2xlarge, as AWS documents), or None; with it weights stay out of
        the protobuf, in ``variables/``.
    must_compile: ``--must-compile``: a segment that fails to compile is an error.
    verbose: ``--verbose LEVEL``: compile log detail (0-3, or debug/info/warning/error).
    """

    pipeline_cores: int = 1
    dynamic_batch: bool = False
    workdir: str | None = None
    extract_weights: str | None = None
    must_compile: bool = False
    verbose: int = 0


_VALUED = {"--neuroncore-pipeline-cores", "--workdir", "--verbose"}
_SWITCHES = {"--dynamic-batch-size", "--must-compile"}
_OPTIONAL_VALUE = {"--extract-weights"}
_VERBOSE_WORDS = {"error": 0, "warning": 1, "info": 2, "debug": 3}


def _known() -> str:
    return ", ".join(sorted(_VALUED | _SWITCHES | _OPTIONAL_VALUE))


def _split(text: str, source: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UserError(f"{source} is malformed ({exc}): quote values like a shell "
                        "command line, e.g. --workdir './my dir'") from None


def _int(value: str, flag: str, source: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UserError(f"{source}: {flag} needs an integer, got {value!r}") from None
    if not low <= number <= high:
        raise UserError(f"{source}: {flag} must be between {low} and {high}, got {number}")
    return number


def parse_flags(args: Sequence[str], source: str,
                base: CompilerFlags | None = None) -> CompilerFlags:
    """Apply ``args`` on top of ``base`` (defaults if None)."""
    flags = base or CompilerFlags()
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, inline = arg.partition("=")
        value: str | None = inline if eq else None
        if flag in _VALUED and value is None:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise UserError(f"{source}: {flag} needs a value")
            value, i = args[i + 1], i + 1
        elif flag in _OPTIONAL_VALUE and value is None:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
        elif flag in _SWITCHES and eq:
            raise UserError(f"{source}: {flag} takes no value, got {arg!r}")
        elif flag not in _VALUED | _SWITCHES | _OPTIONAL_VALUE:
            raise UserError(f"{source}: unknown compiler flag {arg!r}; known flags: {_known()}")
        flags = _apply(flags, flag, value, source)
        i += 1
    return flags


def _apply(flags: CompilerFlags, flag: str, value: str | None, source: str) -> CompilerFlags:
    if flag == "--neuroncore-pipeline-cores":
        return replace(flags, pipeline_cores=_int(value or "", flag, source, 1, MAX_CORES))
    if flag == "--workdir":
        return replace(flags, workdir=value)
    if flag == "--verbose":
        level = _VERBOSE_WORDS.get((value or "").lower())
        return replace(flags, verbose=level if level is not None
                       else _int(value or "", flag, source, 0, 3))
    if flag == "--dynamic-batch-size":
        return replace(flags, dynamic_batch=True)
    if flag == "--must-compile":
        return replace(flags, must_compile=True)
    instance = (value or DEFAULT_EXTRACT_INSTANCE).lower()
    if instance not in INSTANCE_TYPES:
        raise UserError(f"{source}: --extract-weights names unknown instance type "
                        f"{instance!r}; known: {', '.join(INSTANCE_TYPES)}")
    return replace(flags, extract_weights=instance)


def resolve_flags(compiler_args: Iterable[str] | str | None = None,
                  environ: dict[str, str] | None = None) -> CompilerFlags:
    """``NEURON_CC_FLAGS`` first, then ``compiler_args`` (a list, or one shell-like string)."""
    env = os.environ if environ is None else environ
    flags = parse_flags(_split(env.get(ENV, ""), ENV), ENV)
    if compiler_args is None:
        return flags
    if isinstance(compiler_args, str):
        args = _split(compiler_args, "--compiler_args")
    else:
        args = [str(a) for a in compiler_args]
    return parse_flags(args, "compiler_args", flags)
