"""ChEMBL as a multi-task *binary* data set for graph-level supervised pre-training.

The paper pre-trains graph-level on 456K ChEMBL molecules × 1,310 binary assays (its own
``chembl_filtered`` files). Those files are not redistributed here, so by default this module builds
a set *of the same kind* from DeepChem's ChEMBL subset in ``<data_root>/chembl/``:

* **Sources** (default): ``chembl_5thresh.csv.gz`` + ``chembl_sparse_ts_valid.csv.gz`` +
  ``chembl_sparse_ts_test.csv.gz`` — columns ``smiles`` + one column per ChEMBL target holding a
  pChEMBL-style activity (−log10 molar, 4–11); empty = not measured. The ``chembl_5thresh_ts_*``
  shards are a time split *of* ``chembl_5thresh`` and add nothing, so they are not read.
* **De-duplication**: molecules are identified by their standard InChIKey (so two SMILES spellings of
  one molecule merge); the first SMILES seen is kept as the representative.
* **Conflicts**: when one molecule has several values for one target (the files overlap), the
  **mean** of the values is taken, then binarized — the same rule DeepChem uses when it aggregates
  replicate measurements, and symmetric (neither optimistic like max nor pessimistic like min).
* **Binarization**: active (1) if the value is ``>= active_threshold`` (default 6.0, i.e. 1 µM),
  inactive (0) below, missing (NaN) if unmeasured.
* **Downstream exclusion** (on by default, like the paper): every molecule whose InChIKey occurs in
  the scaffold-split *test* set of any of the 8 MoleculeNet data sets is removed, so supervised
  pre-training never sees a molecule it is later evaluated on. The removed count is in ``.stats``.
* **Task filter**: keep targets with at least ``min_actives`` actives and ``min_inactives`` inactives
  (after the exclusion), then drop molecules left without any label.

Other inputs (``path=``):

* any CSV of SMILES + task columns; ``label_format`` says how to read the values: ``"activity"``
  (continuous, thresholded as above), ``"binary"`` (0/1/empty), ``"reference"`` (the paper's coding:
  1 active, −1 inactive, 0 missing), or ``"auto"`` (binary if every value is 0/1, reference if
  every value is in {−1, 0, 1} and some are −1, activity otherwise);
* the paper's processed ``chembl_filtered`` folder (``processed/smiles.csv`` +
  ``processed/geometric_data_processed.pt``, the layout snap-stanford/pretrain-gnns'
  ``MoleculeDataset`` writes): the labels (coded 1/−1/0) are read from the ``.pt`` file and the
  graphs are re-featurized from ``smiles.csv``. Reading that old pickle is best effort (it was made
  with PyG 1.x); if it fails, export SMILES + labels to a CSV and pass that instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from rdkit import Chem, RDLogger
from torch_geometric.data import Data, InMemoryDataset

from gnnpretrain.errors import CorruptFileError, UserError
from gnnpretrain.safeload import load_inmemory_dataset, load_legacy_pyg, save_inmemory_dataset
from gnnpretrain.chem.csvio import find_label_columns, find_smiles_column, read_csv_checked
from gnnpretrain.chem.featurize import UnsupportedMolecule, get_featurizer, parse_smiles
from gnnpretrain.paths import cache_dir, data_root, missing_file_message
from gnnpretrain.utils import atomic_write_json

DEFAULT_FILES: tuple[str, ...] = (
    "chembl_5thresh.csv.gz",
    "chembl_sparse_ts_valid.csv.gz",
    "chembl_sparse_ts_test.csv.gz",
)
DEFAULT_MIN_ACTIVES = 10
DEFAULT_MIN_INACTIVES = 10
LABEL_FORMATS = ("auto", "activity", "binary", "reference")
_VERSION = 1  # bump when the processing changes, to invalidate caches


# --------------------------------------------------------------------------------------------------
# molecule identity
# --------------------------------------------------------------------------------------------------
def inchikey(smiles: str) -> str | None:
    """Standard InChIKey of a SMILES string, or ``None`` if RDKit cannot parse it / make an InChI."""
    mol = parse_smiles(smiles)
    if mol is None:
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        key = Chem.MolToInchiKey(mol)
    except Exception:  # noqa: BLE001 - RDKit raises assorted errors for exotic molecules
        key = ""
    finally:
        RDLogger.EnableLog("rdApp.*")
    return key or None


def inchikeys(smiles_list: Iterable[str]) -> list[str | None]:
    return [inchikey(s) for s in smiles_list]


# --------------------------------------------------------------------------------------------------
# downstream test-set molecules
# --------------------------------------------------------------------------------------------------
def _files_fingerprint(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)};".encode())
    return h.hexdigest()[:16]


def downstream_test_inchikeys(
    datasets: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    split: str = "scaffold",
) -> dict[str, list[str]]:
    """InChIKeys of the molecules in each downstream data set's *test* split (cached as JSON).

    Uses the MoleculeNet loader and ``split_dataset`` of this package, so the test sets are exactly
    the ones fine-tuning evaluates on. The cache key includes the raw files' size and mtime.
    """
    from gnnpretrain.chem.moleculenet import MOLECULENET_NAMES, MoleculeNet
    from gnnpretrain.splits import split_dataset

    datasets = tuple(datasets) if datasets is not None else tuple(MOLECULENET_NAMES)
    droot = data_root(root)
    raw_dir = droot / "moleculenet"
    raw_files = sorted(p for p in raw_dir.glob("*") if p.is_file()) if raw_dir.is_dir() else []
    key = hashlib.sha256(
        json.dumps([sorted(datasets), split, str(droot.resolve()), _files_fingerprint(raw_files)]).encode()
    ).hexdigest()[:16]
    out = cache_dir(cache) / "chembl" / f"downstream_test_inchikeys_{key}.json"
    if out.exists():
        return json.loads(out.read_text())["inchikeys"]
    result: dict[str, list[str]] = {}
    for name in datasets:
        ds = MoleculeNet(root=root, name=name, cache=cache)
        _, _, test_idx = split_dataset(ds, method=split, seed=0)
        smiles = [ds.smiles[int(i)] for i in test_idx]
        result[name] = sorted({k for k in inchikeys(smiles) if k})
    atomic_write_json(out, {"datasets": list(datasets), "split": split, "inchikeys": result})
    return result


# --------------------------------------------------------------------------------------------------
# raw tables → long (molecule, task, value) records
# --------------------------------------------------------------------------------------------------
def _smiles_column(df: pd.DataFrame, path: Path, smiles_column: str | None = None) -> str:
    return find_smiles_column(
        list(df.columns), smiles_column, path=path, candidates=("smiles", "canonical_smiles", "mol"),
        option=None,
    )


def read_long(paths: Sequence[Path], smiles_column: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read wide CSVs (SMILES + task columns) into measured-only long records.

    Returns ``(records, task_order)`` with columns ``smiles, task, value``; ``task_order`` keeps the
    column order of first appearance. A ragged or cut row, two candidate SMILES columns (without
    ``smiles_column``) or a task named twice up to case is a :class:`~gnnpretrain.errors.CSVFormatError`.
    """
    frames, task_order, seen = [], [], set()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(missing_file_message(path, "ChEMBL"))
        df = read_csv_checked(path)
        scol = _smiles_column(df, path, smiles_column)
        tasks = find_label_columns(df.columns, [c for c in df.columns if c != scol], path=path, what="task")
        if not tasks:
            raise ValueError(f"{path}: expected task columns beside '{scol}', found none")
        for t in tasks:
            if t not in seen:
                seen.add(t)
                task_order.append(t)
        vals = df[tasks].apply(pd.to_numeric, errors="coerce")
        long = vals.assign(smiles=df[scol].astype(str)).melt(id_vars="smiles", var_name="task", value_name="value")
        frames.append(long.dropna(subset=["value"]))
    return pd.concat(frames, ignore_index=True), task_order


