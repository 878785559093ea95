"""Batched attribute masking and the per-graph distinct-node sampler."""

from __future__ import annotations

import pytest
import torch
from _data_helpers import bbbp_smiles, graphs
from torch_geometric.data import Batch

from gnnpretrain.data import MaskAtom, mask_atoms, num_to_mask, sample_per_graph


@pytest.fixture(scope="module")
def real_batch(data_dir):
    return Batch.from_data_list(graphs(list(bbbp_smiles(data_dir, 200)) + ["C", "[Na+].[Cl-]"]))


def test_num_to_mask_matches_python_int():
    for n in range(0, 300):
        for rate in (0.15, 0.25, 0.3, 0.0):
            assert int(num_to_mask(torch.tensor([n]), rate)) == min(n, int(n * rate + 1))


def test_counts_tokens_labels(real_batch):
    b = real_batch
    x_before = b.x.clone()
    out = mask_atoms(b, 0.15, generator=torch.Generator().manual_seed(0))
    counts = b.ptr[1:] - b.ptr[:-1]
    idx = out.masked_atom_indices
    per_graph = torch.bincount(b.batch[idx], minlength=b.num_graphs)
    expected = torch.tensor([int(n * 0.15 + 1) for n in counts.tolist()])
    assert torch.equal(per_graph, expected)
    assert idx.unique().numel() == idx.numel()  # distinct
    assert torch.equal(out.masked_atom_labels, x_before[idx, 0])
    assert torch.all(out.batch.x[idx, 0] == 119) and torch.all(out.batch.x[idx, 1] == 0)
    untouched = torch.ones(b.num_nodes, dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(out.batch.x[untouched], x_before[untouched])
    assert torch.equal(b.x, x_before), "the input batch must not be modified"
    assert out.masked_edge_indices.numel() == 0 and out.masked_edge_labels.numel() == 0
    assert torch.equal(out.batch.edge_attr, b.edge_attr)


def test_mask_edge(real_batch):
    b = real_batch
    out = mask_atoms(b, 0.15, mask_edge=True, generator=torch.Generator().manual_seed(1))
    masked = torch.zeros(b.num_nodes, dtype=torch.bool)
    masked[out.masked_atom_indices] = True
    src, dst = b.edge_index
    touched = masked[src] | masked[dst]
    assert torch.all(out.batch.edge_attr[touched, 0] == 5) and torch.all(out.batch.edge_attr[touched, 1] == 0)
    assert torch.equal(out.batch.edge_attr[~touched], b.edge_attr[~touched])
    # one direction per touched bond, labelled with the original bond type
    assert out.masked_edge_indices.numel() * 2 == int(touched.sum())
    e = out.masked_edge_indices
    assert torch.all(touched[e])
    assert torch.equal(out.masked_edge_labels, b.edge_attr[e, 0])
    pairs = {(min(u, v), max(u, v)) for u, v in b.edge_index[:, e].t().tolist()}
    assert len(pairs) == e.numel()
    assert torch.equal(b.edge_index[0, e], b.edge_index[1, e + 1]) and torch.equal(b.edge_index[1, e], b.edge_index[0, e + 1])


def test_equals_per_graph_transform_for_fixed_atoms(real_batch):
    b = real_batch
    out = mask_atoms(b, 0.15, mask_edge=True, generator=torch.Generator().manual_seed(2))
    t = MaskAtom(119, 5, 0.15, mask_edge=True)
    masked_batch = out.batch.to_data_list()
    for g, d in enumerate(b.to_data_list()):
        sel = out.masked_atom_indices[b.batch[out.masked_atom_indices] == g] - int(b.ptr[g])
        ref = t(d, masked_atom_indices=sel.tolist())
        assert torch.equal(ref.x, masked_batch[g].x)
        assert torch.equal(ref.edge_attr, masked_batch[g].edge_attr)
        assert torch.equal(ref.mask_node_label[:, 0], out.masked_atom_labels[b.batch[out.masked_atom_indices] == g])
        e0 = int((b.batch[b.edge_index[0]] < g).sum())
        sel_e = out.masked_edge_indices[b.batch[b.edge_index[0, out.masked_edge_indices]] == g] - e0
        assert torch.equal(ref.connected_edge_indices, sel_e)


def test_per_graph_transform_samples_reference_count():
    (d,) = graphs(["CC(=O)Oc1ccccc1C(=O)O"])  # aspirin, 13 atoms → int(13*0.15+1) = 2
    out = MaskAtom(mask_rate=0.15, seed=0)(d)
    assert out.masked_atom_indices.numel() == 2
    assert torch.all(out.x[out.masked_atom_indices, 0] == 119)


def test_sampler_reproducible_and_uniform():
    ptr = torch.arange(0, 4 * 3001, 4)  # 3000 graphs of 4 nodes, one node each
    num = torch.ones(3000, dtype=torch.long)
    a = sample_per_graph(ptr, num, torch.Generator().manual_seed(5))
    b = sample_per_graph(ptr, num, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.numel() == 3000
    freq = torch.bincount(a % 4, minlength=4).float() / 3000
    assert torch.all((freq - 0.25).abs() < 0.04), freq
    # exactly m_g of graphs of different sizes, including whole graphs and none
    ptr = torch.tensor([0, 5, 6, 16, 16])
    got = sample_per_graph(ptr, torch.tensor([5, 0, 3, 0]), torch.Generator().manual_seed(0))
    assert got[:5].tolist() == [0, 1, 2, 3, 4] and got.numel() == 8 and torch.all((got[5:] >= 6) & (got[5:] < 16))
    with pytest.raises(ValueError, match="must lie in"):
        sample_per_graph(ptr, torch.tensor([6, 0, 0, 0]))


def test_bad_mask_rate():
    b = Batch.from_data_list(graphs(["CCO"]))
    with pytest.raises(ValueError, match="mask_rate"):
        mask_atoms(b, 1.5)
