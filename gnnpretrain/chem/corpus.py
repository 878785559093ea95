"""Unlabelled pre-training corpora (SMILES files) featurized once into a memory-mapped :class:`GraphStore`.

Sources (``load_corpus(name_or_path, ...)``):

* ``"zinc"`` — the MOSES ZINC "clean leads" SMILES in ``<data_root>/zinc/``: ``moses_train.csv.gz``,
  ``moses_test.csv.gz``, ``moses_test_scaffolds.csv.gz`` read in that fixed order (1,936,962 molecules);
  downloaded (12.9 MB, sha256-checked, :mod:`gnnpretrain.chem.download`) when missing.
* ``"zinc_standard_agent"`` — the paper's own 2M-molecule ZINC15 file (gzipped CSV with ``smiles`` and
  ``zinc_id``) at ``<data_root>/zinc_standard_agent/raw/zinc_combined_apr_8_2019.csv.gz`` (or the only
  ``.csv``/``.csv.gz`` file in that ``raw/`` folder), as distributed in the reference's
  ``chem_dataset.zip``.
* any CSV path (plain or gzipped), with ``smiles_column`` naming the SMILES column (by default the one
  column called ``smiles``, ``mol`` or ``canonical_smiles`` in any case, or the only column; two such
  columns are an error asking for ``--smiles-column``). A ragged or cut row is an error naming the
  file and line (:mod:`gnnpretrain.chem.csvio`).

``max_molecules=N`` keeps a fixed-seed uniform random sample of N rows (seed :data:`SUBSET_SEED`), kept in
file order, so that small subsets are representative of the whole file rather than of its first rows,
and the same N always gives the same molecules.

Featurization runs once, in ``num_workers`` processes over chunks of SMILES, and writes flat arrays
(:class:`gnnpretrain.data.GraphStore`) to ``<cache>/corpus/<name>-<featurizer>-<N>-<key>/``; the key hashes
the source files' paths, sizes and modification times, the featurizer, the column, ``max_molecules`` and
the RDKit version, so a changed file, option or RDKit rebuilds. Chunks of featurized molecules are
saved as they finish in ``.partial-<store folder>/`` beside it, so an interrupted featurization (Ctrl-C,
a crash) continues where it stopped on the next call; the store itself is written to a temporary
folder and renamed, so an interrupted run never leaves a half-written cache. Later calls memory-map the
arrays (instant; pages are read as batches touch them). SMILES that RDKit cannot parse, or that the featurizer cannot encode, are skipped and
counted (``store.meta["num_skipped"]``, one warning); ``store.source_index`` maps every graph to its row
in the (subsetted) concatenation of the source files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from rdkit import rdBase

from gnnpretrain.chem.csvio import check_csv_shape, find_smiles_column
from gnnpretrain.chem.featurize import featurize_chunk, get_featurizer
from gnnpretrain.data.store import GraphStore
from gnnpretrain.errors import UserError
from gnnpretrain.outputs import ensure_writable
from gnnpretrain.paths import cache_dir, data_root, data_root_origin, missing_file_message

ZINC_FILES = ("moses_train.csv.gz", "moses_test.csv.gz", "moses_test_scaffolds.csv.gz")
ZINC_STANDARD_AGENT_FILE = "zinc_combined_apr_8_2019.csv.gz"
SUBSET_SEED = 0
CACHE_VERSION = 1
CHUNK_SIZE = 2000
_AGENT_URL = "http://snap.stanford.edu/gnn-pretrain/data/chem_dataset.zip"


def corpus_sources(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None,
                   download: bool = True, progress: bool = True) -> tuple[str, list[Path]]:
    """Resolve a corpus name or CSV path to ``(short name, [files in reading order])``.

    Missing MOSES ZINC files are downloaded (checked) into ``<data root>/zinc/`` unless
    ``download=False``; offline, the error lists what to fetch and where. ``zinc_standard_agent`` is
    fetched only on request (``python -m gnnpretrain.data fetch zinc_standard_agent``: 2.5 GB archive).
    """
    from gnnpretrain.chem import download as dl

    if str(name_or_path) == "zinc":
        zdir = data_root(root) / "zinc"
        files = [zdir / f for f in ZINC_FILES]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            if not download:
                raise FileNotFoundError(dl.zinc_offline_message(zdir, missing, origin=data_root_origin(root)))
            if progress:
                print(f"downloading the ZINC corpus (MOSES, {len(missing)} file(s)) into {zdir}", flush=True)
            dl.fetch_zinc(zdir, missing, progress=progress, origin=data_root_origin(root))
        return "zinc", files
    if str(name_or_path) == "zinc_standard_agent":
        raw = data_root(root) / "zinc_standard_agent" / "raw"
        f = raw / ZINC_STANDARD_AGENT_FILE
        if not f.is_file():
            found = sorted(raw.glob("*.csv*")) if raw.is_dir() else []
            if len(found) == 1:
                f = found[0]
            else:
                raise FileNotFoundError(
                    missing_file_message(f, "zinc_standard_agent corpus (the paper's ZINC15 2M molecules)", root=root)
                    + f" It is inside {_AGENT_URL} (dataset/zinc_standard_agent/raw/); "
                    "`python -m gnnpretrain.data fetch zinc_standard_agent` downloads that archive (2.5 GB) and "
                    "extracts it there. The default corpus, zinc (MOSES), is 12.9 MB."
                )
        return "zinc_standard_agent", [f]
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"corpus {str(name_or_path)!r} is neither a known name ('zinc', 'zinc_standard_agent') nor an "
            f"existing CSV file (looked for {path})"
        )
    name = path.name.split(".")[0] or "corpus"
    return name, [path]


def _pick_column(path: Path, smiles_column: str | None) -> str:
    """Check the file's shape (ragged or cut rows are an error naming the line, see
    :mod:`gnnpretrain.chem.csvio`) and return its SMILES column; two candidates are an error."""
    cols = check_csv_shape(path)
    return find_smiles_column(cols, smiles_column, path=path, allow_single=True)


def _read_single_column(path: Path) -> list[str] | None:
    """Fast path for one-column files without quoting or separators (MOSES): plain line splitting,
    ~3x faster than pandas. Returns ``None`` when the file does not have that simple shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        text = fh.read().decode()
    if "," in text or '"' in text:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    return lines