def binarize(values: np.ndarray, label_format: str, active_threshold: float) -> np.ndarray:
    """Map raw label values to 1 (active), 0 (inactive) or NaN (missing) by ``label_format``."""
    v = np.array(values, dtype=np.float64)  # a writable copy
    if label_format == "activity":
        return np.where(np.isnan(v), np.nan, (v >= active_threshold).astype(np.float64))
    if label_format == "binary":
        bad = ~np.isnan(v) & ~np.isin(v, (0.0, 1.0))
        if bad.any():
            raise ValueError(
                f"label_format='binary' expects 0/1/empty values, found e.g. {v[bad][:5].tolist()}; "
                "use label_format='activity' for continuous values or 'reference' for 1/-1/0"
            )
        return v
    if label_format == "reference":
        bad = ~np.isnan(v) & ~np.isin(v, (-1.0, 0.0, 1.0))
        if bad.any():
            raise ValueError(f"label_format='reference' expects 1/-1/0 values, found e.g. {v[bad][:5].tolist()}")
        out = np.full_like(v, np.nan)
        out[v == 1] = 1.0
        out[v == -1] = 0.0
        return out
    raise ValueError(f"unknown label_format {label_format!r}; choose one of {LABEL_FORMATS}")


def detect_label_format(values: np.ndarray) -> str:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size and np.isin(v, (0.0, 1.0)).all():
        return "binary"
    if v.size and np.isin(v, (-1.0, 0.0, 1.0)).all() and (v == -1).any():
        return "reference"
    return "activity"


