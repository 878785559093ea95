"""A short pre-train + fine-tune on a real subsample, through the shared loop, strategies and fine-tuning
code (bio plugs in via the registries)."""

from __future__ import annotations

import math

import pytest
import torch

from gnnpretrain.strategies import build_strategy, strategy_names
from gnnpretrain.train.finetune import FinetuneConfig, finetune_seed
from gnnpretrain.train.pretrain import pretrain
from gnnpretrain.train.pretrain_data import make_pretrain_loader
from gnnpretrain.train.tasks import Task

ENC = dict(num_layer=2, emb_dim=32, input="bio", gnn_type="gin")


def test_bio_strategies_are_registered():
    import gnnpretrain.bio  # noqa: F401

    assert {"attrmasking", "contextpred", "supervised"} <= set(strategy_names("bio"))


@pytest.mark.parametrize("name", ["contextpred", "supervised"])
def test_strategy_step_reduces_loss(small_bio, name):
    """A few optimiser steps on one fixed batch lower each strategy's loss (they can learn)."""
    from torch_geometric.loader import DataLoader

    torch.manual_seed(0)
    opts = {"num_tasks": small_bio.num_pretrain_tasks} if name == "supervised" else {}
    s = build_strategy(name, domain="bio", encoder_kwargs=ENC, **opts)
    batch = next(iter(DataLoader(small_bio[small_bio.split["train"][:64]], batch_size=64)))
    opt = torch.optim.Adam(s.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss, metrics = s(batch, torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss"])
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses


def test_pretrain_masking_then_finetune_learns(small_bio, tmp_path):
    ds = small_bio
    torch.manual_seed(0)
    strategy = build_strategy("attrmasking", domain="bio", encoder_kwargs=ENC)
    hist = pretrain(strategy, make_pretrain_loader(ds, 256, seed=0), epochs=2, device="cpu", out_dir=tmp_path / "pre",
                    progress=False, log=lambda m: None)
    assert len(hist) == 2 and (tmp_path / "pre" / "model.pth").is_file()
    # masked-channel prediction beats the 7-way chance level after two short epochs
    assert hist[-1]["acc"] > 0.5, hist

    sp = ds.split
    task = Task(domain="bio", name="string_human_small", dataset=ds, train_idx=sp["train"], valid_idx=sp["valid"],
                test_idx=sp["test"], num_tasks=ds.num_tasks, model_kwargs={"input": "bio", "center_pool": True},
                split="protein")
    cfg = FinetuneConfig(dataset="string_human_small", domain="bio", input_model_file=str(tmp_path / "pre" / "model.pth"),
                         num_layer=2, emb_dim=32, epochs=4, batch_size=32, seeds=[0], progress=False)
    rec = finetune_seed(task, 0, cfg, "cpu")
    curve = rec["curve"]
    assert curve[-1]["train_loss"] < curve[0]["train_loss"]
    # the GO labels are predictable from ego-network structure: well above chance on held-out proteins
    assert rec["best_valid"]["test_auc"] > 0.55, curve
