"""The 8 MoleculeNet classification benchmarks of the paper as PyG ``InMemoryDataset``s.

Raw CSVs are read from ``<data_root>/moleculenet/`` (cleaned names such as ``bbbp.csv`` or the
official ones such as ``BBBP.csv``, plain or gzipped); processed tensors go to a separate writable
cache (``gnnpretrain.paths.cache_dir``), because the data root may be read-only. The processed file
name encodes the featurizer, a format version, the RDKit version (parsing changes between RDKit
releases) and a hash of the raw file's bytes, so editing or replacing the raw file reprocesses it.

Columns are found by name, not position: the SMILES column is ``smiles`` or ``mol`` (any case) and
each dataset has its task list (``TASKS``; ToxCast and SIDER use every non-SMILES, non-metadata
column and check the count). Rows whose SMILES RDKit cannot parse, or that the featurization
cannot encode (see :mod:`gnnpretrain.chem.featurize`), are skipped and reported in one warning;
labels of the kept rows stay aligned with ``.smiles``. Labels are ``0.``/``1.``/``nan`` in ``y [1, T]``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import rdkit
import torch
from torch_geometric.data import Data, InMemoryDataset
from tqdm.auto import tqdm

from gnnpretrain.chem import download as _dl
from gnnpretrain.errors import CorruptFileError, UserError
from gnnpretrain.outputs import ensure_writable
from gnnpretrain.safeload import load_torch
from gnnpretrain.chem.csvio import CSVFormatError, find_label_columns, find_smiles_column, read_csv_checked
from gnnpretrain.chem.featurize import FEATURE_DIMS, featurize_chunk, get_featurizer
from gnnpretrain.paths import cache_dir, data_root, missing_file_message
from gnnpretrain.utils import atomic_torch_save

MOLECULENET_NAMES = ("bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace")
FORMAT_VERSION = 2

SMILES_COLUMNS = ("smiles", "mol")
# Columns of the official layouts that are neither SMILES nor tasks.
METADATA_COLUMNS = frozenset(
    c.lower() for c in ("mol_id", "num", "name", "CID", "Model", "pIC50", "activity", "id", "index", "Unnamed: 0")
)

TASKS: dict[str, tuple[str, ...] | None] = {
    "bbbp": ("p_np",),
    "tox21": (
        "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
        "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
    ),
    "toxcast": None,  # all 617 assay columns, in file order
    "sider": None,  # all 27 side-effect columns, in file order
    "clintox": ("FDA_APPROVED", "CT_TOX"),
    "muv": (
        "MUV-466", "MUV-548", "MUV-600", "MUV-644", "MUV-652", "MUV-689", "MUV-692", "MUV-712",
        "MUV-713", "MUV-733", "MUV-737", "MUV-810", "MUV-832", "MUV-846", "MUV-852", "MUV-858", "MUV-859",
    ),
    "hiv": ("HIV_active",),
    "bace": ("Class",),
}
NUM_TASKS = {"bbbp": 1, "tox21": 12, "toxcast": 617, "sider": 27, "clintox": 2, "muv": 17, "hiv": 1, "bace": 1}

# Above this many rows processing uses a process pool (when more than one CPU is available).
PARALLEL_THRESHOLD = 20_000
_CHUNK = 2_000


def check_name(name: str) -> str:
    """Normalise and validate a dataset name (clear error listing the valid ones)."""
    key = str(name).lower()
    if key not in MOLECULENET_NAMES:
        raise ValueError(f"unknown MoleculeNet dataset {name!r}; expected one of {', '.join(MOLECULENET_NAMES)}")
    return key


def raw_candidates(name: str, root: Path) -> list[Path]:
    """Where the raw file of ``name`` may be, in order of preference."""
    official = _dl.MOLECULENET_FILES[name].filename
    base = official[:-3] if official.endswith(".gz") else official
    names = [f"{name}.csv", f"{name}.csv.gz", official, base, base + ".gz"]
    seen: list[Path] = []
    for n in names:
        p = root / "moleculenet" / n
        if p not in seen:
            seen.append(p)
    return seen


def find_raw_file(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Locate (or, with ``download=True``, fetch) the raw CSV of a MoleculeNet dataset."""
    name = check_name(name)
    droot = data_root(root)
    for cand in raw_candidates(name, droot):
        if cand.is_file():
            return cand
    remote = _dl.MOLECULENET_FILES[name]
    dest = droot / "moleculenet" / remote.filename
    # the message names the file as the README lists it (bbbp.csv), then the other accepted names
    wanted, *others = raw_candidates(name, droot)
    also = [p.name for p in others]
    if not download:
        raise FileNotFoundError(missing_file_message(wanted, f"MoleculeNet {name}", remote.url, root=root, also=also))
    try:
        return _dl.fetch(remote, dest)
    except OSError as exc:
        raise FileNotFoundError(
            missing_file_message(wanted, f"MoleculeNet {name}", None, root=root, also=also)
            + f" The download from {remote.url} failed ({_dl.failure_reason(exc)})."
        ) from None


