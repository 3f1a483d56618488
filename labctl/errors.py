"""Errors a user can act on.

Every error that comes from a user's file or an instrument is a `LabctlError`:
the CLI prints its message and exits with status 2, never a traceback.
File problems carry `Problem`s that name the file, line, column and field.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a user's file, located as precisely as we can."""

    file: str | None
    line: int | None  # 1-based
    column: int | None  # 1-based
    field: str  # dotted path inside the file, e.g. "steps[2].until"
    message: str  # what is wrong and what is allowed

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
        }


class LabctlError(Exception):
    """An error the user can fix; shown without a traceback, exit status 2."""

    exit_code = 2


class ValidationError(LabctlError):
    """A file (procedure, cell, station, CSV) that is not acceptable."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InstrumentError(LabctlError):
    """An instrument refused, answered garbage or failed."""


class InstrumentTimeout(InstrumentError):
    """An instrument did not answer in time."""


class StorageError(LabctlError):
    """The results store cannot be written (disk full, read-only, failing disk)."""


class SafetyError(LabctlError):
    """A step would leave the cell's or the instrument's limits."""
