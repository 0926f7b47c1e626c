"""Rich consoles and tables that read well on a terminal and in a CI log alike.

On a terminal rich decides (its width, colour, wrapping).  Without one (a pipe, a file, a CI
log) nothing reads the output at a fixed width, and wrapping at rich's default 80 columns
breaks NeuronOp names and shapes across lines.  So without a terminal:

* the width is ``COLUMNS`` when set, otherwise unbounded: text lines are never wrapped and a
  table is as wide as its content;
* a table is never narrower than its widest unbreakable word (:func:`print_table`): with a
  narrow ``COLUMNS`` cells wrap at spaces, never inside a name or a shape;
* colour is off (rich: no terminal, or ``NO_COLOR``), and so are progress bars
  (:func:`neuroncli.cli.common.progress_callback`).

``--json`` output never goes through here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

#: "Unbounded" width without a terminal and without ``COLUMNS``: wider than any line we
#: print, small enough for rich to lay out quickly.  Tables are sized to their content
#: (rich never expands a table unless asked), so this is an upper bound, not a width.
UNBOUNDED_WIDTH = 10_000


def _columns() -> int | None:
    value = os.environ.get("COLUMNS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def make_console(*, stderr: bool = False, soft_wrap: bool = False) -> Any:
    """A rich console for results (stdout) or messages (stderr), sized as the module says."""
    from rich.console import Console
    console = Console(stderr=stderr, soft_wrap=soft_wrap, highlight=False)
    if not console.is_terminal:
        console.width = _columns() or UNBOUNDED_WIDTH
    return console


def print_table(console: Any, table: Any) -> None:
    """Print ``table``; without a terminal, at the console's width if every cell fits it
    without breaking a word, else at the narrowest width that breaks none: no NeuronOp name
    or shape is ever split across lines (cells wrap at spaces if they must)."""
    if console.is_terminal:
        console.print(table)
        return
    width = console.width
    console.width = max(width, _fit_columns(console, table, width))
    try:
        console.print(table)
    finally:
        console.width = width


@dataclass(frozen=True)
class _Range:
    """A column's content width: its longest word (minimum) and its longest line."""

    minimum: int
    maximum: int


def _column_range(console: Any, options: Any, column: Any) -> _Range:
    from rich.measure import Measurement
    sizes = [Measurement.get(console, options, cell) for cell in (column.header, *column.cells)]
    return _Range(max(m.minimum for m in sizes), max(m.maximum for m in sizes))


def _fit_columns(console: Any, table: Any, width: int) -> int:
    """Fix the columns' widths so the table fits ``width`` where it can; returns its width.

    rich narrows the widest columns first and will cut inside a word (its collapse ignores
    each column's minimum), so we narrow them ourselves, one character at a time from the
    widest column that still has room above its longest word."""
    options = console.options.update_width(UNBOUNDED_WIDTH)
    ranges = [_column_range(console, options, column) for column in table.columns]
    natural = console.measure(table, options=options).maximum
    chrome = natural - sum(r.maximum for r in ranges)  # borders and padding
    widths = [r.maximum for r in ranges]
    excess = natural - width
    while excess > 0:
        room = [w - r.minimum for w, r in zip(widths, ranges)]
        widest = max(range(len(widths)), key=lambda k: (room[k] > 0, widths[k]))
        if room[widest] <= 0:
            break
        widths[widest] -= 1
        excess -= 1
    for column, column_width in zip(table.columns, widths):
        column.width = column_width
    return sum(widths) + chrome
