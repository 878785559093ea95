"""GO label construction: propagation (toy DAG and the shipped propagated file), task selection,
and the no-leak rule (a centre's label comes only from its own annotations)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gnnpretrain.bio import BioEgoNetworks
from gnnpretrain.bio.labels import (
    Ontology,
    label_matrix,
    load_propagated,
    propagate,
    read_annotations,
    read_parents,
    select_tasks,
)

from bio_toy import A, B, C, D, DIRECT, ROOT, write_toy


def _toy_terms(toy):
    onto = Ontology(read_parents(toy["parents"]))
    return onto, propagate(read_annotations(toy["annotations"]), onto)


def test_propagation_on_toy_dag(toy):
    onto, terms = _toy_terms(toy)
    assert terms["1"] == {D, B, A, ROOT}  # part_of and is_a edges followed, 'all' dropped
    assert terms["2"] == {C, A, ROOT}  # 'positively regulates' followed (as GO.db's closure)
    assert "3" not in terms  # only an ND annotation: unlabelled
    assert "4" not in terms  # only an MF annotation: not in the BP ontology
    assert onto.depth(D) == 3 and onto.depth(ROOT) == 0


def test_propagation_reproduces_shipped_file(data_dir):
    g = data_dir / "bio" / "go_human"
    onto = Ontology(read_parents(g / "go_parents.tsv.gz"))
    direct = read_annotations(g / "human_go_direct.tsv.gz")
    shipped = load_propagated(g / "human_go_propagated_ppi_genes.tsv.gz")
    genes = sorted(shipped)[::50]  # ~300 genes spread over the id range
    mine = propagate(direct[direct.protein.isin(genes)], onto)
    assert len(genes) > 250
    assert all(mine.get(p, set()) == shipped[p] for p in genes)


def test_select_tasks_rules(toy):
    onto, terms = _toy_terms(toy)
    proteins = [str(i) for i in range(1, 10)]
    # labelled: 1, 2, 6, 7, 8, 9; positives: ROOT 6, A 6, B 3 (1, 6, 7), C 2 (2, 8), D 2 (1, 6)
    sel = select_tasks(terms, proteins, onto, num_downstream=2, min_positives=2, num_coarse=10, coarse_min_positives=1)
    assert sel.num_labelled == 6
    assert sel.downstream == [D, C]  # leaves among candidates, deepest first
    # ROOT and A are positive for every labelled protein (no information); D, C are downstream
    assert sel.coarse == [B]
    sel2 = select_tasks(terms, proteins, onto, num_downstream=1, min_positives=2, num_coarse=10, coarse_min_positives=1)
    assert sel2.downstream == [D] and sel2.coarse == [B, C]  # most positives first
    with pytest.raises(ValueError, match="qualify as downstream"):
        select_tasks(terms, proteins, onto, num_downstream=3, min_positives=2)


def test_label_matrix_uses_own_annotations_only(toy):
    _, terms = _toy_terms(toy)
    y = label_matrix(terms, ["1", "3", "5", "2"], [D, C])
    assert y[0].tolist() == [1.0, 0.0]
    assert np.isnan(y[1]).all() and np.isnan(y[2]).all()  # unlabelled proteins: nan rows
    assert y[3].tolist() == [0.0, 1.0]


def _build(root, cache, files):
    return BioEgoNetworks(root, cache, ppi=[str(files["ppi"])], annotations=str(files["annotations"]),
                          parents=str(files["parents"]), radius=2, max_neighbors=None, num_downstream=2,
                          min_positives=2, num_coarse=10, coarse_min_positives=1, log=False)


def test_dataset_labels_do_not_leak_from_neighbours(tmp_path):
    files = write_toy(tmp_path / "a")
    ds = _build(tmp_path / "a", tmp_path / "cache", files)
    assert ds.task_names == [D, C]
    by_protein = {ds.protein_ids[i]: ds[i] for i in range(len(ds))}
    # protein 5 has no annotation although its neighbours 2 (C), 6 (D) and 8 (C) do
    assert math.isnan(float(by_protein["5"].y[0, 0])) and not bool(by_protein["5"].labelled)
    assert by_protein["2"].y.tolist() == [[0.0, 1.0]]
    assert by_protein["1"].y.tolist() == [[1.0, 0.0]]
    # give neighbour 5 a D annotation: 5's own label changes, its neighbours' labels do not
    files_b = write_toy(tmp_path / "b", direct=DIRECT + [(5, D, "IDA", "BP")])
    ds_b = _build(tmp_path / "b", tmp_path / "cache", files_b)
    assert ds_b.task_names == [D, C]
    after = {ds_b.protein_ids[i]: ds_b[i] for i in range(len(ds_b))}
    assert after["5"].y.tolist() == [[1.0, 0.0]]
    for p in ("1", "2", "3", "6", "8"):
        a, b = by_protein[p].y, after[p].y
        assert torch_equal_nan(a, b), p


def torch_equal_nan(a, b) -> bool:
    return bool(((a == b) | (a.isnan() & b.isnan())).all())
