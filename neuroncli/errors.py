"""The one exception type for user errors, and the exit codes the commands document.

A :class:`UserError` is something the user can fix: its message names the thing that is wrong
(a path, a node, a value) and says what to do.  The CLI prints it as one line with no traceback
(``-v`` adds the traceback) and exits with its ``exit_code``.  Anything else is a bug.
"""

from __future__ import annotations

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
