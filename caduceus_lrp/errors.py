"""User-facing errors and the command-line wrapper that turns them into one line and exit status 2."""
from __future__ import annotations

import functools
import sys

__all__ = ["InputError", "cli_entry"]


class InputError(ValueError):
    """Bad input from the user: a file, a line or a field is wrong. The message names it."""


def cli_entry(main):
    """Decorate a command-line `main(argv=None)`: an InputError prints `error: <message>` on one
    line to stderr and exits with status 2, with no traceback."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except InputError as err:
            message = " ".join(str(err).split())
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
