"""Downstream tasks from a user's CSV and from MoleculeACE (activity-cliff regression benchmark).

Both are reached through the chem task loader (:func:`gnnpretrain.train.tasks.get_task`), so they get
the same fine-tuning loop, seed files, resume and summaries as the MoleculeNet benchmarks:

* ``get_task("chem", "path/to/mols.csv", smiles_column="smiles", target_columns=["a", "b"],
  task_type=None, split="scaffold")`` — one or more target columns; empty cells are missing values
  (masked in the loss and the metrics). ``task_type`` ``None`` infers it: every value 0/1 →
  classification, else regression. ``split``: ``scaffold`` (the reference's deterministic scaffold
  split, 80/10/10), ``random`` / ``random_scaffold`` (seeded by ``split_seed``), or ``column:NAME``
  (a column holding ``train``/``valid``/``test``; ``val``/``validation`` also accepted; when it has no
  valid rows, the valid set is carved from train as for MoleculeACE).
* ``get_task("chem", "moleculeace:CHEMBL1862_Ki")`` — one of the 30 MoleculeACE targets in
  ``<data root>/moleculeace/`` (column ``y``, which is −log10 of the measured value in nM — pActivity
  minus 9, so RMSE is in log units). The benchmark's own train/test split is kept; the valid set is a
  fixed 10 % of the training molecules drawn with ``numpy.random.default_rng(split_seed)`` (default 0,
  so every model and seed sees the same three sets). ``task.test_subsets["cliff"]`` marks the test
  molecules flagged ``cliff_mol`` (members of an activity-cliff pair), scored separately (RMSE_cliff).

Molecules RDKit cannot parse, and rows with no target value at all, are dropped and counted in
``task.info`` (``num_skipped``, ``skipped_rows``: 0-based data rows of the file).

Targets that cannot be learned are refused before any featurizing or training, one line naming the
file and the column: non-numeric or infinite cells, magnitudes beyond what float32 training can
square (:data:`~gnnpretrain.train.objectives.MAX_TARGET_MAGNITUDE`, e.g. 1e300), and on the training
split a constant regression column, one with fewer than three distinct values, or a classification
column with a single class (:func:`gnnpretrain.train.tasks.check_task_targets` with every column checked,
since the user chose each one).

This family registers itself with the task registry (:func:`gnnpretrain.train.tasks.register_task_family`)
when imported; :mod:`gnnpretrain.chem.tasks` imports it with the chem domain.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from gnnpretrain.paths import data_root as _data_root
from gnnpretrain.train.objectives import MAX_TARGET_MAGNITUDE, UnlearnableTargetError
from gnnpretrain.train.tasks import Task, check_task_targets, register_task_family

__all__ = [
    "MOLECULEACE_PREFIX",
    "is_custom_dataset",
    "dataset_label",
    "moleculeace_names",
    "load_task",
    "load_csv_task",
    "load_moleculeace_task",
]

MOLECULEACE_PREFIX = "moleculeace:"
VALID_FRACTION = 0.1
_SPLIT_WORDS = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
                "test": "test", "testing": "test"}


def is_custom_dataset(name: str) -> bool:
    """A CSV path (``.csv`` / ``.csv.gz``) or ``moleculeace:NAME``."""
    name = str(name)
    return name.startswith(MOLECULEACE_PREFIX) or name.lower().endswith((".csv", ".csv.gz"))


def dataset_label(name: str) -> str:
    """A file-system-safe short name: the CSV's stem, ``moleculeace_NAME``, or the name itself."""
    name = str(name)
    if name.startswith(MOLECULEACE_PREFIX):
        return "moleculeace_" + name[len(MOLECULEACE_PREFIX):]
    if name.lower().endswith((".csv", ".csv.gz")):
        base = Path(name).name
        return re.sub(r"\.csv(\.gz)?$", "", base, flags=re.IGNORECASE)
    return name


def _moleculeace_dir(data_root: str | os.PathLike | None) -> Path:
    return _data_root(data_root) / "moleculeace"


