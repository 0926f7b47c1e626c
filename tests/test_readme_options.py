"""Every option of every command is in the README, with its default where ``--help`` shows
one, so the two cannot drift apart (the README's tables are the documentation of record)."""

from __future__ import annotations

import importlib
import re

import click
import pytest

from neuroncli.cli.main import SUBCOMMANDS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
WINDOW = 200  # characters after an option's mention in which its default must be stated


def _command(name: str) -> click.Command:
    module, attr = SUBCOMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module), attr)


def _shown_default(option: click.Option) -> object | None:
    """The default ``--help`` prints, or None."""
    if not option.show_default or option.is_flag or option.multiple:
        return None
    default = option.default
    return None if default is None or type(default).__name__ == "Sentinel" else default


def _texts(value: object) -> set[str]:
    texts = {str(value)}
    if isinstance(value, float):
        texts |= {f"{value:g}", repr(value)} | ({str(int(value))} if value.is_integer() else set())
    return texts


def _mentions(option: click.Option) -> list[int]:
    pattern = "|".join(re.escape(o) for o in option.opts + option.secondary_opts)
    return [m.end() for m in re.finditer(rf"(?:{pattern})(?![\w-])", README)]


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_option_is_documented_with_its_default(name: str) -> None:
    missing, no_default = [], []
    for option in _command(name).params:
        if not isinstance(option, click.Option) or option.name in ("help", "version"):
            continue
        ends = _mentions(option)
        if not ends:
            missing.append(option.opts[0])
            continue
        default = _shown_default(option)
        if default is not None and not any(t in README[end:end + WINDOW]
                                           for end in ends for t in _texts(default)):
            no_default.append(f"{option.opts[0]} (default {default})")
    assert not missing, f"neuron {name}: options missing from README.md: {missing}"
    assert not no_default, f"neuron {name}: README.md does not give the default of {no_default}"


def test_help_states_every_default() -> None:
    """An option with a default either shows it (``[default: ...]``) or its help says what
    the default is (e.g. ``--minimum_segment_size``: AWS's formula)."""
    silent = []
    for name in sorted(SUBCOMMANDS):
        for option in _command(name).params:
            if not isinstance(option, click.Option) or option.is_flag or option.count:
                continue
            default = option.default
            has_default = default is not None and type(default).__name__ != "Sentinel" \
                and default != ()
            help_text = (option.help or "").lower()
            if (has_default and not option.show_default) or option.name == "minimum_segment_size":
                if "default" not in help_text:
                    silent.append(f"neuron {name} {option.opts[0]}")
    assert not silent, f"--help does not say the default of {silent}"
