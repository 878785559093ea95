"""Edge-prediction positives and negatives."""

from __future__ import annotations

import torch
from _data_helpers import bbbp_smiles, graphs
from torch_geometric.data import Batch

from gnnpretrain.data import sample_negative_edges


def _check(b, pos, neg, exact: bool):
    bonds = {(min(u, v), max(u, v)) for u, v in b.edge_index.t().tolist()}
    # positives: one direction of every bond
    pos_pairs = [(min(u, v), max(u, v)) for u, v in pos.t().tolist()]
    assert len(pos_pairs) == len(bonds) and set(pos_pairs) == bonds
    # negatives: within one graph, not self, not bonded, unique
    u, v = neg
    assert torch.all(b.batch[u] == b.batch[v])
    assert torch.all(u != v)
    neg_pairs = [(min(a, c), max(a, c)) for a, c in neg.t().tolist()]
    assert not (set(neg_pairs) & bonds)
    assert len(set(neg_pairs)) == len(neg_pairs)
    # E_g / 2 per graph (one per bond), when the graph has that many non-bonded pairs
    counts = b.ptr[1:] - b.ptr[:-1]
    n_bonds = torch.bincount(b.batch[pos[0]], minlength=b.num_graphs)
    available = counts * (counts - 1) // 2 - n_bonds
    got = torch.bincount(b.batch[u], minlength=b.num_graphs)
    if exact:
        assert torch.equal(got, torch.minimum(n_bonds, available))
    else:
        assert torch.all(got <= n_bonds)


def test_negatives_real_molecules(data_dir):
    data = graphs(list(bbbp_smiles(data_dir, 150)) + ["C", "C=C", "C1CC1", "[Na+].[Cl-]"])
    b = Batch.from_data_list(data)
    pos, neg = sample_negative_edges(b, torch.Generator().manual_seed(0))
    _check(b, pos, neg, exact=True)
    pos2, neg2 = sample_negative_edges(b, torch.Generator().manual_seed(0))
    assert torch.equal(neg, neg2)
    _, neg3 = sample_negative_edges(b, torch.Generator().manual_seed(1))
    assert not torch.equal(neg, neg3)


def test_rejection_path_for_large_graphs(data_dir):
    b = Batch.from_data_list(graphs(list(bbbp_smiles(data_dir, 60))))
    pos, neg = sample_negative_edges(b, torch.Generator().manual_seed(0), max_pairs=0)
    _check(b, pos, neg, exact=False)
    # with 5 E_g draws on drug-like molecules nearly every graph still gets its E_g / 2 negatives
    n_bonds = torch.bincount(b.batch[pos[0]], minlength=b.num_graphs)
    assert neg.size(1) >= 0.95 * int(n_bonds.sum())


def test_small_graph_exhausts_non_bonds():
    # cyclopropane: 3 atoms, all bonded → no negative; propane: 1 non-bond (0, 2) for 2 bonds
    b = Batch.from_data_list(graphs(["C1CC1", "CCC"]))
    pos, neg = sample_negative_edges(b)
    assert neg.t().tolist() == [[3, 5]]
