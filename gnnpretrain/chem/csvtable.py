"""Reading a user's molecule table (CSV) with one clear error for a wrong column name.

Used by ``scripts/embed.py`` and the CSV fine-tuning task (:mod:`gnnpretrain.chem.csvtask`). The file is
read as text columns (``dtype=str``), so a numeric check can name the offending values instead of pandas
guessing a type; empty cells are ``NaN``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

__all__ = ["read_molecule_table", "check_columns"]


def check_columns(path: str | os.PathLike, available: Sequence[str], wanted: Sequence[str], what: str = "column") -> None:
    """Raise one ``ValueError`` naming every missing column and listing the file's columns."""
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ValueError(
            f"{path}: no {what} {', '.join(repr(c) for c in missing)}; the file's columns are: "
            f"{', '.join(str(c) for c in available)}"
        )


def read_molecule_table(path: str | os.PathLike, smiles_column: str, columns: Sequence[str] = ()) -> pd.DataFrame:
    """``smiles_column`` plus ``columns`` of a CSV (``.csv``/``.csv.gz``), as strings; header checked first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    if not smiles_column:
        raise ValueError(f"{path}: give the name of the SMILES column (--smiles-column)")
    header = list(pd.read_csv(path, nrows=0).columns)
    wanted = [smiles_column, *[c for c in columns if c != smiles_column]]
    check_columns(path, header, wanted)
    df = pd.read_csv(path, usecols=wanted, dtype=str, keep_default_na=True)
    return df[wanted]
