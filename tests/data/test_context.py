"""Batched context extraction: hand-checked molecules and equality with the per-graph transform."""

from __future__ import annotations

import pytest
import torch
from _data_helpers import bbbp_smiles, graphs
from torch_geometric.data import Batch

from gnnpretrain.data import ExtractSubstructureContext, extract_context


def _bonds(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in edge_index.t().tolist()}


def _graph_part(cp, j):
    """Node features / local edges of kept graph j in the substructure and context."""
    s_nodes = (cp.sub_batch == j).nonzero().view(-1)
    c_nodes = (cp.ctx_batch == j).nonzero().view(-1)
    s0, c0 = int(s_nodes[0]), int(c_nodes[0])
    s_e = (cp.sub_batch[cp.sub_edge_index[0]] == j)
    c_e = (cp.ctx_batch[cp.ctx_edge_index[0]] == j)
    return {
        "sub_x": cp.sub_x[s_nodes],
        "sub_ei": cp.sub_edge_index[:, s_e] - s0,
        "sub_ea": cp.sub_edge_attr[s_e],
        "center": int(cp.sub_center[j]) - s0,
        "ctx_x": cp.ctx_x[c_nodes],
        "ctx_ei": cp.ctx_edge_index[:, c_e] - c0,
        "ctx_ea": cp.ctx_edge_attr[c_e],
        "anchor": cp.anchor[cp.anchor_batch == j] - c0,
    }


def test_chain_rooted_at_end():
    # decane: atoms 0..9 in a chain; root 0, k=5, context (4, 7]
    b = Batch.from_data_list(graphs(["CCCCCCCCCC"]))
    cp = extract_context(b, k=5, r1=4, r2=7, roots=torch.tensor([0]))
    assert cp.kept.tolist() == [0] and cp.num_dropped == 0
    assert cp.sub_x.size(0) == 6  # atoms 0..5
    assert _bonds(cp.sub_edge_index) == {(i, i + 1) for i in range(5)}
    assert cp.sub_center.tolist() == [0]
    assert cp.ctx_x.size(0) == 3  # atoms 5, 6, 7 renumbered 0, 1, 2
    assert _bonds(cp.ctx_edge_index) == {(0, 1), (1, 2)}
    assert cp.anchor.tolist() == [0]  # atom 5
    assert cp.anchor_batch.tolist() == [0]


def test_chain_rooted_in_middle_center_index():
    b = Batch.from_data_list(graphs(["CCCCCCCCCC"]))
    cp = extract_context(b, k=2, r1=1, r2=3, roots=torch.tensor([4]))
    # substructure = atoms 2..6, root 4 is position 2; context = distance 2..3 = atoms {1, 2, 6, 7};
    # anchors = distance 2 = atoms {2, 6} = context positions 1 and 2
    assert cp.sub_x.size(0) == 5 and cp.sub_center.tolist() == [2]
    assert cp.ctx_x.size(0) == 4
    assert _bonds(cp.ctx_edge_index) == {(0, 1), (2, 3)}
    assert cp.anchor.tolist() == [1, 2]


def test_ring_is_node_induced():
    # cyclopentane, root 0, k=2: atoms 2 and 3 both at distance 2; their bond closes the ring and belongs
    # to the node-induced substructure
    b = Batch.from_data_list(graphs(["C1CCCC1"]))
    cp = extract_context(b, k=2, r1=1, r2=2, roots=torch.tensor([0]))
    assert cp.sub_x.size(0) == 5
    assert _bonds(cp.sub_edge_index) == {(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)}
    # context = atoms at distance 2 = {2, 3}, joined by the ring bond; both are anchors
    assert cp.ctx_x.size(0) == 2 and _bonds(cp.ctx_edge_index) == {(0, 1)}
    assert sorted(cp.anchor.tolist()) == [0, 1]


def test_benzene():
    b = Batch.from_data_list(graphs(["c1ccccc1"]))
    # default radii: benzene's farthest atom is 3 hops away, so there is no context → dropped
    cp = extract_context(b, k=5, r1=4, r2=7, roots=torch.tensor([0]))
    assert cp.num_dropped == 1 and cp.kept.numel() == 0
    assert cp.sub_x.size(0) == 0 and cp.ctx_x.size(0) == 0 and cp.anchor.numel() == 0
    cp = extract_context(b, k=2, r1=1, r2=3, roots=torch.tensor([0]))
    assert cp.sub_x.size(0) == 5  # all but the para atom 3
    assert _bonds(cp.sub_edge_index) == {(0, 1), (1, 2), (3, 4), (0, 4)}  # atoms 0,1,2,4,5 renumbered
    assert cp.ctx_x.size(0) == 3  # atoms 2, 3, 4 (distances 2, 3, 2)
    assert _bonds(cp.ctx_edge_index) == {(0, 1), (1, 2)}
    assert cp.anchor.tolist() == [0, 2]
    assert torch.all(cp.sub_edge_attr[:, 0] == 3)  # aromatic bonds keep their features


