"""Train/valid/test splits for molecule datasets, matching the reference code's semantics.

* :func:`scaffold_split` — deterministic Bemis–Murcko scaffold split (the paper's protocol): group
  molecules by ``MurckoScaffoldSmiles(includeChirality=True)``, order the groups by (size, smallest
  index) descending, fill train while the next group still fits in ``frac_train`` of the molecules,
  then valid up to ``frac_train + frac_valid``, the rest goes to test.
* :func:`random_scaffold_split` — scaffold groups in a seeded random order (``numpy`` RandomState,
  as the reference), filling valid, then test, up to their floors, the rest to train.
* :func:`random_split` — seeded shuffle of all indices (Python ``random``, as the reference).
* :func:`split_dataset` — picks the SMILES the reference used for a named dataset: RDKit-canonical
  SMILES for BBBP, ClinTox and ToxCast (its loaders stored those), the file's raw SMILES otherwise.
  This matters because the scaffold string keeps E/Z stereo, which RDKit writes differently for a
  raw SMILES and its canonical form, so a few molecules change scaffold group and the split moves.

All functions return three sorted-by-construction Python lists of ``int`` indices, disjoint and
covering ``range(n)``. Fractions must sum to 1 and every split must be non-empty (clear errors).
"""

from __future__ import annotations

import random
from collections import defaultdict
from functools import lru_cache
from typing import Sequence

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem.Scaffolds import MurckoScaffold

Split = tuple[list[int], list[int], list[int]]

SPLIT_METHODS = ("scaffold", "random_scaffold", "random")
# Datasets whose reference loader stored RDKit-canonical SMILES (used for the scaffolds).
CANONICAL_SMILES_DATASETS = frozenset({"bbbp", "clintox", "toxcast"})


def _check_fractions(frac_train: float, frac_valid: float, frac_test: float) -> None:
    fr = (frac_train, frac_valid, frac_test)
    if any(f < 0 for f in fr):
        raise ValueError(f"split fractions must be non-negative, got train/valid/test = {fr}")
    if abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got train/valid/test = {fr} (sum {sum(fr):.6g})")


def _check_nonempty(split: Split, n: int, method: str) -> Split:
    for part, idx in zip(("train", "valid", "test"), split):
        if not idx:
            raise ValueError(
                f"{method} split of {n} molecules left the {part} split empty; use more molecules or "
                "larger fractions for that split"
            )
    return split


@lru_cache(maxsize=200_000)
def generate_scaffold(smiles: str, include_chirality: bool = True) -> str:
    """Bemis–Murcko scaffold SMILES of a molecule, as the reference computes it (memoised: the
    same datasets are split again for every seed and method)."""
    RDLogger.DisableLog("rdApp.*")
    try:
        return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=include_chirality)
    except Exception as exc:  # RDKit raises ValueError/RuntimeError for unparseable SMILES
        raise ValueError(f"cannot compute a scaffold for SMILES {smiles!r}: {exc}") from None
    finally:
        RDLogger.EnableLog("rdApp.*")


def scaffold_groups(smiles_list: Sequence[str]) -> dict[str, list[int]]:
    """Indices grouped by scaffold, groups in order of first appearance, indices ascending."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles_list):
        groups[generate_scaffold(s)].append(i)
    return dict(groups)


def scaffold_split(
    smiles_list: Sequence[str], frac_train: float = 0.8, frac_valid: float = 0.1, frac_test: float = 0.1
) -> Split:
    """Deterministic scaffold split, identical to the reference's ``scaffold_split``."""
    _check_fractions(frac_train, frac_valid, frac_test)
    n = len(smiles_list)
    groups = scaffold_groups(smiles_list)
    ordered = sorted(groups.values(), key=lambda idx: (len(idx), idx[0]), reverse=True)
    train_cutoff = frac_train * n
    valid_cutoff = (frac_train + frac_valid) * n
    train, valid, test = [], [], []
    for group in ordered:
        if len(train) + len(group) > train_cutoff:
            if len(train) + len(valid) + len(group) > valid_cutoff:
                test.extend(group)
            else:
                valid.extend(group)
        else:
            train.extend(group)
    return _check_nonempty((train, valid, test), n, "scaffold")