def read_smiles(files: Sequence[Path], smiles_column: str | None = None) -> list[str]:
    """All SMILES of ``files`` concatenated in order (missing cells become empty strings).

    Every file's shape is checked first; a ragged or cut row is a
    :class:`~gnnpretrain.errors.CSVFormatError` naming the file and line."""
    out: list[str] = []
    for f in files:
        fast = _read_single_column(f)
        if fast is not None:  # one field per line: no row can be ragged
            find_smiles_column([fast[0].strip()], smiles_column, path=f, allow_single=True)
            out.extend(fast[1:])
            continue
        col = _pick_column(f, smiles_column)
        s = pd.read_csv(f, usecols=[col], dtype={col: str}, keep_default_na=False)[col]
        out.extend(s.tolist())
    return out


def subset_indices(n: int, max_molecules: int | None) -> np.ndarray:
    """Row indices kept for ``max_molecules``: a fixed-seed uniform sample, in file order."""
    if max_molecules is None or max_molecules >= n:
        return np.arange(n)
    if max_molecules < 1:
        raise ValueError(f"max_molecules must be a positive integer or None; got {max_molecules}")
    rng = np.random.default_rng(SUBSET_SEED)
    return np.sort(rng.choice(n, size=max_molecules, replace=False))


def _narrow(a: np.ndarray) -> np.ndarray:
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if a.size == 0 or (info.min <= a.min() and a.max() <= info.max):
            return a.astype(dt)
    return a


def _featurize_chunk(args: tuple[list[str], str]):
    """Worker: featurize SMILES into flat numpy arrays (local edge numbering) + positions kept.

    Shares :func:`gnnpretrain.chem.featurize.featurize_chunk` with the MoleculeNet loader (one chunk
    converted to arrays at once, no per-molecule ``Data``); molecules without atoms are dropped too.
    """
    out = featurize_chunk(args)
    keep = out["n_nodes"] > 0
    if not keep.any():
        return None
    n_nodes, n_edges = out["n_nodes"], out["n_edges"]
    x, e = out["x"], out["edges"]
    if not keep.all():  # drop the rows of atom-less molecules (they have no atoms and no edges)
        n_nodes, n_edges = n_nodes[keep], n_edges[keep]
    kept = np.asarray(out["kept"], dtype=np.int64)[keep]
    # narrow before returning: the full corpus as int64 would need ~4 GB in the parent process
    return (
        _narrow(x),
        _narrow(np.ascontiguousarray(e[:, :2].T)),
        _narrow(np.ascontiguousarray(e[:, 2:])),
        n_nodes,
        n_edges,
        kept,
    )


_CHUNK_KEYS = ("x", "edge_index", "edge_attr", "n_nodes", "n_edges", "kept")


