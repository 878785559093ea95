"""Strategy comparison: negative-transfer marking, report writers, and resuming a killed comparison."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from gnnpretrain.stats import NOT_SIGNIFICANT, SIGNIFICANT, negative_transfer
from gnnpretrain.train.compare import (
    CompareConfig,
    build_rows,
    config_from_profile,
    csv_table,
    gain_figure,
    markdown_table,
    run_comparison,
    summarize_results,
)


# ------------------------------------------------------------------------- negative transfer
def test_clear_negative_transfer_is_significant():
    base = [0.700, 0.712, 0.695, 0.705, 0.708]
    pre = [0.640, 0.652, 0.637, 0.646, 0.650]
    t = negative_transfer(pre, base, alpha=0.05)
    assert t.marker == SIGNIFICANT and t.significant
    assert t.diff == pytest.approx(np.mean(pre) - np.mean(base))
    assert t.p_value < 1e-4


def test_lower_but_noisy_is_not_significant():
    base = [0.70, 0.74, 0.66]
    pre = [0.69, 0.75, 0.63]  # mean 0.69 < 0.70, but the spread dwarfs the gap
    t = negative_transfer(pre, base, alpha=0.05)
    assert t.diff < 0 and t.marker == NOT_SIGNIFICANT
    assert 0.05 < t.p_value < 1.0
    # the same gap becomes significant with a looser threshold only if p allows it
    assert negative_transfer(pre, base, alpha=0.99).marker == SIGNIFICANT


def test_gain_and_degenerate_cases():
    assert negative_transfer([0.8, 0.81], [0.7, 0.71]).marker == ""
    one = negative_transfer([0.6], [0.7, 0.72])  # a single seed cannot be tested
    assert math.isnan(one.p_value) and one.marker == NOT_SIGNIFICANT
    exact = negative_transfer([0.6, 0.6], [0.7, 0.7])  # zero variance: the gap is exact
    assert exact.p_value == 0.0 and exact.marker == SIGNIFICANT
    with pytest.raises(ValueError, match="alpha"):
        negative_transfer([0.6], [0.7], alpha=1.5)
    with pytest.raises(ValueError, match="both groups"):
        negative_transfer([], [0.7])


def test_table_marks_cells_on_constructed_results(tmp_path):
    results = {
        "none": {"bbbp": [0.70, 0.71, 0.69, 0.70], "bace": [0.75, 0.79, 0.71, 0.75]},
        "contextpred": {"bbbp": [0.60, 0.61, 0.59, 0.60], "bace": [0.74, 0.80, 0.70, 0.74]},
        "supervised": {"bbbp": [0.75, 0.76, 0.74, 0.75], "bace": [0.80, 0.81, 0.79, 0.80]},
    }
    baselines = {"contextpred": "none", "supervised": "none"}
    cells = summarize_results(results, baselines, ["bbbp", "bace"], alpha=0.05)
    by = {(c["row"], c["dataset"]): c for c in cells}
    assert by[("contextpred", "bbbp")]["marker"] == SIGNIFICANT
    assert by[("contextpred", "bace")]["marker"] == NOT_SIGNIFICANT
    assert by[("supervised", "bbbp")]["marker"] == "" and by[("none", "bbbp")]["marker"] == ""
    assert by[("contextpred", "avg")]["mean"] == pytest.approx((0.60 + 0.745) / 2)
    md = markdown_table(cells, ["none", "contextpred", "supervised"], ["bbbp", "bace"], "best-valid", 0.05)
    line = next(l for l in md.splitlines() if l.startswith("| contextpred"))
    assert "60.0 ± 0.7 ↓" in line and "74.5 ± 3.6 (↓)" in line
    assert "best-valid" in md and "p < 0.05" in md
    rows = pd.read_csv(pd.io.common.StringIO(csv_table(cells, "best-valid", 0.05)))
    assert len(rows) == 9 and set(rows["marker"].dropna()) == {SIGNIFICANT, NOT_SIGNIFICANT}
    assert rows.loc[(rows.row == "contextpred") & (rows.dataset == "bbbp"), "p_value"].iloc[0] < 0.05
    png = tmp_path / "gain.png"
    gain_figure(cells, ["none", "contextpred", "supervised"], ["bbbp", "bace"], png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_and_profiles(tmp_path):
    ref = tmp_path / "refs"
    ref.mkdir()
    (ref / "gcn_supervised_contextpred.pth").write_bytes(b"x")
    cfg = config_from_profile("quick", reference_dir=str(ref), output=str(tmp_path / "out"), epochs=2)
    assert cfg.epochs == 2 and cfg.datasets == ["bbbp", "bace"]  # explicit flag overrides the profile
    rows = {r.name: r for r in build_rows(cfg)}
    assert rows["ref:gcn_supervised_contextpred"].gnn_type == "gcn"
    assert rows["ref:gcn_supervised_contextpred"].baseline == "none:gcn" and "none:gcn" in rows
    assert rows["contextpred+supervised"].chain == ("contextpred", "supervised")
    assert not rows["none"].pretrained
    with pytest.raises(ValueError, match="unknown strategy 'ctxpred'"):
        build_rows(CompareConfig(strategies=["ctxpred"], datasets=["bbbp"], seeds=[0], output=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="reference checkpoint"):
        build_rows(CompareConfig(strategies=["ref:gin_nothing"], datasets=["bbbp"], seeds=[0],
                                 reference_dir=str(ref), output=str(tmp_path)))
    # the architectures profile: scratch + 3 published checkpoints per architecture, GIN scratch
    for arch in ("gcn", "graphsage", "gat"):
        for ck in ("contextpred", "supervised", "supervised_contextpred"):
            (ref / f"{arch}_{ck}.pth").write_bytes(b"x")
    arch_cfg = config_from_profile("architectures", reference_dir=str(ref), output=str(tmp_path / "a"))
    arch_rows = {r.name: r for r in build_rows(arch_cfg)}
    assert len(arch_rows) == 13 and arch_cfg.epochs == 100 and arch_cfg.seeds == list(range(10))
    assert arch_rows["ref:gat_supervised"].baseline == "none:gat" and arch_rows["none"].gnn_type == "gin"
    assert all(r.dims(arch_cfg) == (5, 300) for r in arch_rows.values())
    sub = config_from_profile("architectures", reference_dir=str(ref), output=str(tmp_path / "a"),
                              rows=["ref:gcn_supervised_contextpred"])
    assert [r.name for r in build_rows(sub)] == ["none:gcn", "ref:gcn_supervised_contextpred"]
    with pytest.raises(ValueError, match="--rows 'ref:gin_x' is not a row"):
        build_rows(config_from_profile("architectures", reference_dir=str(ref), rows=["ref:gin_x"]))
    with pytest.raises(ValueError, match="without --profile"):
        config_from_profile(None, strategies=["none"])


# ------------------------------------------------------------------------------- resume
def drop_line(ledger, row, seed):
    """Remove one cell's line from a ledger, as a crash before its append would have left it."""
    lines = ledger.read_text().splitlines(keepends=True)
    keep = [l for l in lines if not (l.split(",")[1] == row and l.split(",")[5] == str(seed))]
    assert len(keep) == len(lines) - 1
    ledger.write_text("".join(keep))


