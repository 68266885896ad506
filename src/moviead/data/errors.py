"""One exception type for bad input, with a message that names the file, the record and the fix."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Raised when an input file cannot be used as it is.

    The message always says which file, which record (row, key or movie) and what to do about it, so a
    researcher can fix the data without reading our code.
    """

    def __init__(self, path: str | Path | None, problem: str, fix: str, record: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.fix = fix
        self.record = record
        where = f"{self.path}" if self.path is not None else "<input>"
        if record is not None:
            where += f" [{record}]"
        super().__init__(f"{where}: {problem}. Fix: {fix}")
