"""The main job's script end to end at a tiny size: it pre-trains, compares against always-carbon,
fine-tunes both arms on the same seeds and reports the difference with a Welch p-value; re-running skips."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _main():
    spec = importlib.util.spec_from_file_location("_quickstart", REPO / "scripts" / "quickstart.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_quickstart_reports_both_arms_side_by_side(data_dir, cache, tmp_path, capsys):
    main = _main()
    argv = ["--molecules", "1000", "--pretrain-epochs", "1", "--epochs", "1", "--seeds", "0-1", "--num-layer", "2",
            "--emb-dim", "16", "--output", str(tmp_path / "qs"), "--jobs", "1", "--threads", "1", "--no-progress"]
    report = main(argv)
    out = capsys.readouterr().out
    assert report["seeds"] == [0, 1] and len(report["scratch"]) == len(report["pretrained"]) == 2
    assert 0.6 < report["majority_baseline"] < 0.8  # carbon's share of ZINC atoms
    assert "always guessing carbon scores" in out and "masked-atom accuracy" in out
    assert "pre-trained - scratch:" in out and "Welch p =" in out and "(two-sided, 2 + 2 seeds)" in out
    assert report["difference"] == pytest.approx(sum(report["pretrained"]) / 2 - sum(report["scratch"]) / 2)
    saved = json.loads((tmp_path / "qs" / "report.json").read_text())
    assert saved["scratch"] == report["scratch"]
    # the same command again: nothing is recomputed, the same numbers come back
    again = main(argv)
    assert again["scratch"] == report["scratch"] and again["pretrained"] == report["pretrained"]
    assert capsys.readouterr().out.count("(already done)") == 8
    # the published pair: the hub encoder against scratch of its own architecture and size, same seeds
    pub = report["published"]
    assert (pub["name"], pub["gnn_type"], pub["num_layer"], pub["emb_dim"]) == ("gcn_supervised_contextpred", "gcn", 5, 300)
    assert len(pub["scratch"]) == len(pub["pretrained"]) == 2 and pub["scratch"] != pub["pretrained"]
    assert pub["difference"] == pytest.approx(sum(pub["pretrained"]) / 2 - sum(pub["scratch"]) / 2)
    assert "published gcn_supervised_contextpred (full pre-training)" in out and "smoke-size" in out
