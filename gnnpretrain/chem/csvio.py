"""Reading user and benchmark CSVs so that a damaged or ambiguous file is an error, never a silent guess.

pandas fills a row with too few fields with empty cells and, for a file cut in the middle of its last
row, trains on what is left without a word. A table of molecules and labels where a row lost its
last columns is not data we should train on, so :func:`read_csv_checked` first streams the file with
the :mod:`csv` module (same quoting rules as pandas' default dialect) and raises
:class:`~gnnpretrain.errors.CSVFormatError` naming the file and the line when

* a row has fewer or more fields than the header (a *ragged* row), or
* the last line has no line end and fewer fields than the header (the file was cut: truncated
  download or copy) — reported as "looks truncated".

Choosing the error over a counted skip is deliberate: a skipped row silently changes what a
benchmark number means; a one-line error with the line number is cheap to fix. Blank lines are
ignored (as pandas does). The check is one extra pass, paid once per raw file because processed
tensors are cached: measured on this project's 2-core machine under load ~6, 3.4 s for a 1M-row
two-column SMILES file (``pd.read_csv`` of the same file: 5.5 s), 0.6 s for MUV (93k rows), 1.1 s
for ToxCast (618 columns).

Column choice is explicit when it could be ambiguous: :func:`find_smiles_column` refuses a table
with more than one candidate SMILES column (``smiles`` and ``SMILES``, or ``smiles`` and ``mol``)
and names the option that picks one (``--smiles-column`` / ``smiles_column=``);
:func:`find_label_columns` refuses a wanted label that matches several columns up to case and
surrounding spaces; a header naming one column twice is refused by :func:`read_csv_checked`.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd

from gnnpretrain.errors import CSVFormatError

__all__ = [
    "CSVFormatError",
    "SMILES_NAMES",
    "check_csv_shape",
    "read_csv_checked",
    "find_smiles_column",
    "find_label_columns",
]

# Column names (compared case-insensitively, spaces stripped) that hold SMILES in common layouts.
SMILES_NAMES: tuple[str, ...] = ("smiles", "mol", "canonical_smiles")

_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}

# Some benchmark cells (ToxCast's 617 columns, long SMILES) exceed csv's default 128 kB field limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _open_text(path: Path) -> io.TextIOBase:
    opener = _OPENERS.get(path.suffix.lower())
    if opener is not None:
        return opener(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, "rt", encoding="utf-8", errors="replace", newline="")


def _short(items: Sequence[Any], n: int = 12) -> str:
    items = list(items)
    return str(items[:n])[:-1] + (", …]" if len(items) > n else "]")


def check_csv_shape(path: str | os.PathLike, header: bool = True, sep: str = ",") -> list[str]:
    """Stream ``path`` once and raise :class:`CSVFormatError` on a ragged or cut row.

    Returns the header's column names (or ``[]`` when ``header=False``; the first row then sets the
    field count). Line numbers in messages are 1-based physical lines of the (decompressed) file.
    """
    path = Path(path)
    last_line = [""]

    def lines(fh: Iterable[str]) -> Iterator[str]:
        for line in fh:
            last_line[0] = line
            yield line

    try:
        with _open_text(path) as fh:
            reader = csv.reader(lines(fh), delimiter=sep)
            width = None
            columns: list[str] = []
            bad: tuple[int, int] | None = None
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if width is None:
                    width = len(row)
                    if header:
                        columns = [c.strip() for c in row]
                        seen: set[str] = set()
                        dups = sorted({c for c in columns if c in seen or seen.add(c)})
                        if dups:
                            raise CSVFormatError(
                                f"{path}: the header names column(s) {dups} more than once; rename them so "
                                "each column has one name"
                            )
                    continue
                if len(row) != width and bad is None:
                    bad = (reader.line_num, len(row))
                    # keep reading only to learn whether this is the cut last line
                    if len(row) > width:
                        break
                elif bad is not None:
                    break
    except CSVFormatError:
        raise
    except (OSError, EOFError, UnicodeError, csv.Error) as exc:
        raise CSVFormatError(f"{path}: cannot be read as a CSV file ({exc})") from exc
    if width is None:
        raise CSVFormatError(f"{path}: the file is empty (no header line)")
    if bad is not None:
        line, n = bad
        cut = line == reader.line_num and n < width and not last_line[0].endswith(("\n", "\r"))
        if cut:
            raise CSVFormatError(
                f"{path}: the file looks truncated: its last line ({line}) has {n} of {width} fields and no "
                "line end; re-download or re-copy the file"
            )
        raise CSVFormatError(
            f"{path}: line {line} has {n} fields but the header has {width} (ragged row); fix or remove "
            "that line (quote fields that contain the separator)"
        )
    return columns


def read_csv_checked(path: str | os.PathLike, *, header: bool = True, sep: str = ",", **read_csv_kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` after :func:`check_csv_shape`: ragged, cut or double-named columns raise
    :class:`CSVFormatError` naming the file and line. Extra keyword arguments go to pandas."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    check_csv_shape(path, header=header, sep=sep)
    try:
        return pd.read_csv(path, sep=sep, header=0 if header else None, **read_csv_kwargs)
    except (ValueError, pd.errors.ParserError, UnicodeError, OSError) as exc:
        raise CSVFormatError(f"{path}: cannot be read as a CSV file ({exc})") from exc


def _norm(name: Any) -> str:
    return str(name).strip().lower()


def find_smiles_column(
    columns: Sequence[Any],
    explicit: str | None = None,
    *,
    path: str | os.PathLike | None = None,
    candidates: Sequence[str] = SMILES_NAMES,
    allow_single: bool = False,
    option: str | None = "--smiles-column",
) -> str:
    """The column holding SMILES: ``explicit`` if given (must exist), else the one column whose name is
    a candidate (case-insensitive), else — with ``allow_single`` — the only column.

    More than one candidate (``smiles`` and ``SMILES``) is a :class:`CSVFormatError` listing them and
    naming ``option``, the flag or argument that chooses one (``None`` where the caller has no such
    option: the message then asks to rename or remove the extra column).
    """
    fix = f"choose one with {option} NAME" if option else "rename or remove the extra column(s)"
    cols = [str(c) for c in columns]
    where = f"{path}: " if path is not None else ""
    if explicit is not None:
        if explicit in cols:
            return explicit
        raise CSVFormatError(f"{where}no SMILES column {explicit!r}; the columns are {_short(cols)}")
    wanted = {_norm(c) for c in candidates}
    matches = [c for c in cols if _norm(c) in wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CSVFormatError(
            f"{where}several columns could hold the SMILES: {matches}; {fix}"
        )
    if allow_single and len(cols) == 1:
        return cols[0]
    raise CSVFormatError(
        f"{where}no SMILES column (expected one named {' / '.join(candidates)}, any case); the columns are "
        f"{_short(cols)}" + (f"; name it with {option} NAME" if option else "")
    )


def find_label_columns(
    columns: Sequence[Any],
    wanted: Sequence[str],
    *,
    path: str | os.PathLike | None = None,
    what: str = "label",
) -> list[str]:
    """Return ``wanted`` after checking each names exactly one column.

    A wanted name must exist exactly; if another column equals it up to case and surrounding spaces
    (``Class`` and ``class``) it could be meant twice, which is a :class:`CSVFormatError` listing both.
    Missing names are a :class:`CSVFormatError` too.
    """
    cols = [str(c) for c in columns]
    where = f"{path}: " if path is not None else ""
    missing = [w for w in wanted if w not in cols]
    if missing:
        raise CSVFormatError(f"{where}missing {what} column(s) {missing}; the columns are {_short(cols)}")
    for w in wanted:
        same = [c for c in cols if _norm(c) == _norm(w)]
        if len(same) > 1:
            raise CSVFormatError(
                f"{where}{what} column {w!r} could be any of {same} (they differ only in case or spaces); "
                "rename or remove the extra one(s)"
            )
    return list(wanted)
