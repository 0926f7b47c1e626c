"""Placement contexts: where models loaded inside ``neuron_cores_context`` go.

A plain module-level stack, consulted by :func:`neuroncli.runtime.load` when it is given no
explicit placement.  Like AWS's contexts, it is **not thread-safe**: contexts entered from
several threads at once may place models unexpectedly.  Models keep their placement after
the context exits; only loading has to happen inside it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

_stack: list[tuple[int, int]] = []


def current() -> tuple[int, int] | None:
    """The innermost ``(start_nc, nc_count)``, or None outside any context."""
    return _stack[-1] if _stack else None


@contextlib.contextmanager
def placement_context(start_nc: int, nc_count: int) -> Iterator[None]:
    _stack.append((start_nc, nc_count))
    try:
        yield
    finally:
        _stack.pop()
