"""Reading a results ledger file as strictly as it is written: header formats, typed columns, one
result per cell.

Why a reader of its own: the ledger is the project's record of results and the only input of the
tables (:mod:`.report`). Read naively, a line duplicated by hand or by concatenating two machines'
ledgers is counted twice; a second line for the same cell with another value is silently averaged
in (one 0.99 line turned 61.3 ± 0.7 into 73.9 ± 17.8); a score edited into text ends in a bare
``could not convert string to float``. Here every line is checked against a :class:`Schema`:

* the header must be one of the schema's known formats (older formats are read, their missing
  columns empty);
* every value must parse as its column's kind (an integer seed is ``1``, never ``1.0``; a score is a
  finite number; a hash is hex of the right length) — else :class:`LedgerFormatError` naming file,
  line and column;
* lines of one cell (the schema's key, e.g. row × data set × seed) that agree on every result column
  are one result recorded twice: they collapse to the first, with one warning line naming them;
  lines of one cell that disagree are :class:`LedgerConflictError` naming both line numbers and the
  columns that differ — nothing is averaged.

Used by :class:`gnnpretrain.train.compare.ledger.Ledger` (comparison ledgers) and the MoleculeACE
suite's ledger (:mod:`.moleculeace`), and by the merge command (:func:`.ledger.merge_ledgers`).
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from gnnpretrain.errors import UserError

__all__ = ["Schema", "LedgerMismatchError", "LedgerFormatError", "LedgerConflictError", "LedgerReadError", "SourcedLine", "parse_lines",
           "collapse", "read_text", "KINDS"]


class LedgerMismatchError(UserError, ValueError):
    """A ledger (or a line for it) would mix configurations: another protocol, another encoder under
    one row name, another config for a cell present (:mod:`.ledger`'s rules)."""


class LedgerReadError(LedgerMismatchError):
    """Base of the strict reader's errors (a ledger file that cannot be trusted as it stands); a
    :class:`LedgerMismatchError`, so callers that caught that for a bad file still catch these."""


class LedgerFormatError(LedgerReadError):
    """A header of no known format, a cut line, or a value that does not parse as its column's kind."""


class LedgerConflictError(LedgerReadError):
    """Two lines for the same cell with different results."""


_INT_RE = re.compile(r"^-?[0-9]+$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16", "float64")


def _float(text: str, *, allow_nan: bool = False) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError("is not a number") from None
    if math.isnan(v) and not allow_nan:
        raise ValueError("is NaN, not a score")
    if math.isinf(v):
        raise ValueError("is infinite")
    return v


def _int(text: str) -> int:
    if not _INT_RE.match(text):
        raise ValueError("is not an integer (write e.g. 1, not 1.0)")
    return int(text)


def _kind_int(text: str) -> int:
    return _int(text)


def _kind_count(text: str) -> int:
    v = _int(text)
    if v < 0:
        raise ValueError("is negative")
    return v


def _kind_float(text: str) -> float:
    return _float(text)


def _kind_float_or_nan(text: str) -> float:
    return _float(text, allow_nan=True)


def _kind_nonneg(text: str) -> float:
    v = _float(text)
    if v < 0:
        raise ValueError("is negative")
    return v


def _kind_nonneg_or_nan(text: str) -> float:
    v = _float(text, allow_nan=True)
    if v < 0:
        raise ValueError("is negative")
    return v


def _kind_auc(text: str) -> float:
    v = _float(text)
    if not 0.0 <= v <= 1.0:
        raise ValueError("is outside [0, 1], so it is not a ROC-AUC")
    return v


def _hex(n: int):
    def kind(text: str) -> str:
        if len(text) != n or not _HEX_RE.match(text):
            raise ValueError(f"is not {n} lower-case hex digits")
        return text
    return kind


def _kind_time(text: str) -> str:
    if not _TIME_RE.match(text):
        raise ValueError("is not a UTC time like 2026-12-02T02:13:30Z")
    return text


def _kind_dtype(text: str) -> str:
    if text not in COMPUTE_DTYPES:
        raise ValueError(f"is not one of {', '.join(COMPUTE_DTYPES)}")
    return text


def _kind_text(text: str) -> str:
    return text


#: Column kinds: a parser from the written text to a value (raises ``ValueError("is ...")``).
KINDS = {
    "int": _kind_int, "count": _kind_count, "float": _kind_float, "float_or_nan": _kind_float_or_nan,
    "nonneg": _kind_nonneg, "nonneg_or_nan": _kind_nonneg_or_nan, "auc": _kind_auc, "hex16": _hex(16), "hex64": _hex(64), "time": _kind_time,
    "dtype": _kind_dtype, "text": _kind_text,
}


@dataclass(frozen=True)
class Schema:
    """What one kind of ledger looks like.

    ``headers``: format number -> its columns, in file order (the newest format last). ``kinds``: column
    -> a :data:`KINDS` name (columns not named are free text). ``required``: columns that may not be
    empty (in every format that has them). ``key``: the columns naming a cell. ``result``: the columns
    whose values are the cell's result; two lines of one cell that agree on all of them are one result
    written twice. ``what``: a word for messages; ``fix``: what to do about a conflict.
    """

    headers: Mapping[int, tuple[str, ...]]
    kinds: Mapping[str, str]
    required: frozenset[str]
    key: tuple[str, ...]
    result: tuple[str, ...]
    what: str = "ledger"
    version_column: str | None = None  # a per-line format number, at most the header's format
    required_from: Mapping[str, int] = field(default_factory=dict)  # column -> first line format that must fill it

    @property
    def latest(self) -> int:
        return max(self.headers)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.headers[self.latest]


@dataclass
class SourcedLine:
    """One ledger line (text values, the newest format's columns) and where it was read."""

    values: dict[str, str]
    path: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.path} line {self.line}"