def build_label_matrix(
    records: pd.DataFrame,
    task_order: Sequence[str],
    active_threshold: float = 6.0,
    min_actives: int = DEFAULT_MIN_ACTIVES,
    min_inactives: int = DEFAULT_MIN_INACTIVES,
    exclude_keys: Iterable[str] = (),
    label_format: str = "auto",
    keys: dict[str, str | None] | None = None,
) -> tuple[list[str], list[str], np.ndarray, dict]:
    """Long records → (smiles, task_names, y [N, T] of 0/1/NaN, stats), applying every rule above.

    ``keys`` maps SMILES → InChIKey (computed here when not given); molecules without a key (RDKit
    cannot parse them) are dropped and counted.
    """
    if label_format not in LABEL_FORMATS:
        raise ValueError(f"unknown label_format {label_format!r}; choose one of {LABEL_FORMATS}")
    if label_format == "auto":
        label_format = detect_label_format(records["value"].to_numpy())
    stats: dict = {"label_format": label_format, "measurements": int(len(records))}
    uniq = pd.unique(records["smiles"])
    if keys is None:
        keys = dict(zip(uniq, inchikeys(uniq)))
    rec = records.assign(key=records["smiles"].map(keys))
    stats["unparseable_smiles"] = int(sum(1 for s in uniq if not keys.get(s)))
    rec = rec.dropna(subset=["key"])
    rep = rec.drop_duplicates("key")[["key", "smiles"]]  # first SMILES seen represents the molecule
    stats["unique_smiles"] = int(len(uniq))
    stats["unique_molecules"] = int(len(rep))
    # conflicts: average the raw values of one molecule-target pair, then binarize
    agg = rec.groupby(["key", "task"], sort=False)["value"].agg(["mean", "count"]).reset_index()
    stats["conflicting_pairs"] = int((agg["count"] > 1).sum())
    if label_format in ("binary", "reference"):
        # averaging codes is meaningless; a pair with disagreeing codes becomes the mean (0.5) → missing
        lab = binarize(agg["mean"].to_numpy(), label_format, active_threshold)
        nonint = ~np.isin(agg["mean"].to_numpy(), (-1.0, 0.0, 1.0))
        lab[nonint] = np.nan
    else:
        lab = binarize(agg["mean"].to_numpy(), label_format, active_threshold)
    agg = agg.assign(label=lab).dropna(subset=["label"])
    # downstream exclusion
    exclude = set(exclude_keys)
    before = agg["key"].nunique()
    agg = agg[~agg["key"].isin(exclude)]
    stats["removed_downstream_molecules"] = int(before - agg["key"].nunique())
    # task filter
    counts = agg.groupby("task")["label"].agg(["sum", "count"])
    actives, inactives = counts["sum"], counts["count"] - counts["sum"]
    keep = set(counts.index[(actives >= min_actives) & (inactives >= min_inactives)])
    tasks = [t for t in task_order if t in keep]
    stats["tasks_total"] = int(len(task_order))
    stats["tasks_kept"] = int(len(tasks))
    agg = agg[agg["task"].isin(keep)]
    labelled = set(agg["key"])
    mol_keys = [k for k in rep["key"] if k in labelled]
    stats["molecules_without_labels_dropped"] = int(before - stats["removed_downstream_molecules"] - len(mol_keys))
    row = {k: i for i, k in enumerate(mol_keys)}
    col = {t: j for j, t in enumerate(tasks)}
    y = np.full((len(mol_keys), len(tasks)), np.nan, dtype=np.float32)
    if len(agg):
        y[agg["key"].map(row).to_numpy(np.int64), agg["task"].map(col).to_numpy(np.int64)] = agg["label"].to_numpy()
    smiles_of = dict(zip(rep["key"], rep["smiles"]))
    smiles = [smiles_of[k] for k in mol_keys]
    stats["labels"] = int((~np.isnan(y)).sum())
    stats["actives"] = int(np.nansum(y))
    return smiles, tasks, y, stats


