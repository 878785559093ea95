"""A hand-checked toy PPI/GO data set written in the real (shipped) file formats, for the bio tests."""

from __future__ import annotations

import gzip
from pathlib import Path


# Toy network (dmfind export layout). Scores chosen so that neighbour rankings are unambiguous.
#   1-2 900, 1-3 800, 1-4 700, 2-3 600, 2-5 950, 3-6 500, 4-7 400, 5-8 300, 7-9 200, 6-9 100, 5-6 50
TOY_EDGES = [
    (1, 2, 900), (1, 3, 800), (1, 4, 700), (2, 3, 600), (2, 5, 950), (3, 6, 500),
    (4, 7, 400), (5, 8, 300), (7, 9, 200), (6, 9, 100), (5, 6, 50),
]
COLUMNS = ["id_1", "id_2", "neighborhood", "neighborhood_transferred", "fusion", "cooccurence", "homology",
           "coexpression", "coexpression_transferred", "experiments", "experiments_transferred", "database",
           "database_transferred", "combined_score"]

# Channel scores of edge 1-2 (the others get only an experiments score of 700):
# neighborhood_transferred 10 -> neighborhood; homology 500 (ignored); coexpression_transferred 50 ->
# coexpression; database 900 -> database.
EDGE_12 = {"neighborhood_transferred": 10, "homology": 500, "coexpression_transferred": 50, "database": 900}

# GO toy ontology: ROOT (BP) <- A <- B <- D (part of); C positively regulates A; M is an MF term.
ROOT, A, B, C, D, M = "GO:0008150", "GO:0000001", "GO:0000002", "GO:0000003", "GO:0000004", "GO:0003674"
PARENTS = [
    (ROOT, "all", "isa", "BP"), (A, ROOT, "isa", "BP"), (B, A, "isa", "BP"), (D, B, "part of", "BP"),
    (C, A, "positively regulates", "BP"), (M, "all", "isa", "MF"),
]
# Direct annotations: (gene, term, evidence, ontology)
DIRECT = [
    (1, D, "IDA", "BP"), (2, C, "IMP", "BP"), (3, ROOT, "ND", "BP"), (4, M, "IDA", "MF"),
    (6, D, "IEA", "BP"), (7, B, "TAS", "BP"), (8, C, "IDA", "BP"), (9, A, "IDA", "BP"),
]


def _write_tsv(path: Path, header: list[str], rows) -> Path:
    text = "\t".join(header) + "\n" + "".join("\t".join(str(v) for v in r) + "\n" for r in rows)
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


def write_toy(root: Path, direct=DIRECT) -> dict[str, Path]:
    """Write the toy network and GO files under ``root`` in the shipped formats."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for a, b, s in TOY_EDGES:
        vals = {c: 0.0 for c in COLUMNS[2:-1]}
        if (a, b) == (1, 2):
            vals.update(EDGE_12)
        else:
            vals["experiments"] = 700.0
        rows.append([a, b] + [vals[c] for c in COLUMNS[2:-1]] + [float(s)])
    ppi = _write_tsv(root / "toy_ppi.edges.tsv.gz", COLUMNS, rows)
    parents = _write_tsv(root / "go_parents.tsv.gz", ["child_go_id", "parent_go_id", "relationship", "ontology"], PARENTS)
    ann = _write_tsv(root / "go_direct.tsv.gz", ["entrez_gene_id", "go_id", "evidence", "ontology"], direct)
    return {"ppi": ppi, "parents": parents, "annotations": ann}


SMALL = dict(max_centres=1500, max_neighbors=5, num_downstream=10, min_positives=15, num_coarse=100, coarse_min_positives=10)
