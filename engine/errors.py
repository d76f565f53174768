"""braggtile's errors and the one mapping from exceptions to exit statuses.

:class:`UserInputError` is the base of every error caused by what the user asked for (a bad
flag value, an unreadable input file, a store that holds another job); the command line
exits with status 2 and a one-line message for any of them. Every subcommand maps
exceptions through :func:`exit_status` (and, later, the HTTP service through the same
table). The errors are picklable, so one raised on a Dask worker reaches the client intact.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class UserInputError(Exception):
    """Base of the errors caused by the user's input; the message says what to change."""


class InputError(UserInputError, ValueError):
    """An experiment parameter or input file is invalid; the message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.detail = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self):
        return (type(self), (self.field, self.detail))


#: Exception class -> exit status, most specific first. Anything else is a bug: traceback.
EXIT_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (UserInputError, EXIT_BAD_INPUT),
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (OSError, EXIT_FAILED),
)


def exit_status(exc: BaseException) -> int | None:
    """The exit status for ``exc``, or None if it is not an expected error (a bug)."""
    for cls, status in EXIT_STATUS:
        if isinstance(exc, cls):
            return status
    return None


def run_command(prog: str, func: Callable[[], int]) -> int:
    """Run ``func`` and turn an expected error into one line on stderr and its exit status."""
    try:
        return func()
    except BaseException as exc:
        status = exit_status(exc)
        if status is None:
            raise
        if isinstance(exc, KeyboardInterrupt):
            print(f"{prog}: interrupted", file=sys.stderr)
        else:
            print(f"{prog}: error: {exc}", file=sys.stderr)
        return status
