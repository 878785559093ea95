"""Fine-tuning on a user's CSV (classification and regression) and on MoleculeACE, with real molecules."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gnnpretrain.train import FinetuneConfig, finetune_seed, load_task, run_finetune, summarize
from gnnpretrain.train.tasks import get_task

SMALL = dict(num_layer=2, emb_dim=32, dropout=0.0, progress=False, num_threads=1)


@pytest.fixture(scope="module")
def moleculeace_csv(data_dir) -> Path:
    path = data_dir / "moleculeace" / "CHEMBL2835_Ki.csv"
    if not path.is_file():
        pytest.skip("MoleculeACE data not found")
    return path


def test_moleculeace_regression_learns(moleculeace_csv):
    """Best-valid test RMSE clearly below the test targets' standard deviation (predicting the mean)."""
    cfg = FinetuneConfig(dataset="moleculeace:CHEMBL2835_Ki", seeds=[0], epochs=20, **{**SMALL, "num_layer": 3, "emb_dim": 64})
    task = load_task(cfg)
    assert task.task_type == "regression" and task.metric == "rmse" and task.split == "moleculeace"
    raw = pd.read_csv(moleculeace_csv)
    assert len(task.test_idx) == int((raw["split"] == "test").sum())
    assert len(task.train_idx) + len(task.valid_idx) == int((raw["split"] == "train").sum())
    assert int(task.test_subsets["cliff"].sum()) == int(raw.loc[raw["split"] == "test", "cliff_mol"].sum())
    y_test = torch.cat([g.y for g in task.graphs("test")]).numpy()
    rec = finetune_seed(task, 0, cfg, "cpu")
    assert rec["metric"] == "rmse" and rec["higher_is_better"] is False
    best = rec["best_valid"]
    assert best["test_score"] == best["test_rmse"] < 0.75 * float(y_test.std())
    assert best["test_r2"] > 0.3 and "test_score_cliff" in best and "test_auc" not in best
    # best valid = lowest valid RMSE
    assert best["epoch"] == min(rec["curve"], key=lambda r: (r["valid_score"], r["epoch"]))["epoch"]
    scaling = rec["target_scaling"]  # fitted on the training split only (valid carved out)
    train_only = torch.cat([g.y for g in task.graphs("train")]).numpy()
    assert scaling["mean"][0] == pytest.approx(float(train_only.mean()), rel=1e-5)
    assert scaling["std"][0] == pytest.approx(float(train_only.std()), rel=1e-4)


def _bbbp_csv(data_dir: Path, tmp_path: Path) -> Path:
    df = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv").iloc[:800].rename(columns={"smiles": "Structure"})
    rng = np.random.default_rng(0)
    second = df["p_np"].astype(float).where(rng.random(len(df)) > 0.3)  # 30 % missing labels
    df["p_np_partial"] = second.map(lambda v: "" if np.isnan(v) else str(int(v)))
    path = tmp_path / "my_bbbp.csv"
    df[["Structure", "p_np", "p_np_partial"]].to_csv(path, index=False)
    return path


def test_csv_classification_multitarget_with_missing_labels(data_dir, tmp_path):
    path = _bbbp_csv(data_dir, tmp_path)
    cfg = FinetuneConfig(dataset=str(path), smiles_column="Structure", target_columns="p_np,p_np_partial",
                         split="random", seeds=[0], epochs=4, output=str(tmp_path / "out"), **SMALL)
    task = load_task(cfg)
    assert task.task_type == "classification" and task.num_tasks == 2
    ys = torch.cat([task.dataset[i].y for i in range(len(task.dataset))])
    assert torch.isnan(ys[:, 1]).float().mean() > 0.2 and not torch.isnan(ys[:, 0]).any()
    summary = run_finetune(cfg)
    rec = json.loads((tmp_path / "out" / "my_bbbp" / "seed0.json").read_text())
    assert rec["metric"] == "roc_auc" and rec["config"]["dataset_sha256"]
    for part in ("last", "best_valid"):
        assert rec[part]["test_auc"] == rec[part]["test_score"]
    assert summary["test_auc"]["best-valid"]["mean"] > 0.75  # random split of BBBP: learnable in 4 epochs
    # an older seed file (only *_auc keys) summarises to the same numbers
    old = copy.deepcopy(rec)
    for part in ("last", "best_valid"):
        old[part] = {k: v for k, v in old[part].items() if k in ("epoch", "valid_auc", "test_auc", "test_per_task")}
    assert summarize(cfg, [old])["test_auc"] == summarize(cfg, [rec])["test_auc"]


