"""The row every benchmark returns and the table they print (one format for ``make bench``).

A row is ``{"figure", "goal", "measured", "ratio", "passed", "load"}``: what was measured,
the goal in words, the figure with its unit, the ratio the goal is stated in (empty when the
goal is an absolute bound), whether the goal was met, and the machine's 1-, 5- and 15-minute
load averages when the row was made, so a reader can tell a figure taken on a busy machine.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

HEADERS = ("figure", "goal", "measured", "ratio", "passed", "load")


def load_average() -> str:
    """``os.getloadavg()`` as ``1m/5m/15m``; ``-`` where the system has none."""
    try:
        return "/".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "-"


def row(figure: str, goal: str, measured: str, ratio: float | None, passed: bool) -> dict:
    return {"figure": figure, "goal": goal, "measured": measured,
            "ratio": "" if ratio is None else f"{ratio:.3g}x", "passed": bool(passed),
            "load": load_average()}


def print_table(rows: Sequence[dict], headers: Sequence[str] = HEADERS) -> None:
    """Aligned columns; ``passed`` shows as ``pass`` or ``SHORT``."""
    def cell(r: dict, h: str) -> str:
        return ("pass" if r[h] else "SHORT") if h == "passed" else str(r.get(h, "-"))

    cells = [[cell(r, h) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


def report(rows: Sequence[dict], as_json: bool) -> int:
    """A benchmark script's output: the rows as JSON or as the table; exit 1 if one is short."""
    if as_json:
        print(json.dumps(list(rows), indent=2))
    else:
        print_table(rows)
    return 0 if all(r["passed"] for r in rows) else 1
