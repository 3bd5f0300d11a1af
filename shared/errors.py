"""Errors that name what is wrong with the user's input.

Every reader raises `InputError` with the file, the line or entry, and the field,
so a CLI prints one clear line and an API answers 4xx instead of a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from a user: a file, a request field or an option."""

    def __init__(self, message: str, *, source: str | None = None, where: str | None = None, field: str | None = None):
        self.message = message
        self.source = source
        self.where = where
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        place = ", ".join(
            part
            for part in (
                self.source,
                self.where,
                f"field {self.field!r}" if self.field else None,
            )
            if part
        )
        return f"{place}: {self.message}" if place else self.message


class NotFoundError(LookupError):
    """A run, artifact or file that does not exist."""


class ConflictError(RuntimeError):
    """The request is valid but the run is not in a state that allows it (e.g. stage not finished)."""


class MissingInputError(InputError):
    """A required input (e.g. ground truth) has not been given yet: HTTP 422."""


class GoneError(LookupError):
    """An output the record says exists is no longer on disk (HTTP 410); the record is corrected first."""