def moleculeace_names(data_root: str | os.PathLike | None = None) -> list[str]:
    """The MoleculeACE targets present in ``<data root>/moleculeace/`` (e.g. ``CHEMBL1862_Ki``)."""
    folder = _moleculeace_dir(data_root)
    return sorted(p.name[: -len(".csv")] for p in folder.glob("CHEMBL*.csv")) if folder.is_dir() else []


def _model_input(featurizer: str) -> str:
    if featurizer not in ("reference", "ogb"):
        raise ValueError(f"chem featurizer must be 'reference' or 'ogb', got {featurizer!r}")
    return featurizer


# ------------------------------------------------------------------------------------------ parsing
def _numeric_targets(df: pd.DataFrame, columns: Sequence[str], path: Path) -> np.ndarray:
    """Target columns as float ``[n, T]`` (nan = missing); a non-numeric cell is one clear error."""
    out = np.empty((len(df), len(columns)), dtype=np.float64)
    problems = []
    for j, col in enumerate(columns):
        raw = df[col]
        text = raw.astype("string").str.strip()
        lowered = text.str.lower()
        mapped = text.mask(lowered.isin(["true", "yes"]), "1").mask(lowered.isin(["false", "no"]), "0")
        values = pd.to_numeric(mapped, errors="coerce")
        bad = values.isna() & raw.notna() & (text != "")
        if bad.any():
            examples = ", ".join(repr(v) for v in raw[bad].unique()[:3])
            problems.append(f"{col!r} ({int(bad.sum())} non-numeric values, e.g. {examples})")
        out[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if problems:
        raise ValueError(
            f"{path}: target columns must hold numbers (empty = missing): {'; '.join(problems)}. "
            f"The file's columns are: {', '.join(df.attrs.get('file_columns', map(str, df.columns)))}; "
            "pick numeric ones with --target-columns."
        )
    if np.isinf(out).any():
        raise ValueError(f"{path}: target columns hold infinite values; replace them with numbers or leave the cells empty")
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.abs(out), axis=0, initial=0.0)
    big = [(c, p) for c, p in zip(columns, peak) if p > MAX_TARGET_MAGNITUDE]
    if big:
        col, p = big[0]
        raise UnlearnableTargetError(
            f"{path}: target column {col!r} holds magnitudes up to {p:.3g}, beyond ±{MAX_TARGET_MAGNITUDE:.2g} (float32 "
            "training squares errors, which overflow there); rescale the column (e.g. take log10 of it) before "
            "fine-tuning" + (f" (and {len(big) - 1} more column(s))" if len(big) > 1 else "")
        )
    return out


def _infer_task_type(y: np.ndarray, task_type: str | None, path: Path, columns: Sequence[str]) -> str:
    observed = y[~np.isnan(y)]
    binary = observed.size > 0 and bool(np.isin(observed, (0.0, 1.0)).all())
    if task_type is None:
        return "classification" if binary else "regression"
    if task_type not in ("classification", "regression"):
        raise ValueError(f"--task must be 'classification' or 'regression', got {task_type!r}")
    if task_type == "classification" and not binary:
        bad = [c for j, c in enumerate(columns) if not np.isin(y[~np.isnan(y[:, j]), j], (0.0, 1.0)).all()]
        raise ValueError(
            f"{path}: classification needs 0/1 labels (empty = missing), but {', '.join(map(repr, bad))} hold other "
            "values; use --task regression, or binarise the column first"
        )
    return task_type


def _featurize(smiles: Sequence[str], y: np.ndarray, featurizer: str) -> tuple[list, list[int], list[int]]:
    """``(graphs, kept rows, skipped rows)``; a row is skipped if unparseable or without any target value."""
    from gnnpretrain.chem.featurize import smiles_to_graph

    graphs, kept, skipped = [], [], []
    for i, s in enumerate(smiles):
        g = smiles_to_graph(s, featurizer=featurizer) if isinstance(s, str) and s.strip() else None
        if g is None or g.num_nodes == 0 or np.isnan(y[i]).all():
            skipped.append(i)
            continue
        g.y = torch.tensor(y[i], dtype=torch.float32).reshape(1, -1)
        graphs.append(g)
        kept.append(i)
    return graphs, kept, skipped


