"""Reading protein–protein interaction (PPI) networks with STRING evidence channels.

Why this module exists: the paper's ego-networks carry, on every edge, 7 binary STRING evidence
channels. Public STRING data comes in two layouts, and both are read here into one in-memory form,
:class:`PPINetwork` (undirected, one row per protein pair, 7 binary channels, a confidence score used
to rank neighbours, and a species id per protein):

* the **dmfind/Bioconductor export** shipped under ``<data_root>/bio/string_human/``: columns
  ``id_1, id_2`` (Entrez gene ids) and 11 channel columns, some split into a direct and a
  ``*_transferred`` (evidence transferred from orthologs in other species) part, plus
  ``combined_score``; text mining is absent from that file.
* the **STRING download** ``<taxid>.protein.links.detailed.v12.0.txt(.gz)``: space-separated columns
  ``protein1 protein2 neighborhood fusion cooccurence coexpression experimental database
  textmining combined_score`` with ids ``<taxid>.<ENSP…>``. Several of these files (one per species)
  make a multi-species network; the species comes from the id prefix.

Binarisation rule (documented in bio/README.md): channel ``c`` is 1 when
``max(score_c, score_c_transferred) > threshold_c`` (default threshold 0, i.e. "any evidence of this
kind, direct or transferred from orthologs"). ``homology`` is not one of the paper's 7 channels and is
dropped. A channel missing from the input is all zeros and listed in ``PPINetwork.absent_channels``.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

#: The paper's 7 STRING channels, in the reference's edge-feature column order (w1..w7).
CHANNELS: tuple[str, ...] = (
    "neighborhood",
    "fusion",
    "cooccurrence",
    "coexpression",
    "experimental",
    "database",
    "textmining",
)

#: Input column names accepted for each channel (direct evidence). STRING spells co-occurrence
#: "cooccurence"; the dmfind export calls the experimental channel "experiments".
_DIRECT_ALIASES: dict[str, tuple[str, ...]] = {
    "neighborhood": ("neighborhood",),
    "fusion": ("fusion",),
    "cooccurrence": ("cooccurence", "cooccurrence"),
    "coexpression": ("coexpression",),
    "experimental": ("experimental", "experiments"),
    "database": ("database",),
    "textmining": ("textmining", "text_mining"),
}

HUMAN_TAXID = 9606


@dataclass
class PPINetwork:
    """An undirected PPI network over proteins ``0..num_proteins-1``.

    ``edges`` is ``[M, 2]`` int64 with ``edges[:, 0] < edges[:, 1]`` and no duplicates;
    ``channels`` is ``[M, 7]`` uint8 (0/1) in :data:`CHANNELS` order; ``score`` is ``[M]`` float32
    (STRING combined score, used only to rank neighbours when ego-networks are capped);
    ``protein_ids`` are the original identifiers (Entrez ids or STRING ids, as strings);
    ``species`` is ``[num_proteins]`` int64 (NCBI taxonomy id).
    """

    edges: np.ndarray
    channels: np.ndarray
    score: np.ndarray
    protein_ids: list[str]
    species: np.ndarray
    absent_channels: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def num_proteins(self) -> int:
        return len(self.protein_ids)

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    def index_of(self) -> dict[str, int]:
        """Map original protein id → node index."""
        return {p: i for i, p in enumerate(self.protein_ids)}


def _open_table(path: Path, sep: str | None) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(
            f"PPI edge file not found: {path}. Expected a STRING edge table (the dmfind export "
            f"string_v12_human_ppi.edges.tsv.gz or a STRING <taxid>.protein.links.detailed file)."
        )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        head = fh.readline()
    if sep is None:
        sep = "\t" if "\t" in head else r"\s+"
    return pd.read_csv(path, sep=sep, engine="c" if sep == "\t" else "python", dtype={0: str, 1: str})


def binarize_channels(
    df: pd.DataFrame, thresholds: Sequence[float] | float = 0.0
) -> tuple[np.ndarray, list[str]]:
    """Turn STRING channel score columns into the paper's 7 binary channels.

    A channel is 1 when the larger of its direct and ``*_transferred`` scores exceeds the threshold.
    Returns ``(channels [M, 7] uint8, absent channel names)``.
    """
    if np.isscalar(thresholds):
        thr = [float(thresholds)] * len(CHANNELS)
    else:
        thr = [float(t) for t in thresholds]
        if len(thr) != len(CHANNELS):
            raise ValueError(f"thresholds must be one number or {len(CHANNELS)} numbers ({CHANNELS}); got {len(thr)}")
    cols = {c.lower(): c for c in df.columns}
    out = np.zeros((len(df), len(CHANNELS)), dtype=np.uint8)
    absent: list[str] = []
    for k, name in enumerate(CHANNELS):
        found = [cols[a] for a in _DIRECT_ALIASES[name] if a in cols]
        found += [cols[a + "_transferred"] for a in _DIRECT_ALIASES[name] if a + "_transferred" in cols]
        if not found:
            absent.append(name)
            continue
        best = df[found].to_numpy(dtype=np.float64).max(axis=1)
        out[:, k] = best > thr[k]
    return out, absent


def _species_of(ids: Sequence[str], default: int) -> np.ndarray:
    """Species from ``<taxid>.<protein>`` ids; ids without a numeric prefix get ``default``."""
    sp = np.full(len(ids), default, dtype=np.int64)
    for i, p in enumerate(ids):
        head, dot, _ = p.partition(".")
        if dot and head.isdigit():
            sp[i] = int(head)
    return sp


def read_string_edges(
    paths: str | Path | Sequence[str | Path],
    thresholds: Sequence[float] | float = 0.0,
    min_combined_score: float = 0.0,
    default_species: int = HUMAN_TAXID,
) -> PPINetwork:
    """Read one or more STRING edge tables into a :class:`PPINetwork`.

    Pairs listed twice (STRING lists both directions) are merged by taking the channel-wise maximum.
    Self-interactions are dropped. ``min_combined_score`` filters weak edges before anything else.
    Proteins are numbered in sorted id order, so the numbering does not depend on the file order.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = []
    absent_all: set[str] | None = None
    for p in paths:
        df = _open_table(Path(p), None)
        cols = {c.lower(): c for c in df.columns}
        a = cols.get("id_1", cols.get("protein1"))
        b = cols.get("id_2", cols.get("protein2"))
        if a is None or b is None:
            raise ValueError(
                f"{p}: expected the two protein columns to be named id_1/id_2 (dmfind export) or "
                f"protein1/protein2 (STRING download); found columns {list(df.columns)}"
            )
        score_col = cols.get("combined_score")
        score = df[score_col].to_numpy(np.float32) if score_col else np.ones(len(df), np.float32)
        ch, absent = binarize_channels(df, thresholds)
        absent_all = set(absent) if absent_all is None else absent_all & set(absent)
        keep = score >= min_combined_score
        frames.append(
            pd.DataFrame(
                {"a": df[a].astype(str).to_numpy()[keep], "b": df[b].astype(str).to_numpy()[keep], "score": score[keep]}
            ).join(pd.DataFrame(ch[keep], columns=list(CHANNELS)))
        )
    df = pd.concat(frames, ignore_index=True)
    df = df[df.a != df.b]
    ids = np.unique(np.concatenate([df.a.to_numpy(), df.b.to_numpy()]))
    # Sort numerically when every id is an integer (Entrez), else lexicographically.
    if all(s.isdigit() for s in ids):
        ids = ids[np.argsort(ids.astype(np.int64), kind="stable")]
    pos = {p: i for i, p in enumerate(ids)}
    ia = df.a.map(pos).to_numpy(np.int64)
    ib = df.b.map(pos).to_numpy(np.int64)
    lo, hi = np.minimum(ia, ib), np.maximum(ia, ib)
    merged = (
        pd.DataFrame({"lo": lo, "hi": hi, "score": df.score.to_numpy()})
        .join(df[list(CHANNELS)].reset_index(drop=True))
        .groupby(["lo", "hi"], sort=True)
        .max()
        .reset_index()
    )
    species = _species_of(list(ids), default_species)
    return PPINetwork(
        edges=merged[["lo", "hi"]].to_numpy(np.int64),
        channels=merged[list(CHANNELS)].to_numpy(np.uint8),
        score=merged["score"].to_numpy(np.float32),
        protein_ids=[str(s) for s in ids],
        species=species,
        absent_channels=sorted(absent_all or [], key=CHANNELS.index),
        source=", ".join(str(p) for p in paths),
    )


def human_string_path(root: Path) -> Path:
    """Where the shipped STRING v12 human network lives under a data root."""
    return Path(root) / "bio" / "string_human" / "string_v12_human_ppi.edges.tsv.gz"
