"""compare --suite moleculeace: rows, baselines, resume, ledger and report (tiny encoders, 1 epoch)."""

from __future__ import annotations

import csv

import pytest
import torch

from gnnpretrain.nn import GNN
from gnnpretrain.train.compare.moleculeace import MoleculeACEConfig, run_moleculeace, suite_rows


@pytest.fixture
def own_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "gcn_mine.pth"
    torch.save(GNN(num_layer=2, emb_dim=16, gnn_type="gcn").state_dict(), path)
    return path


def test_suite_runs_resumes_and_reports(tmp_path, own_checkpoint, data_dir):
    if not (data_dir / "moleculeace" / "CHEMBL2835_Ki.csv").is_file():
        pytest.skip("MoleculeACE data not found")
    cfg = MoleculeACEConfig(targets=["moleculeace:CHEMBL2835_Ki"], rows=[], checkpoints={"mine": str(own_checkpoint)},
                            seeds="0-1", epochs=1, num_layer=2, emb_dim=16, output=str(tmp_path / "out"),
                            ledger=str(tmp_path / "ledger.csv"))
    rows = suite_rows(cfg)
    assert [(r.name, r.gnn_type, r.baseline) for r in rows] == [("none:gcn", "gcn", None), ("mine", "gcn", "none:gcn")]
    report = run_moleculeace(cfg, log=lambda s: None)
    assert report["ran"] == 4
    with open(tmp_path / "ledger.csv", newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == 4 and {ln["row"] for ln in lines} == {"none:gcn", "mine"}
    assert all(float(ln["test_rmse_best_valid"]) > 0 and int(ln["num_cliff_test"]) > 0 for ln in lines)
    mine = next(c for c in report["cells"] if c["row"] == "mine" and c["metric"] == "rmse_cliff")
    assert mine["baseline"] == "none:gcn" and 0 <= mine["p_worse"] <= 1 and mine["n"] == 2
    assert "activity-cliff" in (tmp_path / "out" / "results.md").read_text()
    again = run_moleculeace(cfg, log=lambda s: None)
    assert again["ran"] == 0 and again["cells"] == report["cells"]


def test_suite_rows_baseline_at_the_checkpoint_size(tmp_path, own_checkpoint):
    cfg = MoleculeACEConfig(targets=["CHEMBL2835_Ki"], rows=["none:gcn"], checkpoints={"mine": str(own_checkpoint)})
    names = [(r.name, r.num_layer, r.emb_dim) for r in suite_rows(cfg)]
    assert names == [("none:gcn@2x16", 2, 16), ("none:gcn", 5, 300), ("mine", 2, 16)]
    with pytest.raises(ValueError, match="unknown MoleculeACE target"):
        MoleculeACEConfig(targets=["CHEMBL0_Ki"])
    with pytest.raises(ValueError, match="unknown suite row"):
        suite_rows(MoleculeACEConfig(targets=["CHEMBL2835_Ki"], rows=["contextpred"]))