def _find_smiles_column(columns: list[str], path: Path) -> str:
    # a benchmark table has exactly one SMILES column; two candidates mean a hand-edited file
    return find_smiles_column(columns, path=path, candidates=SMILES_COLUMNS, option=None)


def _task_columns(name: str, columns: list[str], smiles_col: str, path: Path) -> list[str]:
    wanted = TASKS[name]
    if wanted is None:
        tasks = [c for c in columns if c != smiles_col and c.lower() not in METADATA_COLUMNS]
    else:
        missing = [t for t in wanted if t not in columns]
        if missing:
            raise CSVFormatError(
                f"{path}: MoleculeNet {name} needs task columns {list(wanted)}; missing {missing} "
                f"(found columns {columns[:10]}{' …' if len(columns) > 10 else ''})"
            )
        tasks = find_label_columns(columns, wanted, path=path, what=f"MoleculeNet {name} task")
    if len(tasks) != NUM_TASKS[name]:
        raise ValueError(
            f"{path}: MoleculeNet {name} should have {NUM_TASKS[name]} task columns, found {len(tasks)} "
            f"(non-SMILES, non-metadata columns); is this the right file?"
        )
    return tasks


def _labels(df: pd.DataFrame, tasks: list[str], path: Path) -> np.ndarray:
    """Task columns as float32 with values 0, 1, nan; anything else is an error naming the column."""
    out = np.empty((len(df), len(tasks)), dtype=np.float32)
    for k, col in enumerate(tasks):
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad_mask = (num.isna() & raw.notna()) | (num.notna() & ~num.isin([0, 1]))
        if bad_mask.any():
            bad = pd.unique(raw[bad_mask].astype(str))
            raise ValueError(
                f"{path}: label column {col!r} has values other than 0, 1 or empty in {int(bad_mask.sum())} rows, "
                f"e.g. {list(bad[:5])}; expected binary labels (0/1, 0.0/1.0) with empty cells for missing"
            )
        out[:, k] = num.to_numpy(dtype=np.float32, na_value=np.nan)
    return out


def read_table(name: str, path: str | os.PathLike) -> tuple[list[str], np.ndarray, list[str]]:
    """Read a MoleculeNet CSV (any supported layout) → (raw SMILES, labels [n, T], task names)."""
    path = Path(path)
    df = read_csv_checked(path, low_memory=False)  # ragged / cut rows: CSVFormatError naming the line
    columns = [str(c) for c in df.columns]
    smiles_col = _find_smiles_column(columns, path)
    tasks = _task_columns(name, columns, smiles_col, path)
    y = _labels(df, tasks, path)
    smiles = ["" if not isinstance(s, str) else s for s in df[smiles_col].tolist()]
    return smiles, y, tasks


def _default_workers(n: int) -> int:
    if n < PARALLEL_THRESHOLD:
        return 0
    from gnnpretrain.runtime import busy_neighbours, current_busy, usable_cores

    free = usable_cores() - busy_neighbours(current_busy())  # cores not busy with other work (other tests, jobs)
    return min(4, free) if free > 1 else 0


