"""Rich consoles and tables that read well on a terminal and in a CI log alike.

On a terminal rich decides (its width, colour, wrapping).  Without one (a pipe, a file, a CI
log) nothing reads the output at a fixed width, and wrapping at rich's default 80 columns
breaks NeuronOp names and shapes across lines.  So without a terminal:

* the width is ``COLUMNS`` when set (text lines wrap there), otherwise unbounded: text lines
  are never wrapped;
* a table is as wide as its content and never narrower (:func:`print_table`): no cell is
  wrapped, so no NeuronOp name or shape is broken, whatever ``COLUMNS`` says (pytest-xdist
  workers, for one, set ``COLUMNS=80``);
* colour is off (rich: no terminal, or ``NO_COLOR``), and so are progress bars
  (:func:`neuroncli.cli.common.progress_callback`).

``--json`` output never goes through here.
"""

from __future__ import annotations

import os
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
    """Print ``table``; without a terminal, at least as wide as its content, so no cell is
    ever wrapped: a NeuronOp name, a shape or a verdict stays on its line (a table wider than
    ``COLUMNS`` goes past it rather than break a cell; rich would wrap or cut)."""
    if console.is_terminal:
        console.print(table)
        return
    width = console.width
    natural = console.measure(table, options=console.options.update_width(UNBOUNDED_WIDTH))
    console.width = max(width, natural.maximum)
    try:
        console.print(table)
    finally:
        console.width = width
