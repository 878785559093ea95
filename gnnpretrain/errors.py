"""Error types for mistakes a user can make and fix (bad input, busy or unwritable output, unsafe file).

Scripts run through :func:`gnnpretrain.utils.run_cli`, which prints any :class:`UserError` (and the
plain ``ValueError`` / ``FileNotFoundError`` that library code raises for bad arguments) as one line
``error: <message>`` with exit code 2; the traceback is shown only with ``GNNPRETRAIN_DEBUG=1``.
A ``UserError`` message names the problem and the fix, so that the one line is enough.

The concrete types also derive from the built-in type callers already catch (``ValueError``,
``RuntimeError``, ``OSError``), so code written against the older, plainer errors keeps working.
"""

from __future__ import annotations

__all__ = [
    "UserError",
    "CSVFormatError",
    "UnsafeFileError",
    "CorruptFileError",
    "OutputInUseError",
    "OutputNotWritableError",
    "OutputExistsError",
    "EmptyInputError",
]


class UserError(Exception):
    """Base class: an error the user caused and can fix; shown as one line by ``run_cli`` (exit 2)."""


class CSVFormatError(UserError, ValueError):
    """A CSV that is ragged, cut off, or whose columns are ambiguous (names file, line or columns)."""


class UnsafeFileError(UserError, ValueError):
    """A file that needs full unpickling (could run code) and was not explicitly trusted."""


class CorruptFileError(UserError, ValueError):
    """A file that is truncated or not in the expected format (e.g. not a torch file)."""


class OutputInUseError(UserError, RuntimeError):
    """Another live run holds the lock on this output folder."""


class OutputNotWritableError(UserError, OSError):
    """An output or cache folder cannot be created or written."""


class OutputExistsError(UserError, FileExistsError):
    """An output already holds results and neither resume nor overwrite was asked for."""


class EmptyInputError(UserError, ValueError):
    """No samples to work on: an empty input, or one where every sample failed (scikit-learn's rule:
    zero samples is an error, never an empty result). ``failed`` holds the indices that failed, if any."""

    def __init__(self, message: str, failed: "list[int] | None" = None) -> None:
        super().__init__(message)
        self.failed = list(failed or [])
