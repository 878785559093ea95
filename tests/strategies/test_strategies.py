"""Each pre-training strategy learns on a small real corpus (BBBP molecules), and its edge cases."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from gnnpretrain.chem import smiles_to_graph
from gnnpretrain.strategies import STRATEGIES, build_strategy, cycle_index, get_strategy_class, register_strategy

TINY = dict(num_layer=2, emb_dim=32, JK="last", drop_ratio=0.0, gnn_type="gin")


def _graphs(smiles, labels=None):
    out = []
    for i, s in enumerate(smiles):
        g = smiles_to_graph(s)
        if g is None:
            continue
        if labels is not None:
            g.y = torch.tensor([[labels[i]]], dtype=torch.float)
        out.append(g)
    return out


@pytest.fixture(scope="module")
def bbbp(data_dir):
    df = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv").iloc[:320]
    return _graphs(df["smiles"].tolist(), df["p_np"].astype(float).tolist())


@pytest.fixture(scope="module")
def bbbp_batches(bbbp):
    from torch_geometric.data import Batch

    return [Batch.from_data_list(bbbp[i : i + 32]) for i in range(0, len(bbbp), 32)]


def _train(strategy, batches, steps, lr=5e-3):
    opt = torch.optim.Adam(strategy.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    losses, accs = [], []
    for step in range(steps):
        loss, metrics = strategy(batches[step % len(batches)], generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        accs.append(metrics["acc"])
    return losses, accs


# (strategy, options, steps, required loss ratio last/first, accuracy the last steps must exceed or None)
CASES = [
    ("contextpred", {}, 25, 0.8, 0.6),
    ("contextpred", {"mode": "skipgram", "neg_samples": 2}, 15, 0.8, None),
    ("attrmasking", {"mask_edge": True}, 25, 0.5, 0.6),
    ("edgepred", {}, 25, 0.8, 0.6),
    ("infomax", {}, 25, 0.9, 0.55),
    ("supervised", {"num_tasks": 1}, 25, 0.97, 0.6),
    # graphcl's acc: the own second view is the nearest of the batch's 32 (chance 1/32)
    ("graphcl", {}, 25, 0.9, 0.1),
    ("graphmae", {}, 25, 0.5, 0.6),
]


@pytest.mark.parametrize("name, options, steps, ratio, min_acc", CASES)
def test_loss_falls_on_real_molecules(bbbp_batches, name, options, steps, ratio, min_acc):
    """A tiny encoder (2 layers x 32) learns each objective within a few dozen steps on real molecules.

    Chance accuracy is 0.5 for the binary objectives; for attribute masking the first steps are
    below 0.45 (119 classes); for graphcl it is 1/32.
    """
    torch.manual_seed(0)
    strategy = build_strategy(name, encoder_kwargs=TINY, **options)
    losses, accs = _train(strategy, bbbp_batches, steps)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert all(torch.isfinite(torch.tensor(losses)))
    assert last < ratio * first, f"{name}: loss did not fall clearly ({first:.4f} -> {last:.4f})"
    if min_acc is not None:
        assert sum(accs[-5:]) / 5 > min_acc, f"{name}: accuracy of the last steps {accs[-5:]}"


def test_contextpred_leaves_out_graphs_without_context(bbbp):
    from torch_geometric.data import Batch

    strategy = build_strategy("contextpred", encoder_kwargs=TINY)  # k=2, context ring 1 < d <= 4
    small = _graphs(["C", "CC", "O=O", "[Na+].[Cl-]"])  # no atom at distance >= 2 from any root
    batch = Batch.from_data_list(small + bbbp[:6])
    loss, metrics = strategy(batch, generator=torch.Generator().manual_seed(0))
    assert metrics["num_no_context"] >= 4 and metrics["num_graphs"] == 10
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in strategy.gnn.parameters())

    # a batch where no graph has a context: zero loss, but every parameter still gets a gradient (DDP)
    strategy.zero_grad(set_to_none=True)
    loss, metrics = strategy(Batch.from_data_list(small), generator=torch.Generator().manual_seed(0))
    assert float(loss.detach()) == 0.0 and metrics["num_no_context"] == len(small)
    loss.backward()
    grads = [p.grad for p in strategy.parameters()]
    assert all(g is not None and float(g.abs().sum()) == 0.0 for g in grads)


def test_contextpred_cbow_scores_match_manual_computation(bbbp):
    from torch_geometric.data import Batch
    from torch_geometric.utils import scatter

    from gnnpretrain.data import extract_context

    torch.manual_seed(1)
    s = build_strategy("contextpred", encoder_kwargs=TINY, neg_samples=2).eval()
    batch = Batch.from_data_list(bbbp[:12])
    loss, _ = s(batch, generator=torch.Generator().manual_seed(3))
    pair = extract_context(batch, 2, 1, 4, generator=torch.Generator().manual_seed(3))
    sub = s.gnn(pair.sub_x, pair.sub_edge_index, pair.sub_edge_attr)[pair.sub_center]
    ctx = scatter(s.context_gnn(pair.ctx_x, pair.ctx_edge_index, pair.ctx_edge_attr)[pair.anchor], pair.anchor_batch,
                  dim=0, reduce="mean")
    n = sub.size(0)
    pos = (sub * ctx).sum(-1)
    neg = torch.cat([(sub * ctx[[(i + sh) % n for i in range(n)]]).sum(-1) for sh in (1, 2)])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(pos, torch.ones_like(pos)) + 2 * bce(neg, torch.zeros_like(neg))
    assert torch.allclose(loss, expected, atol=1e-5)


def test_cycle_index_matches_reference_definition():
    for num in (1, 2, 5):
        for shift in range(1, num):
            ref = torch.arange(num) + shift
            ref[-shift:] = torch.arange(shift)
            assert torch.equal(cycle_index(num, shift), ref)


def test_registry_errors_list_choices():
    with pytest.raises(ValueError, match="choose one of .*attrmasking.*contextpred"):
        get_strategy_class("nope")
    with pytest.raises(ValueError, match="registered domains"):
        get_strategy_class("contextpred", domain="vision")
    with pytest.raises(TypeError, match="does not take option.*mask_rate"):
        build_strategy("contextpred", encoder_kwargs=TINY, mask_rate=0.3)
    with pytest.raises(ValueError, match="mode must be one of"):
        build_strategy("contextpred", encoder_kwargs=TINY, mode="bag")
    with pytest.raises(ValueError, match="JK='concat'"):
        build_strategy("contextpred", encoder_kwargs={**TINY, "JK": "concat"})


def test_register_strategy_for_another_domain():
    from gnnpretrain.strategies import Strategy

    @register_strategy("dummy_test_only", domain="test_domain")
    class Dummy(Strategy):
        def __init__(self, encoder_kwargs, alpha: float = 1.0):
            super().__init__(encoder_kwargs, alpha=alpha)

    try:
        s = build_strategy("dummy_test_only", domain="test_domain", encoder_kwargs={}, alpha=2.0)
        assert s.config() == {"strategy": "dummy_test_only", "domain": "test_domain", "encoder": {},
                              "strategy_options": {"alpha": 2.0}}
        with pytest.raises(ValueError, match="already registered"):
            register_strategy("dummy_test_only", domain="test_domain")(type("Other", (Strategy,), {}))
    finally:
        STRATEGIES.pop("test_domain", None)
