"""Shared helpers for the data-pipeline tests: real molecules as graphs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
from torch_geometric.data import Data

from gnnpretrain.chem.featurize import smiles_to_graph


def graphs(smiles: list[str]) -> list[Data]:
    out = []
    for s in smiles:
        d = smiles_to_graph(s)
        assert d is not None, f"test SMILES {s!r} did not featurize"
        out.append(d)
    return out


def bbbp_smiles(data_dir: Path, n: int) -> tuple[str, ...]:
    """The first ``n`` (<= 200) BBBP SMILES that featurize (real drug-like molecules, some multi-fragment)."""
    if n > 200:
        raise ValueError("bbbp_smiles serves at most 200 molecules")
    return _bbbp_200(Path(data_dir))[:n]


@lru_cache(maxsize=2)
def _bbbp_200(data_dir: Path, n: int = 200) -> tuple[str, ...]:
    sm = pd.read_csv(Path(data_dir) / "moleculenet" / "bbbp.csv")["smiles"].tolist()
    keep: list[str] = []
    for s in sm:
        if smiles_to_graph(s) is not None:
            keep.append(s)
            if len(keep) == n:
                break
    return tuple(keep)