def test_interrupted_comparison_resumes_only_missing_runs(tmp_path, data_dir):
    """Tiny real comparison (pre-training + fine-tuning), a lost result file, a re-run."""
    corpus = tmp_path / "corpus.csv"
    pd.read_csv(data_dir / "moleculenet" / "bbbp.csv", nrows=200)[["smiles"]].to_csv(corpus, index=False)
    root = tmp_path / "root"  # a data root with 240 real BACE molecules keeps every fine-tune small
    (root / "moleculenet").mkdir(parents=True)
    pd.read_csv(data_dir / "moleculenet" / "bace.csv").sample(240, random_state=0).to_csv(
        root / "moleculenet" / "bace.csv", index=False
    )
    cfg = CompareConfig(
        data_root=str(root), cache=str(tmp_path / "cache"),
        strategies=["none", "attrmasking"], datasets=["bace"], seeds=[0, 1], epochs=1, pretrain_epochs=1,
        pretrain_dataset=str(corpus), num_layer=2, emb_dim=16, batch_size=64, pretrain_batch_size=64,
        reference_checkpoints=[], output=str(tmp_path / "cmp"), jobs=1,
    )
    first = run_comparison(cfg, log=lambda s: None)
    assert first["ran"] == 4
    seed_files = sorted((tmp_path / "cmp" / "finetune").rglob("seed*.json"))
    assert len(seed_files) == 4
    done = next((tmp_path / "cmp" / "pretrain").glob("attrmasking-*/done.json"))
    done_mtime = os.path.getmtime(done)
    for name in ("results.md", "results.csv", "gain.png", "results_last.md", "report.json"):
        assert (tmp_path / "cmp" / name).is_file(), name
    md = (tmp_path / "cmp" / "results.md").read_text()
    assert "| attrmasking |" in md and "BACE" in md

    ledger = tmp_path / "cmp" / "ledger.csv"
    assert len(pd.read_csv(ledger)) == 4

    # a lost seed file: the ledger is the record, nothing is recomputed
    lost = tmp_path / "cmp" / "finetune" / "attrmasking" / "bace" / "seed1.json"
    lost.unlink()
    assert run_comparison(cfg, log=lambda s: None)["ran"] == 0
    # a crash between the seed file and the ledger append: the line is copied from the file
    drop_line(ledger, "none", 0)
    again = run_comparison(cfg, log=lambda s: None)
    assert again["ran"] == 0 and again["copied_from_seed_files"] == 1
    assert len(pd.read_csv(ledger)) == 4
    # lost both: only that run executes again (in a worker process)
    drop_line(ledger, "attrmasking", 1)
    lost.unlink(missing_ok=True)
    cfg.jobs = 2
    second = run_comparison(cfg, log=lambda s: None)
    assert second["ran"] == 1
    assert os.path.getmtime(done) == done_mtime  # pre-training was not redone
    assert json.loads(lost.read_text())["finished"] is True
    # complete: nothing runs
    assert run_comparison(cfg, log=lambda s: None)["ran"] == 0
