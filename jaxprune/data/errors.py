"""The one error type every loader raises: it names the file (and line) at fault."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data. The message names the path, the line where it applies, and what was expected.

    Attributes:
      path: the file or directory at fault (str), or None for an in-memory array.
      line: 1-based line number in ``path`` where it applies, or None.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path + (f", line {line}" if line is not None else "") + ": "
        super().__init__(where + message)