def test_csv_regression_script_resume_and_bad_inputs(moleculeace_csv, tmp_path, run_script):
    raw = pd.read_csv(moleculeace_csv)
    df = pd.DataFrame({"mol": raw["smiles"], "pKi": raw["y"], "part": raw["split"], "note": "x"})
    path = tmp_path / "ki.csv"
    df.to_csv(path, index=False)
    common = ["--dataset", str(path), "--smiles-column", "mol", "--epochs", "2", "--seeds", "0", "--emb-dim", "16",
              "--num-layer", "2", "--threads", "1", "--no-progress", "--output", str(tmp_path / "out")]
    res = run_script("finetune", *common, "--target-columns", "pKi", "--split", "column:part")
    assert res.returncode == 0, res.stderr
    assert "test RMSE" in res.stdout
    rec = json.loads((tmp_path / "out" / "ki" / "seed0.json").read_text())
    assert rec["task_type"] == "regression" and rec["split"]["test"] == int((raw["split"] == "test").sum())
    again = run_script("finetune", *common, "--target-columns", "pKi", "--split", "column:part")
    assert again.returncode == 0 and json.loads((tmp_path / "out" / "ki" / "seed0.json").read_text()) == rec

    # unknown column (CLI): one line naming it and listing the file's columns
    bad = get_err(run_script("finetune", *common[:-1], str(tmp_path / "out2"), "--target-columns", "pIC50"))
    assert "'pIC50'" in bad and "'mol', 'pKi', 'part', 'note'" in bad
    # non-numeric target; classification asked for real values (library: the same messages run_cli prints)
    with pytest.raises(ValueError, match="must hold numbers") as err:
        get_task("chem", str(path), smiles_column="mol", target_columns=["pKi", "note"], task_type="regression")
    assert "'note'" in str(err.value) and "mol, pKi, part, note" in str(err.value)
    with pytest.raises(ValueError, match="0/1") as err:
        get_task("chem", str(path), smiles_column="mol", target_columns=["pKi"], task_type="classification")
    assert "'pKi'" in str(err.value)


def get_err(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_custom_dataset_names_and_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown chem dataset"):
        get_task("chem", "not_a_dataset")
    with pytest.raises(FileNotFoundError, match="Available: "):
        get_task("chem", "moleculeace:CHEMBL0_Ki")
    with pytest.raises(ValueError, match="only apply to a CSV"):
        get_task("chem", "bbbp", target_columns=["p_np"])


def test_architecture_follows_the_checkpoint(tmp_path):
    from gnnpretrain.nn import GNN
    from gnnpretrain.paths import checkpoints_root

    if (checkpoints_root() / "chem" / "graphsage_supervised_contextpred.pth").is_file():
        cfg = FinetuneConfig(dataset="bbbp", input_model_file="graphsage_supervised_contextpred")
        assert (cfg.gnn_type, cfg.num_layer, cfg.emb_dim) == ("graphsage", 5, 300)
        assert Path(cfg.input_model_file).is_file()
    path = tmp_path / "gat_small.pth"
    torch.save(GNN(num_layer=2, emb_dim=8, gnn_type="gat").state_dict(), path)
    cfg = FinetuneConfig(dataset="bbbp", input_model_file=str(path))
    assert (cfg.gnn_type, cfg.num_layer, cfg.emb_dim) == ("gat", 2, 8)
    assert (FinetuneConfig().gnn_type, FinetuneConfig().emb_dim) == ("gin", 300)  # scratch: the paper's
    assert FinetuneConfig(input_model_file=str(path), emb_dim=16).emb_dim == 16  # explicit wins