def read_reference_processed(folder: Path) -> pd.DataFrame:
    """The paper's processed ``chembl_filtered`` folder → long records coded 1/−1/0 (best effort)."""
    proc = folder / "processed" if (folder / "processed").is_dir() else folder
    smiles_csv, pt = proc / "smiles.csv", proc / "geometric_data_processed.pt"
    for p in (smiles_csv, pt):
        if not p.exists():
            raise FileNotFoundError(
                f"{folder}: expected the reference layout processed/smiles.csv + processed/geometric_data_processed.pt; "
                f"{p} is missing. Alternatively pass a CSV of SMILES + task columns."
            )
    smiles = pd.read_csv(smiles_csv, header=None)[0].astype(str).tolist()
    try:
        data, slices = load_legacy_pyg(pt, what="reference ChEMBL processed file")
        y = vars(data).get("y")
        if y is None and hasattr(data, "_store"):
            y = data._store["y"]
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - old pickles fail in many ways
        raise ValueError(
            f"could not read labels from {pt} ({type(exc).__name__}: {exc}); it was written by PyG 1.x. "
            "Export SMILES + the 1310 label columns (1 active, -1 inactive, 0 missing) to a CSV and pass "
            "that path with label_format='reference'."
        ) from exc
    y = torch.as_tensor(y).view(len(smiles), -1).numpy().astype(np.float64)
    wide = pd.DataFrame(y, columns=[f"task_{j}" for j in range(y.shape[1])])
    wide.insert(0, "smiles", smiles)
    return wide.melt(id_vars="smiles", var_name="task", value_name="value").query("value != 0")


