"""The dataset builder on real data (a subsample) and on multi-species input: fields, summary, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from gnnpretrain.bio import BioEgoNetworks
from gnnpretrain.bio.dataset import BioConfig, make_splits
from gnnpretrain.bio.paper import paper_species_split

from bio_toy import SMALL


def test_small_real_dataset_fields_and_summary(small_bio):
    ds = small_bio
    s = ds.summary()
    assert len(ds) == s["graphs"] == SMALL["max_centres"]
    assert s["proteins_in_network"] == 17288 and s["ppi_edges_in_network"] == 174962
    assert s["absent_channels"] == ["textmining"] and s["channel_frequency"]["textmining"] == 0
    assert s["tasks"] == ds.num_tasks == 10 and s["coarse_tasks"] == ds.num_pretrain_tasks == 100
    assert s["labelled_graphs"] + s["unlabelled_pool"] == len(ds)
    assert all(p >= SMALL["min_positives"] for p in s["positives_per_task"].values())
    assert 2 < s["mean_nodes"] <= 1 + 5 + 25
    d = ds[0]
    assert d.x.dtype == torch.long and (d.x == 1).all() and d.x.shape == (d.num_nodes, 1)
    assert d.edge_attr.dtype == torch.float32 and d.edge_attr.shape[1] == 9
    assert int(d.center_node_idx) == 0 and d.y.shape == (1, 10) and d.y_pretrain.shape == (1, 100)
    # batching offsets the centre index into the batch's node numbering
    b = next(iter(DataLoader(ds, batch_size=5)))
    assert torch.equal(b.center_node_idx, b.ptr[:-1])
    # the same config loads from the cache without rebuilding
    again = BioEgoNetworks(ds.data_root, ds.root.rsplit("/bio/", 1)[0], log=False, **SMALL)
    assert again.processed_dir == ds.processed_dir and torch.equal(again[3].edge_index, ds[3].edge_index)


def test_protein_split_is_disjoint_and_complete(small_bio):
    sp = small_bio.split
    tr, va, te = (set(sp[k].tolist()) for k in ("train", "valid", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    labelled = {i for i in range(len(small_bio)) if bool(small_bio[i].labelled)}
    assert tr | va | te == labelled
    assert set(sp["unlabelled"].tolist()) == set(range(len(small_bio))) - labelled
    assert set(sp["supervised_pretrain"].tolist()) == tr | va  # never the test proteins
    # test centre proteins never appear as training centres
    prot = lambda idx: {small_bio.protein_ids[i] for i in idx}  # noqa: E731
    assert not (prot(te) & prot(tr))
    assert small_bio.meta["split"]["method"] == "protein"
    assert abs(len(tr) / len(labelled) - 0.8) < 0.01


def test_species_split():
    species = np.array([9606] * 40 + [10090] * 60)
    labelled = np.ones(100, dtype=bool)
    labelled[[0, 1, 50]] = False
    sp, desc = make_splits(labelled, species, BioConfig())
    assert desc["method"] == "species" and desc["test_species"] == 9606
    human = set(np.flatnonzero(labelled & (species == 9606)).tolist())
    assert set(sp["test"].tolist()) | set(sp["test_pretrain"].tolist()) == human
    assert not set(sp["test"].tolist()) & set(sp["test_pretrain"].tolist())
    assert abs(len(sp["test"]) - len(sp["test_pretrain"])) <= 1
    mouse = set(np.flatnonzero(labelled & (species == 10090)).tolist())
    assert set(sp["train"].tolist()) | set(sp["valid"].tolist()) == mouse
    assert len(sp["train"]) == int(0.85 * len(mouse))
    assert not set(sp["supervised_pretrain"].tolist()) & set(sp["test"].tolist())
    with pytest.raises(ValueError, match="test_species"):
        make_splits(labelled, species, BioConfig(test_species=7227))


def test_paper_species_split_matches_reference_rule():
    species = np.array([9606, 3702, 9606, 7227, 9606, 10090, 9606, 4932] * 5)
    sp = paper_species_split(species, seed=42)
    assert set(species[sp["test"].numpy()]) == {9606} and set(species[sp["test_pretrain"].numpy()]) == {9606}
    assert 9606 not in set(species[sp["train"].numpy()]) | set(species[sp["valid"].numpy()])
    assert len(sp["train"]) == int(0.85 * 20) and len(sp["valid"]) == int(0.15 * 20)
    with pytest.raises(ValueError, match="neither"):
        paper_species_split(np.array([9606, 1]), 42)


def test_multispecies_build_uses_species_split(tmp_path):
    rng = np.random.default_rng(0)
    header = "protein1 protein2 neighborhood fusion cooccurence coexpression experimental database textmining combined_score\n"
    files, ann = [], ["protein_id\tgo_id\tevidence\tontology"]
    for sp in (9606, 10090):
        lines = []
        for i in range(30):
            for j in rng.choice(30, size=3, replace=False):
                if i != j:
                    lines.append(f"{sp}.P{i} {sp}.P{j} 0 0 0 {rng.integers(0, 2) * 100} 500 0 0 {rng.integers(400, 999)}\n")
            ann.append(f"{sp}.P{i}\tGO:0000002\tIDA\tBP" if i % 2 else f"{sp}.P{i}\tGO:0000001\tIDA\tBP")
        f = tmp_path / f"{sp}.protein.links.detailed.v12.0.txt"
        f.write_text(header + "".join(lines))
        files.append(str(f))
    (tmp_path / "ann.tsv").write_text("\n".join(ann) + "\n")
    (tmp_path / "parents.tsv").write_text("child_go_id\tparent_go_id\trelationship\tontology\n"
                                          "GO:0000001\tGO:0008150\tisa\tBP\nGO:0000002\tGO:0008150\tisa\tBP\n")
    ds = BioEgoNetworks(tmp_path, tmp_path / "cache", ppi=files, annotations=str(tmp_path / "ann.tsv"),
                        parents=str(tmp_path / "parents.tsv"), num_downstream=2, min_positives=5,
                        coarse_min_positives=1, log=False)
    assert ds.meta["split"]["method"] == "species" and ds.meta["split"]["test_species"] == 9606
    species = {int(ds[i].species_id) for i in ds.split["test"].tolist()}
    assert species == {9606}
    assert {int(ds[i].species_id) for i in ds.split["train"].tolist()} == {10090}
    assert ds.summary()["absent_channels"] == []
