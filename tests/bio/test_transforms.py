"""Batched bio transforms: edge masking (counts, both directions, labels) and the centre-rooted context."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from gnnpretrain.bio.dataset import EgoData
from gnnpretrain.bio.egonet import EgoNetworkExtractor
from gnnpretrain.bio.ppi import read_string_edges
from gnnpretrain.bio.transforms import center_context, check_paired_edges, mask_edges


def test_mask_edges_counts_and_pairs(small_bio):
    batch = next(iter(DataLoader(small_bio, batch_size=16)))
    out = mask_edges(batch, 0.15, torch.Generator().manual_seed(1))
    pair_graph = batch.batch[batch.edge_index[0, 0::2]]
    m = torch.bincount(pair_graph, minlength=16)
    expect = torch.where(m > 0, (m.double() * 0.15 + 1).floor().long(), torch.zeros_like(m))
    got = torch.bincount(batch.batch[batch.edge_index[0, out.masked_edge_indices]], minlength=16)
    assert torch.equal(got, expect)
    idx = out.masked_edge_indices
    assert (idx % 2 == 0).all() and len(set(idx.tolist())) == len(idx)
    mask_row = torch.tensor([0.0] * 8 + [1.0])
    masked_attr = out.batch.edge_attr
    assert (masked_attr[idx] == mask_row).all() and (masked_attr[idx + 1] == mask_row).all()
    assert torch.equal(out.masked_edge_labels, batch.edge_attr[idx])  # original rows are the labels
    untouched = torch.ones(batch.edge_index.size(1), dtype=torch.bool)
    untouched[idx] = False
    untouched[idx + 1] = False
    assert torch.equal(masked_attr[untouched], batch.edge_attr[untouched])
    assert batch.edge_attr[:, 8].sum() == 0  # the input batch is not modified
    labels = out.channel_labels()
    assert labels.min() >= 0 and labels.max() < 7
    first_set = (out.masked_edge_labels[:, :7] > 0).float().argmax(1)
    assert torch.equal(labels, first_set)


def test_mask_edges_rejects_unpaired_edges(small_bio):
    d = small_bio[0]
    bad = d.clone()
    bad.edge_index = d.edge_index[:, torch.randperm(d.edge_index.size(1), generator=torch.Generator().manual_seed(0))]
    with pytest.raises(ValueError, match="paired|reverse"):
        check_paired_edges(bad.edge_index)


def _toy_batch(toy, centres):
    net = read_string_edges(toy["ppi"])
    ex = EgoNetworkExtractor(net, 2, None)
    datas = []
    for c in centres:
        ego = ex(net.index_of()[c])
        datas.append(EgoData(x=torch.ones(len(ego.nodes), 1, dtype=torch.long), edge_index=ego.edge_index,
                             edge_attr=ego.edge_attr, center_node_idx=torch.zeros(1, dtype=torch.long),
                             num_nodes=len(ego.nodes)))
    return net, ex, Batch.from_data_list(datas)


def test_center_context_hand_checked(toy):
    # centre 1, radius 2: nodes [1, 2, 3, 4, 5, 6, 7]; distance 1: 2, 3, 4; distance 2: 5, 6, 7
    # centre 8, radius 2: 8 - 5 - {2, 6}: nodes [8, 5, 2, 6]; context = {2, 6} with no edge between them
    net, ex, batch = _toy_batch(toy, ["1", "8"])
    pair = center_context(batch, r1=1)
    assert pair.kept.tolist() == [0, 1] and pair.num_dropped == 0
    # substructure = whole graphs, rooted at the centres
    assert pair.sub_x.size(0) == batch.num_nodes and pair.sub_edge_index.size(1) == batch.edge_index.size(1)
    assert pair.sub_center.tolist() == batch.ptr[:-1].tolist()
    # context of graph 0: local nodes 4, 5, 6 (proteins 5, 6, 7) with the single edge 5-6
    ctx0 = (pair.ctx_batch == 0).nonzero().view(-1)
    assert len(ctx0) == 3
    e0 = pair.ctx_edge_index[:, pair.ctx_batch[pair.ctx_edge_index[0]] == 0]
    assert e0.size(1) == 2  # 5-6 in both directions
    assert (pair.ctx_batch == 1).sum() == 2
    # every context node is an anchor
    assert pair.anchor.tolist() == list(range(pair.ctx_x.size(0)))
    # r1 = 2 leaves no context: both graphs dropped
    assert center_context(batch, r1=2).num_dropped == 2