def build(
    name: str,
    raw_path: str | os.PathLike,
    featurizer: str = "reference",
    num_workers: int | None = None,
    progress: bool | None = None,
) -> dict:
    """Featurize a raw file into the processed payload (plain tensors, lists and ints)."""
    smiles, y, tasks = read_table(name, raw_path)
    n = len(smiles)
    chunks = [(smiles[s : s + _CHUNK], featurizer) for s in range(0, n, _CHUNK)]
    workers = _default_workers(n) if num_workers is None else num_workers
    show = (n > 5_000) if progress is None else progress
    bar = tqdm(total=n, desc=f"featurizing {name}", unit="mol", disable=not show)
    results = []
    if workers and workers > 1 and len(chunks) > 1:
        with get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
            for res, (chunk, _) in zip(pool.imap(featurize_chunk, chunks), chunks):
                results.append(res)
                bar.update(len(chunk))
    else:
        for chunk in chunks:
            results.append(featurize_chunk(chunk))
            bar.update(len(chunk[0]))
    bar.close()

    kept, unparsable, unsupported = [], [], []
    for c, res in enumerate(results):
        off = c * _CHUNK
        kept += [off + i for i in res["kept"]]
        unparsable += [off + i for i in res["unparsable"]]
        unsupported += [off + i for i in res["unsupported"]]
    n_atom_feat, n_bond_feat = FEATURE_DIMS[featurizer]
    x = np.concatenate([r["x"] for r in results]) if results else np.zeros((0, n_atom_feat), np.int64)
    edges = np.concatenate([r["edges"] for r in results]) if results else np.zeros((0, 2 + n_bond_feat), np.int64)
    n_nodes = np.concatenate([r["n_nodes"] for r in results]) if results else np.zeros(0, np.int64)
    n_edges = np.concatenate([r["n_edges"] for r in results]) if results else np.zeros(0, np.int64)

    skipped = len(unparsable) + len(unsupported)
    if skipped:
        warnings.warn(
            f"MoleculeNet {name!r}: skipped {skipped} of {n} molecules in {raw_path} "
            f"({len(unparsable)} SMILES that RDKit cannot parse, {len(unsupported)} that the featurization "
            f"cannot encode, e.g. dummy atoms '*'); file rows (0-based, header excluded): "
            f"{sorted(unparsable + unsupported)[:20]}{' …' if skipped > 20 else ''}",
            stacklevel=3,
        )
    if not kept:
        raise ValueError(f"MoleculeNet {name!r}: no molecule of {raw_path} could be featurized")
    kept_arr = np.asarray(kept, dtype=np.int64)
    return {
        "format_version": FORMAT_VERSION,
        "featurizer": featurizer,
        "x": _compact(x),
        "edge_index": _compact(np.ascontiguousarray(edges[:, :2].T)),
        "edge_attr": _compact(np.ascontiguousarray(edges[:, 2:])),
        "y": torch.from_numpy(y[kept_arr]),
        "n_nodes": torch.from_numpy(n_nodes),
        "n_edges": torch.from_numpy(n_edges),
        "smiles": [smiles[i] for i in kept],
        "rows": torch.from_numpy(kept_arr),
        "task_names": list(tasks),
        "num_raw": n,
        "unparsable_rows": unparsable,
        "unsupported_rows": unsupported,
    }


def _compact(arr: np.ndarray) -> torch.Tensor:
    """Store non-negative integer features in the smallest dtype that holds them (the cache of MUV
    shrinks from ~200 MB to ~30 MB and loads faster); :meth:`MoleculeNet._set_payload` widens them
    back to ``long``."""
    hi = int(arr.max()) if arr.size else 0
    lo = int(arr.min()) if arr.size else 0
    if lo >= 0 and hi < 256:
        dtype = np.uint8
    elif -(2**15) <= lo and hi < 2**15:
        dtype = np.int16
    elif -(2**31) <= lo and hi < 2**31:
        dtype = np.int32
    else:
        dtype = np.int64
    return torch.from_numpy(arr.astype(dtype))