def test_fragments_and_single_atoms():
    data = graphs(["CCCCCCCCCC.CC", "C", "[Na+].[Cl-]", "CCCCCCCCCC.CC"])
    b = Batch.from_data_list(data)
    # graph 0 rooted in the ethane fragment: no context → dropped; graph 3 rooted in the chain: kept,
    # and the other fragment is never reached
    cp = extract_context(b, k=5, r1=4, r2=7, roots=torch.tensor([10, 0, 1, 0]))
    assert cp.kept.tolist() == [3] and cp.num_dropped == 3
    assert cp.sub_x.size(0) == 6 and cp.ctx_x.size(0) == 3
    assert cp.sub_batch.unique().tolist() == [0] and cp.ctx_batch.unique().tolist() == [0]
    assert cp.sub_center.tolist() == [0]


def test_bad_roots_and_radii_are_rejected():
    b = Batch.from_data_list(graphs(["CCO", "CC"]))
    with pytest.raises(ValueError, match="outside its 2 nodes"):
        extract_context(b, roots=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="one local node index per graph"):
        extract_context(b, roots=torch.tensor([0]))
    with pytest.raises(ValueError, match="r1 < r2"):
        extract_context(b, k=5, r1=7, r2=4)


def test_random_roots_reproducible_and_uniform():
    b = Batch.from_data_list(graphs(["CCCC"]) * 4000)
    r1 = extract_context(b, generator=torch.Generator().manual_seed(3)).roots
    r2 = extract_context(b, generator=torch.Generator().manual_seed(3)).roots
    assert torch.equal(r1, r2)
    freq = torch.bincount(r1, minlength=4).float() / r1.numel()
    assert torch.all((freq - 0.25).abs() < 0.04), freq


def test_batched_equals_per_graph_on_real_molecules(data_dir):
    smiles = list(bbbp_smiles(data_dir, 200)) + ["CCCCCCCCCC.CC", "C", "c1ccc2ccccc2c1"]
    data = graphs(smiles)
    assert any("." in s for s in smiles[:200]), "want multi-fragment molecules among the real ones"
    b = Batch.from_data_list(data)
    gen = torch.Generator().manual_seed(0)
    for k, r1, r2 in [(5, 4, 7), (2, 1, 4), (3, 0, 2)]:
        cp = extract_context(b, k=k, r1=r1, r2=r2, generator=gen)
        t = ExtractSubstructureContext(k, r1, r2)
        kept = cp.kept.tolist()
        assert len(kept) + cp.num_dropped == len(data)
        for i, d in enumerate(data):
            ref = t(d, root=int(cp.roots[i]))
            assert hasattr(ref, "x_context") == (i in kept), (smiles[i], i)
            if i not in kept:
                continue
            got = _graph_part(cp, kept.index(i))
            assert torch.equal(got["sub_x"], ref.x_substruct)
            assert torch.equal(got["sub_ei"], ref.edge_index_substruct)
            assert torch.equal(got["sub_ea"], ref.edge_attr_substruct)
            assert got["center"] == int(ref.center_substruct_idx)
            assert torch.equal(got["ctx_x"], ref.x_context)
            assert torch.equal(got["ctx_ei"], ref.edge_index_context)
            assert torch.equal(got["ctx_ea"], ref.edge_attr_context)
            assert torch.equal(got["anchor"], ref.overlap_context_substruct_idx)
        assert 0 < len(kept) < len(data)


def test_on_gpu_if_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    b = Batch.from_data_list(graphs(["CCCCCCCCCC", "c1ccccc1CCCCCC"]))
    roots = torch.tensor([0, 0])
    cpu = extract_context(b, roots=roots)
    gpu = extract_context(b.to("cuda"), roots=roots.cuda())
    assert gpu.sub_x.is_cuda
    for name in ("sub_x", "sub_edge_index", "ctx_x", "ctx_edge_index", "anchor", "sub_center", "kept"):
        assert torch.equal(getattr(cpu, name), getattr(gpu, name).cpu()), name


def test_empty_graph_in_batch_is_dropped_without_touching_neighbours():
    from torch_geometric.data import Data

    empty = Data(x=torch.empty(0, 2, dtype=torch.long), edge_index=torch.empty(2, 0, dtype=torch.long),
                 edge_attr=torch.empty(0, 2, dtype=torch.long))
    chain = graphs(["CCCCCCCCCC"])[0]
    b = Batch.from_data_list([chain, empty, chain])
    # the empty graph's nominal root position is the next graph's first atom; it must not seed a search
    cp = extract_context(b, roots=torch.tensor([0, 0, 9]))
    assert cp.kept.tolist() == [0, 2] and cp.num_dropped == 1
    assert cp.sub_center.tolist() == [0, 6 + 5]  # graph 2 rooted at its last atom: substructure atoms 4..9
    assert cp.ctx_x.size(0) == 6 and cp.anchor.tolist() == [0, 5]
    rnd = extract_context(b, generator=torch.Generator().manual_seed(0))
    assert 1 not in rnd.kept.tolist()
