"""Hyperparameter search (issue 22): a frozen encoder, the per-epoch hook, and Optuna / Ray Tune searches
through ``scripts/finetune.py --hpopt N`` — real data (a few hundred BACE molecules), real engines, tiny
encoders (2 layers x 16)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from gnnpretrain.train import FinetuneConfig, finetune_seed, load_task, run_finetune
from gnnpretrain.train.run.config import RESULT_KEY_DEFAULTS, config_mismatch, recorded_config

REPO = Path(__file__).resolve().parents[2]
TINY = dict(num_layer=2, emb_dim=16, epochs=2, batch_size=64, seeds=[0], progress=False, num_threads=1)


def _small_root(tmp: Path, data_dir: Path, n: int = 240) -> Path:
    """A data root with ``n`` real BACE molecules, so every fine-tune takes a fraction of a second."""
    root = tmp / "root"
    (root / "moleculenet").mkdir(parents=True)
    pd.read_csv(data_dir / "moleculenet" / "bace.csv").sample(n, random_state=0).to_csv(
        root / "moleculenet" / "bace.csv", index=False
    )
    return root


def _encoder(path: Path) -> Path:
    """A real (randomly initialised) 2 x 16 GIN encoder file, standing in for a pre-trained one."""
    from gnnpretrain.nn import GNN

    torch.manual_seed(0)
    torch.save(GNN(num_layer=2, emb_dim=16).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory, data_dir):
    """(data root, cache, encoder file) shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("hpopt")
    return _small_root(tmp, data_dir), tmp / "cache", _encoder(tmp / "gin_mine.pth")


def _config(small, tmp_path, **kw) -> FinetuneConfig:
    root, cache, _ = small
    return FinetuneConfig(dataset="bace", data_root=str(root), cache=str(cache), output=str(tmp_path / "out"),
                          **{**TINY, **kw})


def _scores(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("time_s", "test_per_task")}


# -- freeze ------------------------------------------------------------------------------------------
def test_frozen_encoder_keeps_its_weights_and_the_head_learns(small, tmp_path):
    from gnnpretrain.train.separate import build_training, train_epoch
    from gnnpretrain.utils import seed_everything

    cfg = _config(small, tmp_path, input_model_file=str(small[2]), freeze=True, dropout=0.5)
    task = load_task(cfg)
    seed_everything(0)
    model, optimizer = build_training(task, cfg, torch.device("cpu"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from gnnpretrain.train.run.data import train_loader

    for _ in range(2):
        train_epoch(model, train_loader(task, cfg.batch_size, 0, 0), optimizer, torch.device("cpu"))
        assert model.training and not model.gnn.training  # BatchNorm statistics and dropout fixed
    after = model.state_dict()
    encoder = [k for k in before if k.startswith("gnn.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)  # incl. BatchNorm running stats
    head = [k for k in before if k.startswith("graph_pred_linear.")]
    assert head and all(not torch.equal(before[k], after[k]) for k in head)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {
        id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in model.graph_pred_linear.parameters()}

    # the whole seed: a different result from the unfrozen one; fused runs fall back to separate ones
    frozen = finetune_seed(task, 0, cfg, "cpu")
    assert frozen["config"]["freeze"] is True
    unfrozen = finetune_seed(task, 0, dataclasses.replace(cfg, freeze=False), "cpu")
    assert [_scores(r) for r in frozen["curve"]] != [_scores(r) for r in unfrozen["curve"]]
    from gnnpretrain.train.fused.members import fallback_reason

    assert fallback_reason(task, cfg) == "frozen encoder"
    fused = run_finetune(dataclasses.replace(cfg, fused=True))
    assert fused["test_score"]["best-valid"]["mean"] == frozen["best_valid"]["test_score"]


def test_freeze_is_a_result_key_that_old_files_and_ledger_hashes_do_not_know(small, tmp_path):
    from gnnpretrain.train.compare.ledger import config_hash

    assert RESULT_KEY_DEFAULTS["freeze"] is False
    now = recorded_config(_config(small, tmp_path))
    old = {k: v for k, v in now.items() if k != "freeze"}  # a seed file written before the option existed
    assert config_mismatch(old, now) == []
    assert config_hash(now) == config_hash(old)  # ledger lines keep their hash
    frozen = recorded_config(_config(small, tmp_path, freeze=True))
    assert config_mismatch(old, frozen) == ["freeze: file has False, now True"]
    assert config_hash(frozen) != config_hash(old)


def test_on_epoch_sees_every_curve_row_and_can_stop_the_run(small, tmp_path):
    cfg = _config(small, tmp_path, epochs=3)
    task = load_task(cfg)
    seen = []
    rec = finetune_seed(task, 0, cfg, "cpu", on_epoch=lambda e, row: seen.append((e, dict(row))))
    assert [e for e, _ in seen] == [1, 2, 3] and seen[0][1]["valid_score"]
    assert [_scores(r) for _, r in seen] == [_scores(r) for r in rec["curve"]]
    again = finetune_seed(task, 0, cfg, "cpu")["curve"]
    assert [_scores(r) for r in again] == [_scores(r) for r in rec["curve"]]  # the hook changes nothing

    class Stop(Exception):
        pass

    def stop(epoch, row):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        finetune_seed(task, 0, cfg, "cpu", on_epoch=stop)
