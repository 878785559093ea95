"""Reading a user's molecule table (CSV): the SMILES column plus chosen columns, as text.

A thin layer over :mod:`gnnpretrain.chem.csvio` (ragged or cut files, missing or ambiguous columns are
one :class:`~gnnpretrain.errors.CSVFormatError` naming the file and listing its columns), used by
``scripts/embed.py`` and the CSV fine-tuning task (:mod:`gnnpretrain.chem.csvtask`). Columns are read as
strings (``dtype=str``), so a numeric check can name the offending values instead of pandas guessing a
type; empty cells are ``NaN``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from gnnpretrain.chem.csvio import find_label_columns, find_smiles_column, read_csv_checked

__all__ = ["read_molecule_table"]


def read_molecule_table(
    path: str | os.PathLike, smiles_column: str | None, columns: Sequence[str] = (), what: str = "target"
) -> tuple[pd.DataFrame, str]:
    """``(table, smiles column name)``: the SMILES column (given, or the one named like ``smiles``) first,
    then ``columns``, all as strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    df = read_csv_checked(path, dtype=str, keep_default_na=True)
    smiles_column = find_smiles_column(list(df.columns), smiles_column, path=path)
    columns = [c for c in columns if c != smiles_column]
    find_label_columns(list(df.columns), columns, path=path, what=what)
    table = df[[smiles_column, *columns]].copy()
    table.attrs["file_columns"] = [str(c) for c in df.columns]  # for error messages that list the file's columns
    return table, smiles_column
