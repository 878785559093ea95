"""The results campaign (gnnpretrain.train.compare.campaign, scripts/campaign.py).

Real data (BACE, scaffold split), the real published GCN checkpoint, real fused training — sized down
to 1-2 epochs and two seeds, written to a ledger of its own (the committed one holds the paper
protocol only).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gnnpretrain.paths import REPO_ROOT
from gnnpretrain.train.compare import build_rows, config_from_profile, plan_finetunes
from gnnpretrain.train.compare.campaign import (
    PLAN_PATH,
    CampaignPlanError,
    load_plan,
    next_unit,
    status,
    status_line,
)
from gnnpretrain.train.compare.ledger import Ledger
from gnnpretrain.train.run import FinetuneConfig, seed_path
from gnnpretrain.train.fused import BudgetReached, run_members, state_path
from gnnpretrain.train.tasks import get_task

COMMITTED = REPO_ROOT / "chem" / "results" / "architectures.csv"


def test_plan_follows_the_issue_order_and_names_real_rows():
    cells = load_plan()
    assert len(cells) == 104
    assert [c.row for c in cells[:7]] == [
        "none", "none:gcn", "ref:gcn_supervised_contextpred", "none:graphsage",
        "ref:graphsage_supervised_contextpred", "none:gat", "ref:gat_supervised_contextpred"]
    assert {c.dataset for c in cells if c.stage == 2} == {"bbbp", "clintox", "sider"}
    assert {c.dataset for c in cells if c.device == "cuda"} == {"hiv", "muv"}
    assert [c.order for c in cells] == sorted(c.order for c in cells)
    # every row of the plan is a row of the architectures profile (resolvable reference checkpoints)
    config = config_from_profile("architectures", datasets=["bace"])
    names = {r.name for r in build_rows(config)}
    assert {c.row for c in cells} <= names


def test_committed_ledger_lines_count_as_done():
    """The lines committed before the campaign existed are cells the campaign does not run again."""
    lines = Ledger(COMMITTED).read()
    assert lines, "the committed ledger is empty"
    config = config_from_profile("architectures", datasets=["bace"], rows=["ref:gcn_supervised_contextpred"],
                                 seeds=[0])
    rows = build_rows(config)
    checkpoints = {r.name: r.checkpoint for r in rows}
    plan = plan_finetunes(config, rows, checkpoints, Ledger(COMMITTED))
    assert plan.todo == [] and plan.done == 2  # none:gcn and ref:gcn_supervised_contextpred, seed 0
    st = status(load_plan(), lines)
    assert st["seeds_done"][("bace", "none:gcn")] >= {0}
    # the campaign's own unit configs see them as done too, whether or not the unit holds a checkpoint row
    from gnnpretrain.train.compare.campaign import unit_config

    cells = {c.row: c for c in load_plan() if c.dataset == "bace"}
    for unit, n in (([cells["none:gcn"], cells["ref:gcn_supervised_contextpred"]], 2), ([cells["none:gcn"]], 1)):
        cfg = unit_config(unit, ledger=COMMITTED, output="/nonexistent/campaign", seeds=[0])
        rows = build_rows(cfg)
        plan = plan_finetunes(cfg, rows, {r.name: r.checkpoint for r in rows}, Ledger(COMMITTED))
        assert plan.todo == [] and plan.done == n


def test_units_group_a_scratch_row_with_its_checkpoint():
    cells = load_plan()
    assert [c.row for c in next_unit(cells[1:])] == ["none:gcn", "ref:gcn_supervised_contextpred"]
    assert [c.row for c in next_unit(cells)] == ["none"]
    line = status_line(status(cells, []))
    assert line.startswith("cells done 0/104") and "core-hours" in line and "GPU-only" in line


def test_malformed_plan_is_one_error_naming_the_line(tmp_path):
    bad = tmp_path / "plan.csv"
    bad.write_text("order,stage,dataset,row,device\n1,1,bace,none,any\nx,1,bbbp,none,any\n")
    with pytest.raises(CampaignPlanError, match="line 3"):
        load_plan(bad)
    bad.write_text("order,stage,dataset,row,device\n1,1,bace,none,any\n2,1,bace,none,any\n")
    with pytest.raises(CampaignPlanError, match="listed twice"):
        load_plan(bad)
    assert PLAN_PATH.is_file()


def test_deadline_saves_the_group_and_the_rerun_equals_an_uninterrupted_run(data_dir, cache, tmp_path):
    task = get_task("chem", "bace", data_root=data_dir, cache=cache, split="scaffold")
    small = dict(dataset="bace", num_layer=2, emb_dim=32, epochs=3, dropout=0.5, progress=False)
    cfg = FinetuneConfig(output=str(tmp_path / "a"), **small)
    members = [(cfg, 0), (cfg, 1)]
    lines: list[str] = []
    with pytest.raises(BudgetReached) as info:
        run_members(members, task=task, stop_at=0.0, progress=lines.append)
    assert info.value.epoch == 1 and state_path(members).is_file() and not seed_path(cfg, 0).exists()
    assert len(lines) == 1 and "epoch 1/3" in lines[0] and "min left" in lines[0]
    resumed = run_members(members, task=task, progress=lines.append)
    assert [ln.split(": epoch ")[1].split("/")[0] for ln in lines[1:]] == ["2", "3"]  # resumed at epoch 2
    ref_cfg = FinetuneConfig(output=str(tmp_path / "b"), **small)
    ref = run_members([(ref_cfg, 0), (ref_cfg, 1)], task=task)
    for a, b in zip(resumed, ref):
        assert [r["train_loss"] for r in a["curve"]] == [r["train_loss"] for r in b["curve"]]
        assert [r["test_auc"] for r in a["curve"]] == [r["test_auc"] for r in b["curve"]]


@pytest.mark.slow
def test_campaign_script_end_to_end(run_script, tmp_path, data_dir, cache):
    """Two cells (GCN scratch and the published GCN checkpoint on BACE), 1 epoch, seeds 0-1: one fused
    unit, four ledger lines, a per-epoch line, and a rerun that has nothing left to do."""
    plan = tmp_path / "plan.csv"
    plan.write_text("order,stage,dataset,row,device\n1,1,bace,none:gcn,any\n2,1,bace,ref:gcn_supervised_contextpred,any\n")
    ledger = tmp_path / "ledger.csv"
    common = ["--plan", str(plan), "--ledger", str(ledger), "--output", str(tmp_path / "runs"), "--epochs", "1",
              "--seeds", "0-1", "--nice", "0", "--data-root", str(data_dir), "--cache", str(cache)]
    res = run_script("campaign", "--hours", "1", *common)
    assert res.returncode == 0, res.stderr
    assert "group of 4" in res.stdout and "epoch 1/1" in res.stdout
    assert "cells done 2/2" in res.stdout.strip().splitlines()[-1]
    lines = Ledger(ledger).read()
    assert sorted((ln["row"], ln["seed"]) for ln in lines) == [
        ("none:gcn", "0"), ("none:gcn", "1"), ("ref:gcn_supervised_contextpred", "0"),
        ("ref:gcn_supervised_contextpred", "1")]
    assert all(ln["experiment"] == "architectures" and ln["epochs"] == "1" for ln in lines)
    assert not (tmp_path / "runs" / "inflight.json").exists()
    again = run_script("campaign", "--hours", "1", *common)
    assert again.returncode == 0 and "group of" not in again.stdout
    assert len(Ledger(ledger).read()) == 4


def test_campaign_script_refuses_bad_budgets_and_protocol_changes(run_script, tmp_path):
    res = run_script("campaign")
    assert res.returncode == 2 and "--hours" in res.stderr
    res = run_script("campaign", "--hours", "1", "--epochs", "1")
    assert res.returncode == 2 and "--ledger" in res.stderr
    res = run_script("campaign", "--status", "--ledger", str(tmp_path / "none.csv"))
    assert res.returncode == 0 and res.stdout.startswith("cells done 0/104")


def test_an_interrupted_unit_keeps_its_group_cut(tmp_path, data_dir, cache, run_script):
    """A unit cut to fewer models by the budget resumes its group in flight with the same cut (its state
    file's group); the unit's other seeds are then planned afresh (one group of the rest here)."""
    plan = tmp_path / "plan.csv"
    plan.write_text("order,stage,dataset,row,device\n1,1,bace,none:gcn,any\n")
    out = tmp_path / "runs"
    out.mkdir()
    (out / "inflight.json").write_text(json.dumps({"unit": ["bace", ["none:gcn"]], "fuse_max": 1}))
    res = run_script("campaign", "--hours", "1", "--plan", str(plan), "--ledger", str(tmp_path / "l.csv"),
                     "--output", str(out), "--epochs", "1", "--seeds", "0-2", "--nice", "0",
                     "--data-root", str(data_dir), "--cache", str(cache))
    assert res.returncode == 0, res.stderr
    assert "resuming unit bace/none:gcn (groups of 1) with its group in flight (seeds 0)" in res.stdout
    assert res.stdout.count("fused group of 1 (seeds [0])") == 1
    assert res.stdout.count("fused group of 2 (seeds [1, 2])") == 1
    assert len(pd.read_csv(tmp_path / "l.csv")) == 3


def test_task_pack_round_trip_gives_the_same_graphs_and_the_same_training(data_dir, cache, tmp_path):
    from gnnpretrain.train.separate import finetune_seed
    from gnnpretrain.train.taskpack import load_packed_task, pack_task

    task = get_task("chem", "bace", data_root=data_dir, cache=cache, split="scaffold")
    size = pack_task(task, tmp_path / "bace.pt")
    assert size < 1 << 20  # 1,513 molecules in well under a MiB
    packed = load_packed_task(tmp_path / "bace.pt")
    assert packed.sizes == task.sizes and packed.num_tasks == task.num_tasks
    assert packed.model_kwargs == task.model_kwargs and packed.split == task.split
    for part in ("train", "valid", "test"):
        for a, b in zip(task.graphs(part), packed.graphs(part)):
            assert a.x.equal(b.x) and a.edge_index.equal(b.edge_index) and a.edge_attr.equal(b.edge_attr)
            assert a.y.reshape(-1).float().nan_to_num(-1).equal(b.y.reshape(-1).nan_to_num(-1))
    cfg = FinetuneConfig(dataset="bace", num_layer=2, emb_dim=32, epochs=1, progress=False)
    rec_a, rec_b = finetune_seed(task, 0, cfg, "cpu"), finetune_seed(packed, 0, cfg, "cpu")
    assert rec_a["curve"][0]["train_loss"] == rec_b["curve"][0]["train_loss"]
    assert rec_a["best_valid"]["test_auc"] == rec_b["best_valid"]["test_auc"]


@pytest.mark.slow
def test_gpu_script_end_to_end_on_cpu_without_rdkit(run_script, tmp_path, data_dir, cache):
    """scripts/campaign_gpu.sh as a GPU machine runs it (no RDKit, no raw data: only the pack), here on
    CPU with tiny settings; its ledger merges back into another ledger under the ledger's rules."""
    import os
    import subprocess

    plan = tmp_path / "plan.csv"
    plan.write_text("order,stage,dataset,row,device\n1,1,bace,none:gcn,any\n2,1,bace,ref:gcn_supervised_contextpred,any\n")
    pack = tmp_path / "pack"
    res = run_script("campaign", "--pack", str(pack), "--plan", str(plan), "--ledger", str(tmp_path / "none.csv"),
                     "--data-root", str(data_dir), "--cache", str(cache))
    assert res.returncode == 0, res.stderr
    assert (pack / "tasks" / "bace-scaffold-0-reference.pt").is_file()
    assert [p.name for p in (pack / "checkpoints").iterdir()] == ["gcn_supervised_contextpred.pth"]
    blocked = tmp_path / "blocked"  # import rdkit / ogb fails, as on the GPU machine
    for mod in ("rdkit", "ogb"):
        (blocked / mod).mkdir(parents=True)
        (blocked / mod / "__init__.py").write_text(f"raise ImportError('{mod} is not installed here')\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(blocked), "PACK": str(pack), "OUT": str(out), "DEVICE": "cpu",
           "MINUTES": "20", "BASE_LEDGER": "", "RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1",
           "GNNPRETRAIN_DATA": str(tmp_path / "no-data")}
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "campaign_gpu.sh"), "--plan", str(plan), "--epochs", "1",
                           "--seeds", "0-1", "--threads", "1"], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = Ledger(out / "architectures.csv").read()
    log = (out / "campaign.log").read_text()
    assert len(lines) == 4 and "tasks from the pack" in log and "cells done 2/2" in log
    # the same cells computed here (with RDKit) have the same config hashes: the merge adds nothing new
    here = tmp_path / "here.csv"
    res = run_script("campaign", "--hours", "1", "--plan", str(plan), "--ledger", str(here), "--output",
                     str(tmp_path / "runs-here"), "--epochs", "1", "--seeds", "0-1", "--nice", "0",
                     "--data-root", str(data_dir), "--cache", str(cache))
    assert res.returncode == 0, res.stderr
    merged = run_script("campaign", "--merge", str(out / "architectures.csv"), "--ledger", str(here), "--plan", str(plan),
                        "--seeds", "0-1")
    assert merged.returncode == 0 and "merged 0 new line(s)" in merged.stdout
    ours = {(ln["row"], ln["seed"]): ln for ln in Ledger(here).read()}
    for ln in lines:  # same graphs, split, weights and seeds: the same numbers, bit for bit
        assert ours[ln["row"], ln["seed"]]["config_hash"] == ln["config_hash"]
        assert ours[ln["row"], ln["seed"]]["test_auc_best_valid"] == ln["test_auc_best_valid"]