def _carve_valid(train: list[int], split_seed: int) -> tuple[list[int], list[int]]:
    """A fixed ``VALID_FRACTION`` of ``train`` (at least one) as valid, drawn with ``default_rng(split_seed)``."""
    rng = np.random.default_rng(int(split_seed))
    perm = rng.permutation(len(train))
    n_valid = max(1, int(round(VALID_FRACTION * len(train))))
    valid_pos = set(perm[:n_valid].tolist())
    return ([t for k, t in enumerate(train) if k not in valid_pos], [t for k, t in enumerate(train) if k in valid_pos])


def _column_split(labels: Sequence[Any], name: str, split_seed: int) -> tuple[list[int], list[int], list[int]]:
    parts: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    unknown = set()
    for i, v in enumerate(labels):
        key = _SPLIT_WORDS.get(str(v).strip().lower()) if isinstance(v, str) else None
        if key is None:
            unknown.add(str(v))
        else:
            parts[key].append(i)
    if unknown:
        raise ValueError(
            f"split column {name!r} must hold train / valid / test for every row; found {sorted(unknown)[:5]}"
        )
    if not parts["valid"] and parts["train"]:
        parts["train"], parts["valid"] = _carve_valid(parts["train"], split_seed)
    return parts["train"], parts["valid"], parts["test"]


def _split(method: str, smiles: list[str], split_values: Sequence[Any] | None, split_seed: int):
    from gnnpretrain import splits

    if method == "scaffold":
        return splits.scaffold_split(smiles)
    if method == "random":
        return splits.random_split(len(smiles), seed=split_seed)
    if method == "random_scaffold":
        return splits.random_scaffold_split(smiles, seed=split_seed)
    if method.startswith("column:"):
        return _column_split(split_values, method[len("column:"):], split_seed)
    raise ValueError(f"unknown split {method!r}; use scaffold, random, random_scaffold or column:NAME")


# ------------------------------------------------------------------------------------------- tasks
def _make_task(name: str, graphs: list, smiles: list[str], split_idx, *, task_type: str, target_columns: Sequence[str],
               featurizer: str, split: str, info: dict[str, Any], test_subsets: dict[str, Any] | None = None) -> Task:
    """The :class:`Task`, its targets checked on its split (every column: the user chose each)."""
    train_idx, valid_idx, test_idx = split_idx
    task = Task(
        domain="chem", name=name, dataset=graphs, train_idx=train_idx, valid_idx=valid_idx, test_idx=test_idx,
        num_tasks=len(target_columns), model_kwargs={"input": _model_input(featurizer), "center_pool": False},
        metric="roc_auc" if task_type == "classification" else "rmse", split=split, task_type=task_type,
        test_subsets=test_subsets or {},
        info={"num_graphs": len(graphs), "featurizer": featurizer, "task_names": list(target_columns), **info},
    )
    check_task_targets(task, every_column=True)
    return task


def load_csv_task(
    path: str | os.PathLike,
    *,
    smiles_column: str | None = None,
    target_columns: Sequence[str] | str | None = None,
    task_type: str | None = None,
    split: str = "scaffold",
    split_seed: int = 0,
    featurizer: str = "reference",
    name: str | None = None,
):
    """A :class:`~gnnpretrain.train.tasks.Task` from a CSV of SMILES and target columns (see module docstring)."""
    from gnnpretrain.chem.csvtable import read_molecule_table

    path = Path(path)
    _model_input(featurizer)
    if isinstance(target_columns, str):
        target_columns = [c.strip() for c in target_columns.split(",") if c.strip()]
    if not target_columns:
        cols = ", ".join(map(str, pd.read_csv(path, nrows=0).columns)) if path.is_file() else "?"
        raise ValueError(f"{path}: name the target column(s) with --target-columns a,b; the file's columns are: {cols}")
    split_column = split[len("column:"):] if split.startswith("column:") else None
    wanted = list(target_columns) + ([split_column] if split_column and split_column not in target_columns else [])
    df, smiles_column = read_molecule_table(path, smiles_column, wanted)
    y = _numeric_targets(df, target_columns, path)
    task_type = _infer_task_type(y, task_type, path, target_columns)
    smiles_all = df[smiles_column].tolist()
    graphs, kept, skipped = _featurize(smiles_all, y, featurizer)
    if len(graphs) < 3:
        raise ValueError(f"{path}: only {len(graphs)} molecules with a parseable SMILES and a target value; need at least 3")
    smiles = [smiles_all[i] for i in kept]
    split_values = df[split_column].iloc[kept].tolist() if split_column else None
    idx = _split(split, smiles, split_values, split_seed)
    return _make_task(
        name or dataset_label(str(path)), graphs, smiles, idx, task_type=task_type, target_columns=target_columns,
        featurizer=featurizer, split=split,
        info={"source": str(path), "smiles_column": smiles_column, "num_rows": len(df), "num_skipped": len(skipped),
              "skipped_rows": skipped[:1000], "smiles": smiles},
    )


