"""What raw data the project reads, whether it is here, where it was looked for, and how to get it.

``python -m gnnpretrain.data`` prints the table (:func:`status_report`); ``python -m gnnpretrain.data
fetch zinc`` (or ``moleculenet``, ``zinc_standard_agent``) downloads what can be downloaded, checked
against recorded checksums. Every entry names its files as the README's data table does (``bbbp.csv``)
and the other names the loaders accept (``BBBP.csv``, the official MoleculeNet file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gnnpretrain.paths import data_root, data_root_origin

__all__ = ["DataEntry", "catalog", "status", "status_report", "fetch_group", "GROUPS"]


@dataclass(frozen=True)
class DataEntry:
    """One raw file (or one of several accepted names) under the data root."""

    group: str
    folder: str
    names: tuple[str, ...]  # first = the README's name, then other accepted names
    used_by: str
    source: str  # URL or how to get it
    optional: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    def candidates(self, root: Path) -> list[Path]:
        return [root / self.folder / n for n in self.names]

    def found(self, root: Path) -> Path | None:
        for p in self.candidates(root):
            if p.is_file():
                return p
        return None


def catalog() -> list[DataEntry]:
    """Every raw file the library reads, in README order."""
    from gnnpretrain.chem import download as dl
    from gnnpretrain.chem.moleculenet import MOLECULENET_NAMES, raw_candidates

    out = []
    for name in MOLECULENET_NAMES:
        names = tuple(p.name for p in raw_candidates(name, Path(".")))
        out.append(DataEntry("moleculenet", "moleculenet", names, f"fine-tuning ({name})",
                             dl.MOLECULENET_FILES[name].url + " (downloaded when missing)"))
    for fname in dl.ZINC_REMOTE:
        out.append(DataEntry("zinc", "zinc", (fname,), "pre-training corpus zinc (default)",
                             dl.zinc_remote(fname).url + " (downloaded when missing, sha256-checked)"))
    out.append(DataEntry("zinc_standard_agent", "zinc_standard_agent/raw", ("zinc_combined_apr_8_2019.csv.gz",),
                         "pre-training corpus zinc_standard_agent (the paper's)",
                         f"{dl.CHEM_DATASET_ZIP.url} ({dl.ZINC_STANDARD_AGENT_MEMBER}; on request: "
                         "python -m gnnpretrain.data fetch zinc_standard_agent)", optional=True))
    for fname in ("chembl_5thresh.csv.gz", "chembl_sparse_ts_valid.csv.gz", "chembl_sparse_ts_test.csv.gz"):
        out.append(DataEntry("chembl", "chembl", (fname,), "supervised pre-training (chembl)",
                             "DeepChem's ChEMBL tables (see chem/DATASETS.md)", optional=True))
    out.append(DataEntry("bio", "bio/string_human", ("string_v12_human_ppi.edges.tsv.gz",), "bio ego-networks",
                         "STRING v12 human PPI (see bio/README.md)", optional=True))
    for fname in ("human_go_direct.tsv.gz", "go_parents.tsv.gz", "go_terms.tsv.gz"):
        out.append(DataEntry("bio", "bio/go_human", (fname,), "bio GO labels",
                             "Bioconductor org.Hs.eg.db / GO.db (see bio/README.md)", optional=True))
    return out


GROUPS = ("moleculenet", "zinc", "zinc_standard_agent", "chembl", "bio")


def status(root: str | os.PathLike | None = None) -> list[tuple[DataEntry, Path | None]]:
    """``(entry, the file found or None)`` for every catalogue entry."""
    droot = data_root(root)
    return [(e, e.found(droot)) for e in catalog()]


def status_report(root: str | os.PathLike | None = None) -> str:
    """The table ``python -m gnnpretrain.data`` prints: present / missing, where looked, how to get it."""
    droot = data_root(root)
    lines = [data_root_origin(root), ""]
    rows = status(root)
    for group in GROUPS:
        entries = [(e, f) for e, f in rows if e.group == group]
        if not entries:
            continue
        have = sum(f is not None for _, f in entries)
        tag = " (optional)" if all(e.optional for e, _ in entries) else ""
        lines.append(f"{group}{tag}: {have} of {len(entries)} present")
        for e, f in entries:
            if f is not None:
                lines.append(f"  present  {f.relative_to(droot)}")
            else:
                looked = ", ".join(e.names)
                lines.append(f"  MISSING  {e.folder}/{e.names[0]}  (looked for {looked}; used by {e.used_by})")
                lines.append(f"           get it: {e.source}")
    missing_required = [e for e, f in rows if f is None and not e.optional]
    lines.append("")
    lines.append("everything the main job and the tests need is present" if not missing_required else
                 f"{len(missing_required)} required file(s) missing: with internet they are downloaded on first use "
                 "(or now: python -m gnnpretrain.data fetch zinc moleculenet)")
    return "\n".join(lines)


def fetch_group(group: str, root: str | os.PathLike | None = None, progress: bool = True) -> list[Path]:
    """Download a group's missing files into the data root (checked); offline: one clear error."""
    from gnnpretrain.chem import download as dl

    droot = data_root(root)
    if group == "zinc":
        return dl.fetch_zinc(droot / "zinc", progress=progress)
    if group == "moleculenet":
        from gnnpretrain.chem.moleculenet import MOLECULENET_NAMES, find_raw_file

        return [find_raw_file(n, root, download=True) for n in MOLECULENET_NAMES]
    if group == "zinc_standard_agent":
        entry = next(e for e in catalog() if e.group == group)
        found = entry.found(droot)
        return [found] if found else [dl.fetch_zinc_standard_agent(droot / entry.folder, progress=progress)]
    raise ValueError(f"cannot download {group!r} automatically; fetchable groups: zinc, moleculenet, "
                     "zinc_standard_agent (see `python -m gnnpretrain.data` for where the others come from)")
