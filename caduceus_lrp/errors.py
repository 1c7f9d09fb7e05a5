"""User-facing errors: bad input from the user, with a message that names the file, line or field."""
from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input from the user: a file, a line or a field is wrong. The message names it.
    Commands print it on one line and exit with status 2 (`cli.cli_entry`)."""