def _save_chunk(path: Path, result) -> None:
    """One featurized chunk as ``.npz``, written atomically (an interrupted write leaves no file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    arrays = dict(zip(_CHUNK_KEYS, result)) if result is not None else {"empty": np.zeros(0)}
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def _load_chunk(path: Path):
    """A chunk saved by :func:`_save_chunk`; ``False`` if the file is unreadable (recompute it)."""
    try:
        with np.load(path) as z:
            if "empty" in z.files:
                return None
            return tuple(z[k] for k in _CHUNK_KEYS)
    except (OSError, ValueError, KeyError, EOFError):
        return False


def featurization_workers(num_workers: int | None, num_chunks: int) -> int:
    """Processes for featurization: as asked, else the cores not busy with other work."""
    if num_workers is None:
        from gnnpretrain.runtime import busy_neighbours, current_busy, usable_cores

        num_workers = max(1, min(usable_cores() - busy_neighbours(current_busy()), 16))
    return max(1, min(int(num_workers), num_chunks))


def featurize_to_store(
    smiles: Sequence[str],
    featurizer: str = "reference",
    num_workers: int | None = None,
    progress: bool = True,
    desc: str = "featurize",
    chunk_dir: str | os.PathLike | None = None,
) -> tuple[GraphStore, int]:
    """Featurize ``smiles`` (in parallel for large inputs) into an in-memory store; also return #skipped.

    With ``chunk_dir``, every chunk of :data:`CHUNK_SIZE` SMILES is saved there as it is done and
    chunks already there are read back instead of recomputed, so an interrupted featurization
    continues where it stopped (the caller keys the folder by everything that changes the result).
    """
    from tqdm.auto import tqdm

    from gnnpretrain.runtime import ignore_interrupts_in_worker, interrupt_note

    get_featurizer(featurizer)  # fail fast on an unknown name
    starts = list(range(0, len(smiles), CHUNK_SIZE))
    results: dict[int, object] = {}
    folder = Path(chunk_dir) if chunk_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(len(starts)):
            f = folder / f"{i:06d}.npz"
            if f.is_file():
                r = _load_chunk(f)
                if r is not False:
                    results[i] = r
    todo = [i for i in range(len(starts)) if i not in results]
    num_workers = featurization_workers(num_workers, max(1, len(todo)))
    done_mols = sum(min(CHUNK_SIZE, len(smiles) - starts[i]) for i in results)
    bar = tqdm(total=len(smiles), initial=done_mols, desc=desc, unit="mol", disable=not progress, mininterval=2.0)

    def note() -> str:
        if folder is None:
            return f"featurization stopped after {bar.n:,} of {len(smiles):,} molecules (nothing kept)"
        return (f"{bar.n:,} of {len(smiles):,} molecules featurized and saved in {folder}; "
                "the same command continues from there")

    def chunk(i: int) -> tuple[list[str], str]:
        return list(smiles[starts[i]: starts[i] + CHUNK_SIZE]), featurizer

    def keep(i: int, r) -> None:
        results[i] = r
        if folder is not None:
            _save_chunk(folder / f"{i:06d}.npz", r)
        bar.update(min(CHUNK_SIZE, len(smiles) - starts[i]))

    with interrupt_note(note):
        if num_workers == 1:
            for i in todo:
                keep(i, _featurize_chunk(chunk(i)))
        elif todo:
            with mp.get_context("fork").Pool(num_workers, initializer=ignore_interrupts_in_worker) as pool:
                for i, r in zip(todo, pool.imap(_featurize_chunk, (chunk(i) for i in todo))):
                    keep(i, r)
    bar.close()
    results = [results[i] for i in range(len(starts))]
    parts = [(start, r) for start, r in zip(range(0, len(smiles), CHUNK_SIZE), results) if r is not None]
    num_kept = sum(len(r[5]) for _, r in parts)
    skipped = len(smiles) - num_kept
    if num_kept == 0:
        raise ValueError(
            f"{desc}: none of the {len(smiles)} SMILES could be parsed and featurized "
            f"(featurizer {featurizer!r}); the corpus is empty — check the file and the SMILES column"
        )
    n_nodes = np.concatenate([r[3] for _, r in parts])
    n_edges = np.concatenate([r[4] for _, r in parts])
    node_ptr = torch.zeros(num_kept + 1, dtype=torch.long)
    node_ptr[1:] = torch.from_numpy(np.cumsum(n_nodes))
    edge_ptr = torch.zeros(num_kept + 1, dtype=torch.long)
    edge_ptr[1:] = torch.from_numpy(np.cumsum(n_edges))
    store = GraphStore.from_arrays(
        x=torch.from_numpy(np.concatenate([r[0] for _, r in parts])),
        edge_index_local=torch.from_numpy(np.concatenate([r[1] for _, r in parts], axis=1)),
        node_ptr=node_ptr,
        edge_ptr=edge_ptr,
        edge_attr=torch.from_numpy(np.concatenate([r[2] for _, r in parts])),
        source_index=torch.from_numpy(np.concatenate([r[5] + start for start, r in parts])),
        dtypes={"x": torch.long, "edge_index": torch.long, "edge_attr": torch.long},
    )
    return store, skipped


def _cache_key(files: Sequence[Path], featurizer: str, max_molecules: int | None, smiles_column: str | None) -> str:
    info = {
        "version": CACHE_VERSION,
        "files": [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files],
        "featurizer": featurizer,
        "max_molecules": max_molecules,
        "smiles_column": smiles_column,
        "subset_seed": SUBSET_SEED,
        "rdkit": rdBase.rdkitVersion,  # parsing/aromaticity can change between RDKit releases
    }
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


def load_corpus(
    name_or_path: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    max_molecules: int | None = None,
    smiles_column: str | None = None,
    featurizer: str = "reference",
    num_workers: int | None = None,
    progress: bool = True,
    download: bool = True,
) -> GraphStore:
    """Featurized pre-training corpus as a memory-mapped :class:`GraphStore` (see module docstring).

    ``download``: fetch missing MOSES ZINC files (see :func:`corpus_sources`)."""
    get_featurizer(featurizer)
    if max_molecules is not None and max_molecules < 1:
        raise ValueError(f"max_molecules must be a positive integer or None; got {max_molecules}")
    name, files = corpus_sources(name_or_path, data_root, download=download, progress=progress)
    key = _cache_key(files, featurizer, max_molecules, smiles_column)
    target = cache_dir(cache) / "corpus" / f"{name}-{featurizer}-{max_molecules or 'all'}-{key}"
    if (target / "meta.json").is_file():
        try:
            return GraphStore.load(target)
        except (UserError, OSError, ValueError) as exc:  # damaged or old cache: say so once and rebuild
            warnings.warn(f"corpus cache {target} is damaged ({exc}); rebuilding it", stacklevel=2)
    ensure_writable(target.parent, what="cache folder", option="--cache")  # before the long featurization
    from gnnpretrain.cachelock import build_lock

    # one builder per store: a parallel process (pytest worker, DDP rank, another job) waits, then loads it
    with build_lock(target, what=f"the {name} corpus cache"):
        if (target / "meta.json").is_file():
            try:
                return GraphStore.load(target)
            except (UserError, OSError, ValueError):
                pass  # damaged (warned above): rebuild
        return _build_corpus(name, files, target, featurizer, max_molecules, smiles_column, num_workers, progress)


def _build_corpus(name: str, files: list[Path], target: Path, featurizer: str, max_molecules: int | None,
                  smiles_column: str | None, num_workers: int | None, progress: bool) -> GraphStore:
    """Featurize the corpus (chunked, resumable) and save it as the store at ``target``."""
    # read_smiles checks every file's shape and column before the (long) featurization
    smiles = read_smiles(files, smiles_column)
    if not smiles:
        raise ValueError(f"corpus {name!r}: the source files {[str(f) for f in files]} hold no rows")
    rows = subset_indices(len(smiles), max_molecules)
    chosen = [smiles[i] for i in rows]
    partial = target.with_name(f".partial-{target.name}")
    workers = featurization_workers(num_workers, -(-len(chosen) // CHUNK_SIZE))
    if progress:
        print(announce_featurization(name, len(chosen), workers, partial), flush=True)
    try:
        store, skipped = featurize_to_store(chosen, featurizer, workers, progress, desc=f"featurize {name}",
                                            chunk_dir=partial)
    except ValueError:  # an empty corpus: the saved chunks are of no use
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if skipped:
        warnings.warn(
            f"corpus {name!r}: skipped {skipped} of {len(chosen)} SMILES that RDKit could not parse or the "
            f"{featurizer!r} featurizer could not encode",
            stacklevel=3,
        )
    store.source_index = torch.from_numpy(rows)[store.source_index]
    store.meta = {
        "name": name,
        "files": [str(f) for f in files],
        "featurizer": featurizer,
        "max_molecules": max_molecules,
        "subset_seed": SUBSET_SEED,
        "num_rows": len(smiles),
        "num_selected": len(chosen),
        "num_skipped": skipped,
        "source_index": "row in the concatenation of the source files",
    }
    store.save(target)
    shutil.rmtree(partial, ignore_errors=True)
    return GraphStore.load(target)


#: Molecules featurized per second by one process (reference featurizer, MOSES ZINC; measured on this
#: project's 2-core machine — only used for the rough time announced before featurizing).
FEATURIZE_RATE_PER_PROCESS = 1000.0


def announce_featurization(name: str, num: int, workers: int, partial: Path | None = None) -> str:
    """The line printed before featurizing: how much, a rough time, and that it resumes."""
    seconds = num / (FEATURIZE_RATE_PER_PROCESS * max(1, workers))
    rough = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(seconds, 1):.0f} s"
    line = (f"featurizing {num:,} {name} molecules with {workers} process{'es' if workers > 1 else ''} "
            f"(roughly {rough} here; done once, then read from the cache")
    if partial is not None:
        line += "; an interrupted run continues where it stopped"
    return line + ")"
