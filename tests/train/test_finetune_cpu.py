"""Fine-tuning on a small CPU: parallel seeds equal sequential ones; output folders are distinct and safe."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gnnpretrain.train.finetune import (  # the old import path keeps working
    FinetuneConfig,
    checkpoint_label,
    default_output,
    output_dir,
    run_finetune,
    safe_name,
    summary_line,
)

TINY = dict(num_layer=2, emb_dim=32, epochs=1, batch_size=64, progress=False)


def test_parallel_seeds_compute_what_sequential_seeds_compute(data_dir, cache, tmp_path):
    base = FinetuneConfig(dataset="bbbp", seeds="0-1", data_root=str(data_dir), cache=str(cache),
                          num_threads=1, **TINY)
    seq = run_finetune(dataclasses.replace(base, output=str(tmp_path / "seq"), jobs=1))
    par = run_finetune(dataclasses.replace(base, output=str(tmp_path / "par"), jobs=2))
    assert par["seeds"] == seq["seeds"] == [0, 1]
    for a, b in zip(seq["per_seed"], par["per_seed"]):
        assert a["test_auc_best_valid"] == b["test_auc_best_valid"]
        assert a["test_auc_last"] == b["test_auc_last"]
    assert sorted(p.name for p in (tmp_path / "par" / "bbbp").glob("seed*.json")) == ["seed0.json", "seed1.json"]
    # a re-run finds both seeds finished and trains nothing
    again = run_finetune(dataclasses.replace(base, output=str(tmp_path / "par"), jobs=2))
    assert again["per_seed"] == par["per_seed"]


def _save(path, value: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.full((2,), value)}, path)
    return path


def test_default_output_differs_per_checkpoint_and_is_filesystem_safe(tmp_path):
    a = _save(tmp_path / "runs" / "contextpred" / "model.pth", 1.0)
    b = _save(tmp_path / "runs" / "attrmasking" / "model.pth", 2.0)
    c = _save(tmp_path / "other" / "contextpred" / "model.pth", 3.0)  # same folder name, other weights
    names = [default_output(FinetuneConfig(input_model_file=str(p), progress=False)).name for p in (a, b, c)]
    assert len(set(names)) == 3, names
    assert names[0].startswith("gin_contextpred-model-") and names[1].startswith("gin_attrmasking-model-")
    ref = _save(tmp_path / "supervised_contextpred.pth", 4.0)
    assert checkpoint_label(ref).startswith("supervised_contextpred-")
    assert default_output(FinetuneConfig(progress=False)).name == "gin_scratch"
    for cfg in (
        FinetuneConfig(domain="bio", dataset="string_human:max_centres=3000,min_positives=30", progress=False),
        FinetuneConfig(name="my run: lr=1e-3, 5 seeds", progress=False),
    ):
        path = output_dir(cfg)
        for part in (path.name, path.parent.name):
            assert not set(part) & set(":=, "), part
    assert safe_name("a:b=c,d e") == "a-b-c-d-e"


@pytest.mark.parametrize("method", ["protein", "species"])
def test_summary_line_names_the_split_the_task_used(method):
    stats = {"mean": 0.7, "std": 0.01, "n": 3}
    summary = {"domain": "bio", "dataset": "string_human", "report": "best-valid",
               "test_auc": {"best-valid": stats, "last": stats}, "config": {"epochs": 50, "split": "scaffold"},
               "split": {"method": method}, "wall_time_s_total": 12.0}
    assert f"split {method}," in summary_line(summary)