def load_moleculeace_task(target: str, *, data_root: str | os.PathLike | None = None, split_seed: int = 0,
                          featurizer: str = "reference"):
    """MoleculeACE target ``target`` (e.g. ``CHEMBL1862_Ki``): its train/test split, valid carved from train."""
    folder = _moleculeace_dir(data_root)
    path = folder / f"{target}.csv"
    if not path.is_file():
        known = moleculeace_names(data_root)
        raise FileNotFoundError(
            f"MoleculeACE target {target!r} not found at {path}. "
            + (f"Available: {', '.join(known)}." if known else
               "Put the MoleculeACE CSVs (from the MoleculeACE package's Data/benchmark_data) in that folder or "
               "point the data root there (--data-root / $GNNPRETRAIN_DATA).")
        )
    from gnnpretrain.chem.csvio import read_csv_checked

    df = read_csv_checked(path)
    missing = [c for c in ("smiles", "y", "split", "cliff_mol") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a MoleculeACE file (no column {', '.join(map(repr, missing))}; it has "
                         f"{', '.join(map(str, df.columns))})")
    y = _numeric_targets(df, ["y"], path)
    graphs, kept, skipped = _featurize(df["smiles"].tolist(), y, featurizer)
    part = df["split"].iloc[kept].str.strip().str.lower().tolist()
    train = [k for k, p in enumerate(part) if p == "train"]
    test = [k for k, p in enumerate(part) if p == "test"]
    train, valid = _carve_valid(train, split_seed)
    cliff = df["cliff_mol"].iloc[kept].to_numpy().astype(bool)
    return _make_task(
        f"{MOLECULEACE_PREFIX}{target}", graphs, df["smiles"].iloc[kept].tolist(), (train, valid, test),
        task_type="regression", target_columns=["y"], featurizer=featurizer, split="moleculeace",
        test_subsets={"cliff": torch.as_tensor(cliff[test])},
        info={"source": str(path), "num_rows": len(df), "num_skipped": len(skipped), "skipped_rows": skipped,
              "num_cliff_test": int(cliff[test].sum()),
              "valid": f"{VALID_FRACTION:.0%} of train, numpy default_rng({int(split_seed)})"},
    )


def load_task(name: str, *, data_root=None, cache=None, split: str = "scaffold", featurizer: str = "reference",
              split_seed: int = 0, smiles_column: str | None = None, target_columns=None, task_type: str | None = None) -> Task:
    """The loader of this family (registered below; called by :func:`gnnpretrain.train.tasks.get_task`)."""
    if name.startswith(MOLECULEACE_PREFIX):
        if smiles_column or target_columns or (task_type and task_type != "regression"):
            raise ValueError("moleculeace:NAME is a fixed regression benchmark; drop --smiles-column/--target-columns/--task")
        if split not in ("scaffold", "moleculeace"):
            raise ValueError(f"moleculeace:NAME has its own train/test split; drop --split {split}")
        return load_moleculeace_task(name[len(MOLECULEACE_PREFIX):], data_root=data_root, split_seed=split_seed,
                                     featurizer=featurizer)
    return load_csv_task(name, smiles_column=smiles_column, target_columns=target_columns, task_type=task_type,
                         split=split, split_seed=split_seed, featurizer=featurizer)


register_task_family("chem", "csv", is_custom_dataset, load_task, describe="a CSV file path, or moleculeace:NAME")
