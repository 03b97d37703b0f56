"""Diagnostics: every problem found in user input, with where it was found.

Validation never stops at the first problem; it returns a list of these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One error in one file. ``line``/``column`` are 1-based; 0 when unknown."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)

    def github(self, level: str = "error") -> str:
        """A GitHub Actions workflow command that annotates the offending line (``level``:
        error or warning)."""
        msg = _escape_data(f"{self.field}: {self.message}" if self.field else self.message)
        file = _escape_data(self.file).replace(":", "%3A").replace(",", "%2C")
        return (f"::{level} file={file},line={max(self.line, 1)},col={max(self.column, 1)}"
                f"::{msg}")


def _escape_data(text: str) -> str:
    """Escape text for a workflow command, as GitHub's toolkit does (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