def random_scaffold_split(
    smiles_list: Sequence[str],
    frac_train: float = 0.8,
    frac_valid: float = 0.1,
    frac_test: float = 0.1,
    seed: int = 0,
) -> Split:
    """Scaffold groups in a seeded random order, as the reference's ``random_scaffold_split``.

    The reference permutes the list of groups with ``np.random.RandomState(seed).permutation``;
    permuting group positions with the same generator gives the same order (and also works when
    groups have different sizes, which modern NumPy refuses to turn into an array).
    """
    _check_fractions(frac_train, frac_valid, frac_test)
    n = len(smiles_list)
    groups = list(scaffold_groups(smiles_list).values())
    order = np.random.RandomState(seed).permutation(len(groups))
    n_valid = int(np.floor(frac_valid * n))
    n_test = int(np.floor(frac_test * n))
    train, valid, test = [], [], []
    for k in order:
        group = groups[k]
        if len(valid) + len(group) <= n_valid:
            valid.extend(group)
        elif len(test) + len(group) <= n_test:
            test.extend(group)
        else:
            train.extend(group)
    return _check_nonempty((train, valid, test), n, "random_scaffold")


def random_split(
    n: int, frac_train: float = 0.8, frac_valid: float = 0.1, frac_test: float = 0.1, seed: int = 0
) -> Split:
    """Seeded random split of ``range(n)``, as the reference's ``random_split`` (Python ``random``)."""
    _check_fractions(frac_train, frac_valid, frac_test)
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"random_split expects the number of molecules (an int >= 0), got {n!r}")
    idx = list(range(int(n)))
    random.Random(seed).shuffle(idx)
    n_train = int(frac_train * n)
    n_valid = int(frac_valid * n)
    split = (idx[:n_train], idx[n_train : n_train + n_valid], idx[n_train + n_valid :])
    return _check_nonempty(split, int(n), "random")


@lru_cache(maxsize=200_000)
def canonical_smiles(smiles: str) -> str:
    """RDKit-canonical SMILES (isomeric), as the reference's loaders wrote them."""
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None:
        raise ValueError(f"cannot canonicalise SMILES {smiles!r}: RDKit cannot parse it")
    return Chem.MolToSmiles(mol)


def scaffold_smiles_for(smiles_list: Sequence[str], name: str) -> list[str]:
    """The SMILES the reference computed scaffolds from for dataset ``name`` (see module docstring)."""
    if name.lower() in CANONICAL_SMILES_DATASETS:
        return [canonical_smiles(s) for s in smiles_list]
    return list(smiles_list)


def split_dataset(
    dataset_or_smiles,
    name: str | None = None,
    method: str = "scaffold",
    seed: int = 0,
    frac_train: float = 0.8,
    frac_valid: float = 0.1,
    frac_test: float = 0.1,
) -> Split:
    """Split a MoleculeNet dataset (or a SMILES list) the way the reference did.

    ``dataset_or_smiles``: an object with ``.smiles`` (and ``.name``, e.g. a ``MoleculeNet``) or a
    list of SMILES. ``name``: the dataset name (defaults to ``dataset.name``); it selects raw vs
    canonical SMILES for scaffolds. ``method``: ``"scaffold"`` (deterministic; ``seed`` unused, as in
    the reference), ``"random_scaffold"`` or ``"random"``.
    """
    from gnnpretrain.chem.moleculenet import MOLECULENET_NAMES

    if hasattr(dataset_or_smiles, "smiles"):
        smiles = list(dataset_or_smiles.smiles)
        name = name if name is not None else getattr(dataset_or_smiles, "name", None)
    elif isinstance(dataset_or_smiles, (list, tuple)):
        smiles = list(dataset_or_smiles)
    else:
        raise TypeError(
            f"split_dataset expects a dataset with a .smiles list or a list of SMILES, got {type(dataset_or_smiles).__name__}"
        )
    if name is None:
        raise ValueError("split_dataset needs the dataset name (it decides raw vs canonical SMILES for scaffolds)")
    if str(name).lower() not in MOLECULENET_NAMES:
        hint = f" (did you mean method={name!r}?)" if name in SPLIT_METHODS else ""
        raise ValueError(f"unknown dataset name {name!r}{hint}; expected one of {', '.join(MOLECULENET_NAMES)}")
    if method == "scaffold":
        return scaffold_split(scaffold_smiles_for(smiles, name), frac_train, frac_valid, frac_test)
    if method == "random_scaffold":
        return random_scaffold_split(scaffold_smiles_for(smiles, name), frac_train, frac_valid, frac_test, seed)
    if method == "random":
        return random_split(len(smiles), frac_train, frac_valid, frac_test, seed)
    raise ValueError(f"unknown split method {method!r}; expected one of {SPLIT_METHODS}")