def header_format(schema: Schema, header: Sequence[str], path: Path) -> int:
    """The format number of ``header``, or a one-line error naming what is missing / unknown."""
    header = tuple(header)
    for fmt, cols in schema.headers.items():
        if header == cols:
            return fmt
    def gaps(cols: tuple[str, ...]) -> tuple[list[str], list[str]]:
        return [c for c in cols if c not in header], [c for c in header if c not in cols]

    # name the differences from the closest known format
    missing, extra = min((gaps(cols) for cols in schema.headers.values()), key=lambda g: len(g[0]) + len(g[1]))
    raise LedgerFormatError(
        f"{path}: not a {schema.what} of a known format (missing columns {missing or 'none'}, unknown "
        f"{extra or 'none'}, formats {sorted(schema.headers)} known); point --ledger at a new file, or update "
        "gnnpretrain if a newer version wrote it"
    )


def parse_value(schema: Schema, column: str, text: str, where: str, col_no: int, line_format: int | None = None) -> Any:
    """The typed value of one cell, or :class:`LedgerFormatError` naming the file, line and column."""
    need = column in schema.required and (
        line_format is None or line_format >= schema.required_from.get(column, 0))
    if text == "":
        if need:
            raise LedgerFormatError(f"{where}, column {col_no} ({column}): empty, but every line needs it; "
                                    "fix or delete that line")
        return None
    try:
        return KINDS[schema.kinds.get(column, "text")](text)
    except ValueError as err:
        raise LedgerFormatError(
            f"{where}, column {col_no} ({column}): {text[:40]!r} {err}; fix or delete that line"
        ) from None


