"""The one exception type for user errors, and the exit codes the commands document.

A :class:`UserError` is something the user can fix: its message names the thing that is wrong
(a path, a node, a value) and says what to do.  The CLI prints it as one line with no traceback
(``-v`` adds the traceback) and exits with its ``exit_code``.  Anything else is a bug: the CLI
prints it as one line too, naming the pipeline stage that failed (:func:`stage`), exit code 1.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

EXIT_OK = 0
EXIT_USER = 1        # bad input, failed verification
EXIT_USAGE = 2       # bad command line (click's own code)
EXIT_THRESHOLD = 3   # a --min-on-neuron-ratio style gate was not met
EXIT_INTERRUPTED = 130


class UserError(ValueError):
    """A problem with the user's input or environment, with the fix in the message."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USER) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(UserError):
    """A bad combination of arguments (exit code 2), raised by library code too."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_USAGE)


# --------------------------------------------------------------------------- unexpected errors
# Anything that is not a UserError is a bug or an environment problem (TensorFlow's own errors
# included).  Library code marks where it is (`with stage("shapes"):`); the CLI turns such an
# exception into one line naming that stage (:func:`unexpected_error_line`).  The exception
# itself is left untouched (same type, same traceback) for Python API callers.

#: The stages a command can fail in, in pipeline order.
STAGES = ("load", "freeze", "shapes", "partition", "backend", "write", "run")
_STAGE_ATTRIBUTE = "neuroncli_stage"
_MAX_MESSAGE = 300


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Mark an unexpected exception raised inside the block with stage ``name``.

    The innermost stage wins (an exception is marked once); UserErrors pass unmarked: they
    already say what is wrong and what to do.
    """
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, UserError) and getattr(exc, _STAGE_ATTRIBUTE, None) is None:
            try:
                setattr(exc, _STAGE_ATTRIBUTE, name)
            except AttributeError:  # an exception type with __slots__: left unmarked
                pass
        raise


def failed_stage(exc: BaseException) -> str | None:
    """The stage an unexpected exception was marked with, if any."""
    return getattr(exc, _STAGE_ATTRIBUTE, None)


def first_line(exc: BaseException) -> str:
    """The first informative line of an exception's message (TensorFlow often starts with a
    header such as ``Graph execution error:``, followed by the line that matters)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[0]
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} {lines[1]}"
    return line if len(line) <= _MAX_MESSAGE else line[:_MAX_MESSAGE - 3] + "..."


def unexpected_error_line(exc: BaseException) -> str:
    """The one line (without ``error: ``) the CLI prints for an exception it did not expect."""
    where = failed_stage(exc)
    what = f"{where} stage failed" if where else "internal error"
    return (f"{what}: {type(exc).__name__}: {first_line(exc)} (-v shows the traceback; if "
            "this model should work, it is a bug: please report it with the model)")
