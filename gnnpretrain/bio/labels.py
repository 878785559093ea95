"""Gene Ontology labels for proteins: reading, propagation, and the choice of tasks.

Why: the paper labels each ego-network with GO biological-process terms of its *centre* protein —
40 fine-grained terms for the downstream task and a larger coarse set for supervised pre-training.
The processing code was never released; the rules below are ours and are documented in
bio/README.md.

* **Annotations.** A protein's terms are its own annotations (``human_go_direct.tsv.gz``) closed
  upwards over the GO graph (``go_parents.tsv.gz``, relations ``is_a``, ``part_of``, ``regulates``,
  ``positively/negatively regulates`` — the closure Bioconductor's GO.db uses, and which reproduces
  the shipped ``human_go_propagated_ppi_genes.tsv.gz``). The artificial root ``all`` is dropped and
  annotations with evidence ``ND`` ("no biological data available") do not count.
* **No leakage.** Labels are computed from the centre protein's own annotations only; nothing here
  ever looks at the network, so a neighbour's annotations cannot reach a centre's label.
* **Labelled vs. unlabelled.** A protein is labelled when it has at least one (non-ND) annotation in
  the chosen ontology; labelled proteins get 0/1 for every task, unlabelled ones ``nan`` (OGB
  convention) and form the unlabelled pre-training pool.
* **Downstream tasks** (:func:`select_tasks`): candidate terms have at least ``min_positives``
  labelled positives and are not positive for every labelled protein. The *most specific* candidates
  are those with no candidate descendant (so chosen terms are never nested); among them the
  ``num_downstream`` deepest terms (longest path to the ontology root) are taken, ties broken by more
  positives, then by GO id.
* **Coarse pre-training tasks**: the remaining candidates with at least ``coarse_min_positives``
  positives, excluding the downstream terms and their descendants (a descendant's label implies the
  downstream label), most positives first, at most ``num_coarse``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

ALL_RELATIONS: tuple[str, ...] = ("isa", "part of", "regulates", "negatively regulates", "positively regulates")
GO_ROOTS = {"BP": "GO:0008150", "MF": "GO:0003674", "CC": "GO:0005575"}


def go_dir(root: Path) -> Path:
    return Path(root) / "bio" / "go_human"


def _read(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise FileNotFoundError(f"GO file not found: {path}. Point the data root at a folder with bio/go_human/ "
                                f"(Bioconductor org.Hs.eg.db / GO.db exports).")
    return pd.read_csv(path, sep="\t", dtype=str)


def read_annotations(path: Path, ontology: str | None = "BP", exclude_evidence: Iterable[str] = ("ND",)) -> pd.DataFrame:
    """Read a gene→GO table; returns columns ``protein, go_id`` (strings), deduplicated.

    The first column is the protein/gene id (``entrez_gene_id`` in the shipped files); ``go_id``
    is required; ``evidence`` and ``ontology`` are used for filtering when present.
    """
    df = _read(path)
    if "go_id" not in df.columns:
        raise ValueError(f"{path}: expected a 'go_id' column; found {list(df.columns)}")
    if ontology is not None and "ontology" in df.columns:
        df = df[df.ontology == ontology]
    ex = set(exclude_evidence)
    if ex and "evidence" in df.columns:
        df = df[~df.evidence.isin(ex)]
    out = pd.DataFrame({"protein": df.iloc[:, 0].astype(str).to_numpy(), "go_id": df.go_id.to_numpy()})
    return out.drop_duplicates(ignore_index=True)


def read_parents(path: Path, relations: Sequence[str] = ALL_RELATIONS) -> dict[str, list[str]]:
    """Child → parents map over the given relation types (the root ``all`` is dropped)."""
    df = _read(path)
    df = df[df.relationship.isin(relations) & (df.parent_go_id != "all")]
    parents: dict[str, list[str]] = defaultdict(list)
    for c, p in zip(df.child_go_id.to_numpy(), df.parent_go_id.to_numpy()):
        parents[c].append(p)
    return dict(parents)


class Ontology:
    """Ancestor closure and depth over a child→parents map (memoised; the GO graph is a DAG)."""

    def __init__(self, parents: Mapping[str, Sequence[str]]):
        self.parents = parents
        self._anc: dict[str, frozenset[str]] = {}
        self._depth: dict[str, int] = {}

    def ancestors(self, term: str) -> frozenset[str]:
        """The term itself and all its ancestors."""
        got = self._anc.get(term)
        if got is not None:
            return got
        # iterative post-order to avoid deep recursion
        stack = [term]
        while stack:
            t = stack[-1]
            pending = [p for p in self.parents.get(t, ()) if p not in self._anc]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if t in self._anc:
                continue
            acc = {t}
            for p in self.parents.get(t, ()):
                acc |= self._anc[p]
            self._anc[t] = frozenset(acc)
        return self._anc[term]

    def depth(self, term: str) -> int:
        """Longest path length from the term up to a root (roots have depth 0)."""
        got = self._depth.get(term)
        if got is not None:
            return got
        for t in sorted(self.ancestors(term), key=lambda a: len(self.ancestors(a))):
            if t not in self._depth:
                ps = self.parents.get(t, ())
                self._depth[t] = 0 if not ps else 1 + max(self._depth[p] for p in ps)
        return self._depth[term]


def propagate(direct: pd.DataFrame, ontology: Ontology) -> dict[str, set[str]]:
    """Protein → set of terms, closed upwards (each direct term plus all its ancestors)."""
    out: dict[str, set[str]] = defaultdict(set)
    for prot, term in zip(direct.protein.to_numpy(), direct.go_id.to_numpy()):
        out[prot] |= ontology.ancestors(term)
    return dict(out)


def load_propagated(path: Path, ontology: str | None = "BP", exclude_evidence: Iterable[str] = ("ND",)) -> dict[str, set[str]]:
    """Read an already-propagated annotation table (e.g. ``human_go_propagated_ppi_genes.tsv.gz``)."""
    df = read_annotations(path, ontology, exclude_evidence)
    out: dict[str, set[str]] = defaultdict(set)
    for prot, term in zip(df.protein.to_numpy(), df.go_id.to_numpy()):
        out[prot].add(term)
    return dict(out)


@dataclass
class TaskSelection:
    downstream: list[str]
    coarse: list[str]
    positives: dict[str, int]  # term → number of labelled positive proteins
    num_labelled: int


def select_tasks(
    protein_terms: Mapping[str, set[str]],
    proteins: Sequence[str],
    ontology: Ontology,
    num_downstream: int = 40,
    min_positives: int = 50,
    num_coarse: int = 5000,
    coarse_min_positives: int = 10,
) -> TaskSelection:
    """Choose downstream (fine) and coarse pre-training terms by the rules in the module docstring.

    Only ``proteins`` (the network's proteins) are counted, so terms reflect the dataset actually built.
    """
    counts: dict[str, int] = defaultdict(int)
    labelled = 0
    for p in proteins:
        terms = protein_terms.get(p)
        if terms:
            labelled += 1
            for t in terms:
                counts[t] += 1
    if labelled == 0:
        raise ValueError("no protein of the network has a GO annotation: check that the annotation ids "
                         "match the network's protein ids (e.g. Entrez ids in both)")
    cand = {t for t, c in counts.items() if c >= min_positives and c < labelled}
    non_leaf: set[str] = set()
    for t in cand:
        non_leaf |= (ontology.ancestors(t) - {t}) & cand
    leaves = sorted(cand - non_leaf, key=lambda t: (-ontology.depth(t), -counts[t], t))
    downstream = leaves[:num_downstream]
    if len(downstream) < num_downstream:
        raise ValueError(
            f"only {len(downstream)} GO terms qualify as downstream tasks (need {num_downstream}); lower "
            f"min_positives (now {min_positives}) or num_downstream"
        )
    ds = set(downstream)
    coarse_c = [
        t for t, c in counts.items()
        if c >= coarse_min_positives and c < labelled and t not in ds and not (ontology.ancestors(t) & ds)
    ]
    coarse = sorted(coarse_c, key=lambda t: (-counts[t], t))[:num_coarse]
    return TaskSelection(downstream=downstream, coarse=coarse, positives=dict(counts), num_labelled=labelled)


def label_matrix(protein_terms: Mapping[str, set[str]], proteins: Sequence[str], tasks: Sequence[str]) -> np.ndarray:
    """``[len(proteins), len(tasks)]`` float32: 1/0 for labelled proteins, ``nan`` rows for unlabelled.

    Uses each protein's own term set only (the no-leak rule).
    """
    col = {t: j for j, t in enumerate(tasks)}
    y = np.full((len(proteins), len(tasks)), np.nan, dtype=np.float32)
    for i, p in enumerate(proteins):
        terms = protein_terms.get(p)
        if not terms:
            continue
        y[i] = 0.0
        for t in terms:
            j = col.get(t)
            if j is not None:
                y[i, j] = 1.0
    return y


def read_term_names(path: Path) -> dict[str, str]:
    df = _read(path)
    return dict(zip(df.go_id, df.term))
