"""GraphCL and GraphMAE: augmentations, and loss + gradients equal to the official code's with the draws fixed.

The oracle is tests/strategies/_official.py (the official molecular code of Shen-Lab/GraphCL and
THUDM/GraphMAE re-expressed per molecule, numpy RNG included). Fidelity checks run in float64 on the
official 5 x 300 GIN; the measured differences are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from _official import (
    OfficialGNN,
    OfficialGNNDecoder,
    OfficialGraphCL,
    official_collate_masking,
    official_drop_nodes,
    official_graphmae_loss,
    official_mask_atom,
    official_random_view,
    official_subgraph,
)
from gnnpretrain.chem import smiles_to_graph
from gnnpretrain.data import mask_atoms
from gnnpretrain.data.augment import augment, augment_keep, drop_nodes_keep, induced_view, num_for_ratio, subgraph_keep
from gnnpretrain.strategies import build_strategy, get_strategy_class, training_default
from gnnpretrain.strategies.graphcl import nt_xent

PAPER = dict(num_layer=5, emb_dim=300, JK="last", drop_ratio=0.0, gnn_type="gin")


@pytest.fixture(scope="module")
def mols(data_dir):
    smiles = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")["smiles"].iloc[:200]
    return [g for g in map(smiles_to_graph, smiles) if g is not None]


def _graph_sets(batch, keep):
    """Per graph, the local indices of the kept nodes."""
    ptr = batch.ptr.tolist()
    idx = keep.nonzero().view(-1).tolist()
    out = [[] for _ in range(len(ptr) - 1)]
    g = 0
    for i in idx:
        while i >= ptr[g + 1]:
            g += 1
        out[g].append(i - ptr[g])
    return out


def _check_view(batch, view):
    """A view is a valid batch of induced subgraphs of the source graphs, edge attributes those of the kept edges."""
    n = view.x.size(0)
    assert view.num_graphs == batch.num_graphs
    assert torch.equal(torch.unique(view.batch), torch.arange(batch.num_graphs))  # no graph empty
    assert bool((view.batch[:-1] <= view.batch[1:]).all())  # graphs contiguous, in order
    assert torch.equal(view.x, batch.x[view.node_index])
    assert torch.equal(view.batch, batch.batch[view.node_index])
    if view.edge_index.numel():
        assert int(view.edge_index.min()) >= 0 and int(view.edge_index.max()) < n
        assert torch.equal(view.batch[view.edge_index[0]], view.batch[view.edge_index[1]])
    # each view edge is a source edge between the same two nodes, with that edge's own attributes
    assert torch.equal(view.node_index[view.edge_index], batch.edge_index[:, view.edge_index_src])
    assert torch.equal(view.edge_attr, batch.edge_attr[view.edge_index_src])
    # induced: every source edge between two kept nodes is kept (so both directions of a bond travel together)
    kept = torch.zeros(batch.x.size(0), dtype=torch.bool)
    kept[view.node_index] = True
    induced = (kept[batch.edge_index[0]] & kept[batch.edge_index[1]]).nonzero().view(-1)
    assert torch.equal(induced, view.edge_index_src)
    pairs = set(map(tuple, view.edge_index.t().tolist()))
    assert all((j, i) in pairs for i, j in pairs)
    # the official fallback: a graph whose view has no edge is the whole molecule
    edges_per_graph = torch.bincount(view.batch[view.edge_index[0]], minlength=view.num_graphs)
    source_edges = torch.bincount(batch.batch[batch.edge_index[0]], minlength=batch.num_graphs)
    for g in view.whole.nonzero().view(-1).tolist():
        assert int((view.batch == g).sum()) == int((batch.batch == g).sum())
    assert bool(((edges_per_graph > 0) | (source_edges == 0)).all())


# --------------------------------------------------------------------------------------- augmentations
@pytest.mark.parametrize("ratio", [0.2, 0.5])
def test_drop_nodes_drops_exactly_int_n_ratio_and_makes_valid_views(mols, ratio):
    batch = Batch.from_data_list(mols[:64])
    keep = drop_nodes_keep(batch, ratio, torch.Generator().manual_seed(1))
    counts = batch.ptr[1:] - batch.ptr[:-1]
    kept = torch.bincount(batch.batch[keep], minlength=batch.num_graphs)
    assert torch.equal(kept, counts - torch.tensor([int(n * ratio) for n in counts.tolist()]))
    view = induced_view(batch, keep)
    _check_view(batch, view)
    assert int(view.whole.sum()) <= 2  # real molecules: dropping a fraction rarely cuts every bond


def test_subgraph_keeps_the_root_and_up_to_int_n_ratio_of_its_neighbours(mols):
    batch = Batch.from_data_list(mols[:64])
    keep = subgraph_keep(batch, 0.2, torch.Generator().manual_seed(2))
    ei = batch.edge_index
    for g, nodes in enumerate(_graph_sets(batch, keep)):
        off = int(batch.ptr[g])
        n = int(batch.ptr[g + 1]) - off
        nodes = [v + off for v in nodes]
        neigh = {v: set(ei[1][ei[0] == v].tolist()) for v in nodes}
        # one node (the root) is adjacent to all the others; nothing else is kept
        roots = [v for v in nodes if set(nodes) - {v} <= neigh[v]]
        assert roots, f"graph {g}: kept {nodes} is not a root with neighbours"
        root = roots[0]
        want = min(int(n * 0.2), len(neigh[root]))
        # the official draws stop after n tries, so occasionally fewer neighbours are found
        assert 1 <= len(nodes) <= want + 1
    _check_view(batch, induced_view(batch, keep))


def test_views_without_edges_fall_back_to_the_whole_molecule(mols):
    small = [smiles_to_graph(s) for s in ("C", "[Na+].[Cl-]", "CC", "CCO")]
    batch = Batch.from_data_list(small + mols[:4])
    # dropN at 0.5 leaves one atom of CC / two of CCO (possibly unbonded); subgraph of <5 atoms is a lone root
    for fn in (drop_nodes_keep, subgraph_keep):
        view = induced_view(batch, fn(batch, 0.5 if fn is drop_nodes_keep else 0.2, torch.Generator().manual_seed(0)))
        _check_view(batch, view)
        assert bool(view.whole[:3].all())  # C and the salt have no bond; CC loses its only bond
    sub = induced_view(batch, subgraph_keep(batch, 0.2, torch.Generator().manual_seed(0)))
    assert bool(sub.whole[:4].all())  # n < 5: int(n * 0.2) = 0 neighbours, a lone root, so the whole molecule


def _tv(a: Counter, b: Counter) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b))


@pytest.mark.parametrize("aug", ["dropN", "subgraph", "random"])
def test_node_sets_follow_the_official_distribution(mols, aug):
    """Ours (batched, torch generator) vs the official per-molecule numpy code: the same distribution of
    kept node sets (total variation distance of the empirical frequencies)."""
    mol = next(m for m in mols if 12 <= m.x.size(0) <= 14)  # int(n * 0.2) = 2 < degree for some atoms
    reps = 6000
    batch = Batch.from_data_list([mol] * reps)
    ours = Counter()
    view = induced_view(batch, augment_keep(batch, aug, 0.2, torch.Generator().manual_seed(0)))
    vptr = view.ptr.tolist()
    local = (view.node_index - batch.ptr[view.batch]).tolist()
    for g in range(reps):
        ours[tuple(local[vptr[g]:vptr[g + 1]])] += 1
    rng = np.random.RandomState(0)
    fn = {"dropN": official_drop_nodes, "subgraph": official_subgraph, "random": official_random_view}[aug]
    theirs = Counter()
    for _ in range(reps):
        inp = mol.clone()
        out, sampled = fn(inp, 0.2, rng)
        # the official code returns its input object unchanged when the view has no edge
        theirs[tuple(range(mol.x.size(0))) if out is inp else tuple(sorted(sampled))] += 1
    support = len(set(ours) | set(theirs))
    tv = _tv(ours, theirs)
    # sampling noise of two empirical distributions of `reps` draws over `support` outcomes is ~ sqrt(support/reps)
    assert tv < max(0.06, 1.2 * (support / reps) ** 0.5), f"{aug}: TV distance {tv:.3f} over {support} outcomes"


def test_random_choice_is_per_molecule_and_draw_count_fixed(mols):
    batch = Batch.from_data_list(mols[:64])
    keep = augment_keep(batch, "random", 0.2, torch.Generator().manual_seed(3))
    kept = torch.bincount(batch.batch[keep], minlength=batch.num_graphs)
    counts = batch.ptr[1:] - batch.ptr[:-1]
    is_drop = kept == counts - num_for_ratio(counts, 0.2)
    assert 10 < int(is_drop.sum()) < 54  # both kinds appear, about half each
    _check_view(batch, augment(batch, "random", 0.2, torch.Generator().manual_seed(3)))
    # the generator advances by the same amount whatever the choices: same state after two different batches
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    augment_keep(batch, "random", 0.2, g1)
    augment_keep(batch, "random", 0.2, g2)
    assert torch.equal(g1.get_state(), g2.get_state())
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_keep(batch, "permE", 0.2)


# --------------------------------------------------------------------------------------- fidelity
def _max_grad_diff(ours: dict, theirs: dict) -> float:
    diffs = []
    for k, g in ours.items():
        t = theirs[k]
        assert g is not None and t is not None, k
        diffs.append(float((g - t).abs().max()))
    return max(diffs)


def _official_gnn_from(gnn) -> OfficialGNN:
    ref = OfficialGNN(gnn.num_layer, gnn.emb_dim).double()
    ref.load_state_dict(gnn.state_dict(), strict=True)
    return ref


def test_graphcl_loss_and_gradients_equal_the_official_code(mols):
    """Same weights, same molecules, the official augmentations' node sets fed to ours: equal loss and
    gradients in float64 (official NT-Xent with exp/divide/log vs our logsumexp form; official subgraph
    node order vs ascending)."""
    torch.manual_seed(0)
    ours = build_strategy("graphcl", encoder_kwargs=PAPER).double().train()
    data = mols[:32]
    batch = Batch.from_data_list(data)
    rng = np.random.RandomState(0)
    views, keeps = ([], []), (torch.zeros(batch.x.size(0), dtype=torch.bool), torch.zeros(batch.x.size(0), dtype=torch.bool))
    for g, d in enumerate(data):
        for v in (0, 1):
            out, sampled = official_random_view(d.clone(), 0.2, rng)
            views[v].append(out)
            keeps[v][torch.tensor(sampled) + int(batch.ptr[g])] = True
    ob1, ob2 = Batch.from_data_list(views[0]), Batch.from_data_list(views[1])
    mine1, mine2 = induced_view(batch, keeps[0]), induced_view(batch, keeps[1])
    assert int(mine1.whole.sum() + mine2.whole.sum()) >= 1  # the fallback is exercised
    for ob, mine in ((ob1, mine1), (ob2, mine2)):
        # the same graphs: per molecule the same multiset of (atom, bond, atom) triples
        assert mine.x.size(0) == ob.x.size(0) and mine.edge_index.size(1) == ob.edge_index.size(1)
        for g in range(len(data)):
            def triples(x, ei, ea, b):
                sel = b[ei[0]] == g
                return sorted(zip(map(tuple, x[ei[0, sel]].tolist()), map(tuple, ea[sel].tolist()),
                                  map(tuple, x[ei[1, sel]].tolist())))
            assert triples(mine.x, mine.edge_index, mine.edge_attr, mine.batch) == triples(ob.x, ob.edge_index, ob.edge_attr, ob.batch)

    official = OfficialGraphCL(_official_gnn_from(ours.gnn)).double().train()
    official.projection_head.load_state_dict(ours.projection_head.state_dict())
    z1 = official.forward_cl(ob1.x, ob1.edge_index, ob1.edge_attr, ob1.batch)
    z2 = official.forward_cl(ob2.x, ob2.edge_index, ob2.edge_attr, ob2.batch)
    loss_official = official.loss_cl(z1, z2)
    loss_official.backward()
    loss_ours, metrics = ours.contrast(mine1, mine2)
    loss_ours.backward()

    diff = abs(loss_ours.item() - loss_official.item())
    grad_diff = _max_grad_diff({n: p.grad for n, p in ours.named_parameters()},
                               {n: p.grad for n, p in official.named_parameters()})
    print(f"graphcl float64: loss {loss_official.item():.12f}, |loss diff| {diff:.2e}, max |grad diff| {grad_diff:.2e}")
    assert diff < 1e-12 and grad_diff < 1e-10
    assert 0.0 <= metrics["acc"] <= 1.0


def test_graphmae_loss_and_gradients_equal_the_official_code(mols):
    """Same weights, molecules and masked atoms (python ``random.sample`` as the official MaskAtom draws
    them): equal loss and gradients in float64, for alpha 1 (official default) and 2."""
    data = mols[:32]
    rnd = random.Random(0)
    chosen = [rnd.sample(range(d.x.size(0)), int(d.x.size(0) * 0.25 + 1)) for d in data]
    ob = official_collate_masking([official_mask_atom(d, c) for d, c in zip(data, chosen)])
    batch = Batch.from_data_list(data)
    atom_indices = torch.cat([torch.tensor(c) + int(batch.ptr[g]) for g, c in enumerate(chosen)])
    for alpha in (1.0, 2.0):
        torch.manual_seed(0)
        ours = build_strategy("graphmae", encoder_kwargs=PAPER, alpha=alpha).double().train()
        masked = mask_atoms(batch, 0.25, atom_indices=atom_indices)
        assert torch.equal(masked.batch.x, ob["x"])
        loss_ours, metrics = ours.reconstruct(masked)
        loss_ours.backward()

        gnn = _official_gnn_from(ours.gnn).train()
        decoder = OfficialGNNDecoder(300, 119).double()
        missing = decoder.load_state_dict(ours.decoder.state_dict(), strict=False)
        assert missing.missing_keys == ["dec_token"] and not missing.unexpected_keys
        loss_official = official_graphmae_loss(gnn, decoder, ob, alpha)
        loss_official.backward()

        diff = abs(loss_ours.item() - loss_official.item())
        theirs = {f"gnn.{n}": p.grad for n, p in gnn.named_parameters()}
        theirs.update({f"decoder.{n}": p.grad for n, p in decoder.named_parameters() if n != "dec_token"})
        grad_diff = _max_grad_diff({n: p.grad for n, p in ours.named_parameters()}, theirs)
        print(f"graphmae float64 alpha={alpha}: loss {loss_official.item():.12f}, |loss diff| {diff:.2e}, "
              f"max |grad diff| {grad_diff:.2e}")
        assert diff < 1e-12 and grad_diff < 1e-10
        assert metrics["num_masked"] == atom_indices.numel()


def test_graphmae_masks_with_the_official_count_and_token(mols):
    batch = Batch.from_data_list(mols[:40])
    s = build_strategy("graphmae", encoder_kwargs=dict(PAPER, emb_dim=16, num_layer=2))
    masked = s.mask(batch, torch.Generator().manual_seed(0))
    counts = (batch.ptr[1:] - batch.ptr[:-1]).tolist()
    per_graph = torch.bincount(batch.batch[masked.masked_atom_indices], minlength=batch.num_graphs).tolist()
    assert per_graph == [int(n * 0.25 + 1) for n in counts]
    assert bool((masked.batch.x[masked.masked_atom_indices] == torch.tensor([119, 0])).all())
    assert torch.equal(masked.masked_atom_labels, batch.x[masked.masked_atom_indices, 0])
    # replace_rate: int(r * M) masked atoms carry another atom's original features instead of the token
    r = build_strategy("graphmae", encoder_kwargs=dict(PAPER, emb_dim=16, num_layer=2), replace_rate=0.3)
    m2 = r.mask(batch, torch.Generator().manual_seed(0))
    rows = m2.batch.x[m2.masked_atom_indices]
    token = (rows == torch.tensor([119, 0])).all(dim=1)
    num_m = m2.masked_atom_indices.numel()
    assert int((~token).sum()) == int(0.3 * num_m)
    originals = set(map(tuple, batch.x.tolist()))
    assert all(tuple(row) in originals for row in rows[~token].tolist())
    unmasked = torch.ones(batch.x.size(0), dtype=torch.bool)
    unmasked[m2.masked_atom_indices] = False
    assert torch.equal(m2.batch.x[unmasked], batch.x[unmasked])


def test_nt_xent_is_the_official_one_directional_loss():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5, dtype=torch.double), torch.randn(6, 5, dtype=torch.double)
    assert abs(float(nt_xent(z1, z2, 0.1)) - float(OfficialGraphCL.loss_cl(z1, z2, 0.1))) < 1e-12
    # not symmetric in the two views (view 2 is never the anchor) ...
    assert abs(float(nt_xent(z1, z2)) - float(nt_xent(z2, z1))) > 1e-3
    # ... and the positive is not in the denominator: identical views with orthogonal rows give -1/T + log(B-1)
    eye = torch.eye(4, dtype=torch.double)
    assert abs(float(nt_xent(eye, eye, 0.5)) - (-2.0 + np.log(3.0))) < 1e-12


# --------------------------------------------------------------------------------------- defaults
def test_defaults_are_the_official_ones():
    cl = build_strategy("graphcl", encoder_kwargs=dict(PAPER, emb_dim=8, num_layer=2))
    assert cl.options == {"aug1": "random", "aug2": "random", "aug_ratio1": 0.2, "aug_ratio2": 0.2, "temperature": 0.1}
    mae = build_strategy("graphmae", encoder_kwargs=dict(PAPER, emb_dim=8, num_layer=2))
    assert mae.options == {"mask_rate": 0.25, "replace_rate": 0.0, "alpha": 1.0, "decoder": "gin"}
    assert not hasattr(mae.decoder, "dec_token")
    graphcl, graphmae = get_strategy_class("graphcl"), get_strategy_class("graphmae")
    assert [training_default(graphcl, k) for k in ("epochs", "batch_size", "lr", "decay")] == [80, 256, 1e-3, 0.0]
    assert [training_default(graphmae, k) for k in ("epochs", "batch_size", "lr", "decay")] == [100, 256, 1e-3, 0.0]
    assert training_default(get_strategy_class("contextpred"), "epochs") == 100
    with pytest.raises(ValueError, match="aug1 must be one of"):
        build_strategy("graphcl", encoder_kwargs=PAPER, aug1="permE")
    with pytest.raises(ValueError, match="reference featurizer"):
        build_strategy("graphmae", encoder_kwargs=dict(PAPER, input="ogb"))


def test_graphcl_batch_of_one_is_a_zero_loss_that_touches_every_parameter(mols):
    s = build_strategy("graphcl", encoder_kwargs=dict(PAPER, emb_dim=16, num_layer=2))
    loss, metrics = s(Batch.from_data_list(mols[:1]), generator=torch.Generator().manual_seed(0))
    assert loss.item() == 0.0 and metrics["num_skipped_batches"] == 1.0
    loss.backward()
    assert all(p.grad is not None for p in s.parameters())