def read_text(schema: Schema, text: str, path: Path) -> tuple[int, list[SourcedLine]]:
    """``(format, lines)`` of a ledger file's text, every value checked (module docstring)."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return schema.latest, []
    fmt = header_format(schema, header, path)
    cols = schema.headers[fmt]
    out: list[SourcedLine] = []
    for row in reader:
        line_no = reader.line_num
        if not row:
            continue
        where = f"{path} line {line_no}"
        if len(row) != len(cols):
            raise LedgerFormatError(
                f"{where}: wrong number of fields ({len(row)}, the header has {len(cols)}: a cut or hand-edited "
                "line); fix or delete that line"
            )
        values = dict(zip(cols, row))
        line_format = None
        if schema.version_column:
            vc = schema.version_column
            line_format = parse_value(schema, vc, values[vc], where, cols.index(vc) + 1)
            if not 1 <= line_format <= fmt:
                raise LedgerFormatError(
                    f"{where}, column {cols.index(vc) + 1} ({vc}): format {line_format} in a file of format {fmt}; "
                    "fix or delete that line (or update gnnpretrain if a newer version wrote it)"
                )
        for j, c in enumerate(cols, start=1):
            parse_value(schema, c, values[c], where, j, line_format)
        full = {c: values.get(c, "") for c in schema.columns}  # older formats: the new columns empty
        out.append(SourcedLine(full, path, line_no))
    return fmt, out


def parse_lines(schema: Schema, path: str | Path) -> tuple[int, list[SourcedLine]]:
    """Read ``path`` strictly (``(latest format, [])`` if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return schema.latest, []
    return read_text(schema, path.read_text(), path)


def _norm(schema: Schema, column: str, text: str) -> Any:
    """Comparable value of a checked cell (``0.72`` and ``0.720`` are one score; NaN equals NaN)."""
    if text == "":
        return None
    v = KINDS[schema.kinds.get(column, "text")](text)
    return "nan" if isinstance(v, float) and math.isnan(v) else v


def cell_key(schema: Schema, values: Mapping[str, str]) -> tuple:
    return tuple(_norm(schema, c, values[c]) for c in schema.key)


def collapse(schema: Schema, lines: Sequence[SourcedLine], warn: bool = True) -> list[SourcedLine]:
    """One line per cell: repeats of a result dropped (one warning line), conflicts refused.

    Lines are compared on the schema's result columns as values, so a repeat written with other
    bookkeeping (finish time, wall time, host) is still a repeat, while any other score, best epoch,
    split size or configuration hash is a :class:`LedgerConflictError` naming both lines.
    """
    first: dict[tuple, SourcedLine] = {}
    kept: list[SourcedLine] = []
    repeats: list[tuple[SourcedLine, SourcedLine]] = []
    for ln in lines:
        key = cell_key(schema, ln.values)
        seen = first.get(key)
        if seen is None:
            first[key] = ln
            kept.append(ln)
            continue
        diffs = [c for c in schema.result
                 if _norm(schema, c, seen.values[c]) != _norm(schema, c, ln.values[c])]
        if diffs:
            shown = "; ".join(f"{c}: {seen.values[c] or '(empty)'} vs {ln.values[c] or '(empty)'}" for c in diffs[:3])
            cell = "/".join(ln.values[c] for c in schema.key)
            same_file = seen.path == ln.path
            lines_text = (f"{seen.path}: lines {seen.line} and {ln.line}" if same_file
                          else f"{seen.where} and {ln.where}")
            raise LedgerConflictError(
                f"{lines_text} are both {cell} but differ ({shown}{'; ...' if len(diffs) > 3 else ''}); a {schema.what} "
                "holds one result per cell and nothing is averaged: delete the line that is wrong"
            )
        repeats.append((ln, seen))
    if repeats and warn:
        shown = ", ".join(f"{a.line} = {b.line}" if a.path == b.path else f"{a.where} = {b.where}"
                          for a, b in repeats[:5])
        warnings.warn(
            f"{lines[0].path if len({ln.path for ln in lines}) == 1 else 'ledgers'}: {len(repeats)} line(s) repeat the "
            f"result of an earlier line of the same cell and were counted once (lines {shown}"
            f"{', ...' if len(repeats) > 5 else ''}); the next write keeps each result once",
            UserWarning, stacklevel=3,
        )
    return kept


def render(columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> str:
    """CSV text of ``rows`` under ``columns`` (one ``\\n`` per line, as every ledger is written)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows([{c: r.get(c, "") for c in columns} for r in rows])
    return buf.getvalue()
