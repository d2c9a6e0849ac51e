"""User-facing errors: the CLI prints these as one red line and exits 2 (no traceback)."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (path, file, config, template...), not a bug in sfteval.

    The message must name the problem and, where there is one, the file (and line) it comes from.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text
