"""The row every benchmark returns and the table they print (one format for ``make bench``).

A row is ``{"figure", "goal", "measured", "ratio", "passed"}``: what was measured, the goal in
words, the figure with its unit, the ratio the goal is stated in (empty when the goal is an
absolute bound), and whether the goal was met.
"""

from __future__ import annotations

import json
from typing import Sequence


def row(figure: str, goal: str, measured: str, ratio: float | None, passed: bool) -> dict:
    return {"figure": figure, "goal": goal, "measured": measured,
            "ratio": "" if ratio is None else f"{ratio:.3g}x", "passed": bool(passed)}


def print_table(rows: Sequence[dict], headers: Sequence[str] = ("figure", "goal", "measured",
                                                                 "ratio", "passed")) -> None:
    """Aligned columns; ``passed`` shows as ``pass`` or ``SHORT``."""
    def cell(r: dict, h: str) -> str:
        return ("pass" if r[h] else "SHORT") if h == "passed" else str(r[h])

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
