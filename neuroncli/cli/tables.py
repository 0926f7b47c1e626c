"""Tables that more than one command prints: each command module imports them from here,
never from another command."""

from __future__ import annotations

import math
from typing import Any

from neuroncli.cli.common import stdout_console
from neuroncli.rendering import print_table


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3g}"


def render_verify_report(report: Any) -> None:
    """Print the comparison table of a :class:`~neuroncli.runtime.verify.VerifyReport`
    (``neuron-verify``, ``neuron-compile --verify``)."""
    from rich.markup import escape
    from rich.table import Table
    console = stdout_console()
    table = Table(title=escape(f"{report.compiled_dir} vs {report.original_dir} "
                               f"[{report.signature_key}], {report.runs} {report.inputs} "
                               "run(s)"))
    for column in ("output", "shape", "dtype", "max abs error", "max rel error",
                   "mismatches", "verdict"):
        table.add_column(column, justify="right" if "error" in column or
                         column == "mismatches" else "left")
    for item in report.outputs:
        verdict = "PASS" if item.passed else "FAIL"
        if item.note:
            verdict += f" ({item.note})"
        table.add_row(escape(item.key), str(item.shape), item.dtype,
                      _number(item.max_abs_error), _number(item.max_rel_error),
                      str(item.mismatches), escape(verdict))
    print_table(console, table)
    word = "match" if report.passed else "DO NOT match"
    console.print(f"Outputs {word} the original (rtol {report.rtol:g}, atol {report.atol:g}).")