def _file_key(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def processed_path(name: str, raw_path: Path, featurizer: str, cache: str | os.PathLike | None = None) -> Path:
    """Cache location of the processed tensors for this raw file, featurizer, format and RDKit."""
    rd = rdkit.__version__.replace(".", "_")
    fname = f"{name}-{featurizer}-v{FORMAT_VERSION}-rdkit{rd}-{_file_key(raw_path)}.pt"
    return cache_dir(cache) / "moleculenet" / name / fname


def _remove_stale(current: Path, prefix: str) -> None:
    """Delete older processed files of the same dataset and featurizer (other format versions,
    RDKit versions or raw-file contents) so the cache does not grow with every change."""
    for old in current.parent.glob(f"{prefix}*.pt"):
        if old != current:
            try:
                old.unlink()
            except OSError:
                pass


def _read_payload(path: Path) -> dict:
    """Read a processed file safely (``weights_only=True``) and check it is whole: the format version
    and the sizes of its arrays must agree, else :class:`CorruptFileError` (the caller rebuilds)."""
    p = load_torch(path, what="processed cache")
    if not isinstance(p, dict) or p.get("format_version") != FORMAT_VERSION:
        found = p.get("format_version") if isinstance(p, dict) else type(p).__name__
        raise CorruptFileError(f"format {found!r}, this code reads {FORMAT_VERSION}")
    n = len(p["smiles"])
    if not (p["n_nodes"].numel() == p["n_edges"].numel() == p["y"].shape[0] == p["rows"].numel() == n
            and p["x"].shape[0] == int(p["n_nodes"].sum()) and p["edge_index"].shape[1] == int(p["n_edges"].sum())
            and p["edge_attr"].shape[0] == p["edge_index"].shape[1]):
        raise CorruptFileError("its arrays have inconsistent sizes")
    return p


class MoleculeNet(InMemoryDataset):
    """A MoleculeNet classification benchmark (``MOLECULENET_NAMES``) as an ``InMemoryDataset``.

    ``dataset[i]`` is a ``Data`` with ``x``, ``edge_index``, ``edge_attr`` (see the featurizer) and
    ``y`` float ``[1, T]`` (0/1/nan). ``.smiles[i]`` is the file's SMILES string for graph ``i``;
    ``.rows[i]`` its 0-based row in the raw file; ``.task_names``, ``.num_tasks``.

    Args:
        root: data root holding ``moleculenet/`` (default: ``gnnpretrain.paths.data_root()``).
        name: dataset name, case-insensitive.
        featurizer: ``"reference"`` (the paper's) or ``"ogb"``.
        cache: writable cache root for processed tensors (default ``gnnpretrain.paths.cache_dir()``).
        download: fetch a missing raw file from the official address (else a clear error).
        num_workers: processes for featurization (default: a pool for files over 20k rows).
        progress: show a progress bar while processing (default: for files over 5k rows).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        name: str = "bbbp",
        featurizer: str = "reference",
        cache: str | os.PathLike | None = None,
        download: bool = True,
        transform=None,
        num_workers: int | None = None,
        progress: bool | None = None,
    ) -> None:
        self.name = check_name(name)
        get_featurizer(featurizer)
        self.featurizer = featurizer
        super().__init__(None, transform)
        self.raw_path = find_raw_file(self.name, root, download=download)
        self.processed_path = processed_path(self.name, self.raw_path, featurizer, cache)
        payload = self._read_cache()
        if payload is None:
            # fail in the first second, not after featurizing, when the cache cannot be written
            ensure_writable(self.processed_path.parent, what="cache folder", option="--cache")
            from gnnpretrain.cachelock import build_lock

            # one builder per entry: a parallel process (pytest worker, seed job) waits, then reads it
            with build_lock(self.processed_path, what=f"MoleculeNet {self.name}"):
                payload = self._read_cache(warn=False)
                if payload is None:
                    payload = build(self.name, self.raw_path, featurizer, num_workers=num_workers, progress=progress)
                    atomic_torch_save(payload, self.processed_path)
                    _remove_stale(self.processed_path, f"{self.name}-{featurizer}-")
        self._set_payload(payload)

    def _read_cache(self, warn: bool = True) -> dict | None:
        if not self.processed_path.is_file():
            return None
        try:
            return _read_payload(self.processed_path)
        except (UserError, KeyError, TypeError, ValueError) as exc:  # damaged, foreign or unsafe: rebuild
            if warn:
                warnings.warn(f"MoleculeNet cache {self.processed_path} is damaged ({exc}); rebuilding it",
                              stacklevel=3)
            return None

    def _set_payload(self, p: dict) -> None:
        self._all_smiles: list[str] = list(p["smiles"])
        self._all_rows: torch.Tensor = p["rows"]
        self.task_names: list[str] = list(p["task_names"])
        self.num_raw: int = int(p["num_raw"])
        self.unparsable_rows: list[int] = list(p["unparsable_rows"])
        self.unsupported_rows: list[int] = list(p["unsupported_rows"])
        n = len(self.smiles)
        zero = torch.zeros(1, dtype=torch.long)
        node_ptr = torch.cat([zero, p["n_nodes"].cumsum(0)])
        edge_ptr = torch.cat([zero, p["n_edges"].cumsum(0)])
        self._data = Data(
            x=p["x"].long(), edge_index=p["edge_index"].long(), edge_attr=p["edge_attr"].long(), y=p["y"]
        )
        self.slices = {
            "x": node_ptr,
            "edge_index": edge_ptr,
            "edge_attr": edge_ptr,
            "y": torch.arange(n + 1, dtype=torch.long),
        }

    @property
    def smiles(self) -> list[str]:
        """SMILES of the graphs, in dataset order (also for a subset such as ``ds[train_idx]``)."""
        if self._indices is None:
            return self._all_smiles
        return [self._all_smiles[i] for i in self.indices()]

    @property
    def rows(self) -> torch.Tensor:
        """0-based raw-file row of each graph (also for a subset)."""
        if self._indices is None:
            return self._all_rows
        return self._all_rows[torch.as_tensor(list(self.indices()), dtype=torch.long)]

    @property
    def num_tasks(self) -> int:
        """Number of binary tasks (columns of ``y``)."""
        return len(self.task_names)

    @property
    def num_skipped(self) -> int:
        """Raw rows left out (unparseable or unencodable SMILES)."""
        return len(self.unparsable_rows) + len(self.unsupported_rows)

    def __repr__(self) -> str:
        return f"MoleculeNet({self.name}, {len(self)} molecules, {self.num_tasks} tasks, featurizer={self.featurizer})"