# --------------------------------------------------------------------------------------------------
# the data set
# --------------------------------------------------------------------------------------------------
class ChEMBL(InMemoryDataset):
    """Binary multi-task ChEMBL set (``y`` float ``[1, T]``: 1 active, 0 inactive, NaN missing).

    Parameters
    ----------
    root: the data root holding ``chembl/`` (and ``moleculenet/`` for the downstream exclusion).
    cache: where the processed tensors go (keyed by every option below).
    path: optional user input instead of the default DeepChem files: a CSV (or a list of CSVs) of
        SMILES + task columns, or the paper's ``chembl_filtered`` folder.
    downstream_datasets: MoleculeNet names whose scaffold test sets are excluded (default all 8).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        cache: str | os.PathLike | None = None,
        active_threshold: float = 6.0,
        min_actives: int = DEFAULT_MIN_ACTIVES,
        min_inactives: int = DEFAULT_MIN_INACTIVES,
        exclude_downstream: bool = True,
        featurizer: str = "reference",
        path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        label_format: str = "auto",
        downstream_datasets: Sequence[str] | None = None,
        transform=None,
    ) -> None:
        get_featurizer(featurizer)  # validate early
        if label_format not in LABEL_FORMATS:
            raise ValueError(f"unknown label_format {label_format!r}; choose one of {LABEL_FORMATS}")
        if min_actives < 0 or min_inactives < 0:
            raise ValueError(f"min_actives/min_inactives must be >= 0, got {min_actives}/{min_inactives}")
        self.data_root = data_root(root)
        self._root_arg = root
        self._cache_arg = cache
        self.active_threshold = float(active_threshold)
        self.min_actives, self.min_inactives = int(min_actives), int(min_inactives)
        self.exclude_downstream = bool(exclude_downstream)
        self.featurizer = featurizer
        self.label_format = label_format
        self.downstream_datasets = tuple(downstream_datasets) if downstream_datasets is not None else None
        self.sources = self._resolve_sources(path)
        config = {
            "version": _VERSION,
            "sources": [str(p.resolve()) for p in self.sources],
            "fingerprint": _files_fingerprint(
                [p for p in self.sources if p.is_file()] + [q for p in self.sources if p.is_dir() for q in p.rglob("*") if q.is_file()]
            ),
            "active_threshold": self.active_threshold,
            "min_actives": self.min_actives,
            "min_inactives": self.min_inactives,
            "exclude_downstream": self.exclude_downstream,
            "downstream_datasets": self.downstream_datasets,
            "featurizer": featurizer,
            "label_format": label_format,
            "data_root": str(self.data_root.resolve()),
        }
        self.config = config
        key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
        super().__init__(str(cache_dir(cache) / "chembl" / key), transform=transform)
        try:
            load_inmemory_dataset(self, self.processed_paths[0])
            meta = json.loads(Path(self.processed_paths[1]).read_text())
            if len(meta["smiles"]) != len(self):
                raise CorruptFileError(f"{self.processed_paths[1]} lists {len(meta['smiles'])} molecules, data.pt holds {len(self)}")
        except (UserError, OSError, ValueError, KeyError) as exc:  # damaged, foreign or unsafe: never run it, rebuild
            warnings.warn(f"ChEMBL cache {self.processed_dir} is damaged ({exc}); rebuilding it", stacklevel=2)
            self.process()
            load_inmemory_dataset(self, self.processed_paths[0])
            meta = json.loads(Path(self.processed_paths[1]).read_text())
        self.smiles: list[str] = meta["smiles"]
        self.task_names: list[str] = meta["task_names"]
        self.stats: dict = meta["stats"]

    def _resolve_sources(self, path) -> list[Path]:
        if path is None:
            return [self.data_root / "chembl" / f for f in DEFAULT_FILES]
        paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"ChEMBL input {p} does not exist (expected a CSV or a chembl_filtered folder)")
        return paths

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def raw_file_names(self) -> list[str]:
        return []

    @property
    def processed_file_names(self) -> list[str]:
        return ["data.pt", "meta.json"]

    def download(self) -> None:  # the raw files are read in place from the data root
        pass

    def process(self) -> None:
        frames, task_order = [], []
        label_format = self.label_format
        for src in self.sources:
            if src.is_dir():
                frames.append(read_reference_processed(src))
                task_order += [t for t in pd.unique(frames[-1]["task"]) if t not in task_order]
                if label_format == "auto":
                    label_format = "reference"
            else:
                rec, order = read_long([src])
                frames.append(rec)
                task_order += [t for t in order if t not in task_order]
        records = pd.concat(frames, ignore_index=True)
        uniq = pd.unique(records["smiles"])
        keys = dict(zip(uniq, inchikeys(uniq)))
        exclude: set[str] = set()
        per_dataset: dict[str, int] = {}
        if self.exclude_downstream:
            down = downstream_test_inchikeys(self.downstream_datasets, root=self._root_arg, cache=self._cache_arg)
            present = {k for k in keys.values() if k}
            for name, ks in down.items():
                exclude.update(ks)
                per_dataset[name] = len(present.intersection(ks))
        smiles, tasks, y, stats = build_label_matrix(
            records,
            task_order,
            active_threshold=self.active_threshold,
            min_actives=self.min_actives,
            min_inactives=self.min_inactives,
            exclude_keys=exclude,
            label_format=label_format,
            keys=keys,
        )
        stats["removed_downstream_by_dataset"] = per_dataset
        featurize = get_featurizer(self.featurizer)
        data_list, kept_smiles, kept_rows, skipped = [], [], [], 0
        for i, smi in enumerate(smiles):
            mol = parse_smiles(smi)
            try:
                g = featurize(mol) if mol is not None else None
            except UnsupportedMolecule:
                g = None
            if g is None:
                skipped += 1
                continue
            g.y = torch.from_numpy(y[i : i + 1].copy())
            data_list.append(g)
            kept_smiles.append(smi)
            kept_rows.append(i)
        if skipped:
            warnings.warn(f"ChEMBL: {skipped} molecules could not be featurized with {self.featurizer!r} and were skipped")
        stats["featurize_skipped"] = skipped
        stats["molecules"] = len(data_list)
        stats["tasks"] = len(tasks)
        if not data_list or not tasks:
            raise ValueError(
                f"ChEMBL: nothing left after filtering ({len(data_list)} molecules, {len(tasks)} tasks); "
                f"lower min_actives/min_inactives (now {self.min_actives}/{self.min_inactives}) or check the input"
            )
        save_inmemory_dataset(data_list, self.processed_paths[0])
        atomic_write_json(
            self.processed_paths[1], {"config": self.config, "smiles": kept_smiles, "task_names": tasks, "stats": stats}
        )

    def __repr__(self) -> str:
        return f"ChEMBL({len(self)} molecules, {self.num_tasks} tasks, threshold {self.active_threshold})"
