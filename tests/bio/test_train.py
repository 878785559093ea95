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
    calls = []
    if name == "contextpred":  # the bio pair extraction (centre-rooted) must be the one used
        from gnnpretrain.bio import strategies as bio_strategies

        real = bio_strategies.center_context
        s.extract_pair = lambda b, generator=None: calls.append(1) or real(b, s.r1)
    opt = torch.optim.Adam(s.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss, metrics = s(batch, torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss"])
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses
    if name == "contextpred":
        from gnnpretrain.bio.transforms import center_context

        assert len(calls) == 15
        # only ego-networks lying entirely within 1 hop of their centre have no context
        dropped = center_context(batch, 1).num_dropped
        assert metrics["num_no_context"] == dropped < 8


def test_pretrain_masking_then_finetune_learns(small_bio, tmp_path):
    ds = small_bio
    torch.manual_seed(0)
    strategy = build_strategy("attrmasking", domain="bio", encoder_kwargs=ENC)
    hist = pretrain(strategy, make_pretrain_loader(ds, 256, seed=0), epochs=2, device="cpu", out_dir=tmp_path / "pre",
                    progress=False, log=lambda m: None)
    assert len(hist) == 2 and (tmp_path / "pre" / "model.pth").is_file()
    assert hist[-1]["loss"] < hist[0]["loss"], hist  # masked-channel prediction improves

    sp = ds.split
    task = Task(domain="bio", name="string_human_small", dataset=ds, train_idx=sp["train"], valid_idx=sp["valid"],
                test_idx=sp["test"], num_tasks=ds.num_tasks, model_kwargs={"input": "bio", "center_pool": True},
                split="protein")
    cfg = FinetuneConfig(dataset="string_human_small", domain="bio", input_model_file=str(tmp_path / "pre" / "model.pth"),
                         num_layer=2, emb_dim=32, epochs=3, batch_size=32, seeds=[0], progress=False)
    rec = finetune_seed(task, 0, cfg, "cpu")
    curve = rec["curve"]
    assert curve[-1]["train_loss"] < curve[0]["train_loss"]
    # the GO labels are predictable from ego-network structure: well above chance on held-out proteins
    assert rec["best_valid"]["test_auc"] > 0.6, curve


def test_command_line_scripts_run_bio(tmp_path, monkeypatch, data_dir):
    """scripts/pretrain.py and scripts/finetune.py reach the bio code through the registries."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    opts = "max_centres=400,max_neighbors=3,num_downstream=3,min_positives=10,num_coarse=20"
    monkeypatch.setenv("GNNPRETRAIN_BIO_OPTIONS", opts)

    def load(name):
        spec = importlib.util.spec_from_file_location(f"_bio_test_{name}", repo / "scripts" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    common = ["--num-layer", "2", "--emb-dim", "16", "--cache", str(tmp_path / "cache"), "--data-root", str(data_dir)]
    pre = load("pretrain")
    for strategy in ("attrmasking", "supervised"):
        _, hist = pre.main(["--domain", "bio", "--strategy", strategy, "--epochs", "1", "--batch-size", "128",
                            "--output", str(tmp_path / strategy), "--no-progress", "--device", "cpu", *common])
        assert len(hist) == 1 and math.isfinite(hist[0]["loss"])
    cfg = json.loads((tmp_path / "supervised" / "config.json").read_text())
    assert cfg["strategy_options"]["num_tasks"] == 20  # the coarse GO terms, not the downstream ones
    ft = load("finetune")
    summary = ft.main(["--domain", "bio", "--dataset", "string_human", "--epochs", "1", "--seeds", "0",
                       "--input-model-file", str(tmp_path / "attrmasking" / "model.pth"), "--output",
                       str(tmp_path / "ft"), "--no-progress", "--device", "cpu", *common])
    assert summary["domain"] == "bio" and summary["dataset"] == "string_human"
    rec = json.loads(next((tmp_path / "ft").rglob("seed0.json")).read_text())
    assert rec["num_tasks"] == 3 and rec["split"]["method"] == "protein"
    assert rec["task_info"]["dataset_config"]["max_centres"] == 400
