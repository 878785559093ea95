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
from _train_helpers import random_encoder, small_root  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = dict(num_layer=2, emb_dim=16, epochs=2, batch_size=64, seeds=[0], progress=False, num_threads=1)

@pytest.fixture(scope="module")
def small(tmp_path_factory, data_dir):
    """(data root, cache, encoder file) shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("hpopt")
    return small_root(tmp, data_dir), tmp / "cache", random_encoder(tmp / "gin_mine.pth")


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


# -- the search --------------------------------------------------------------------------------------
def _search_args(small, out: Path, *extra: str) -> list[str]:
    root, cache, encoder = small
    return ["--dataset", "bace", "--data-root", str(root), "--cache", str(cache), "--input-model-file", str(encoder),
            "--epochs", "3", "--threads", "1", "--no-progress", "--output", str(out), *extra]


@pytest.fixture(scope="module")
def searched(small, tmp_path_factory):
    """A tiny local search (3 trials on 240 BACE molecules, a 2 x 16 encoder given, so freeze is searched)."""
    import importlib.util

    out = tmp_path_factory.mktemp("search") / "out"
    args = _search_args(small, out, "--hpopt", "3")
    spec = importlib.util.spec_from_file_location("finetune_cli", REPO / "scripts" / "finetune.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    summary = cli.main(args)
    return args, out / "bace" / "hpopt", summary


def test_search_writes_trials_best_and_plot_and_the_config_comes_back(searched, small, run_script, tmp_path):
    args, hp, summary = searched
    assert summary["finished"] == 3 and summary["metric"] == "roc_auc" and summary["direction"] == "maximize"
    trials = pd.read_csv(hp / "trials.csv")
    assert list(trials.number) == [0, 1, 2] and set(trials.state) <= {"COMPLETE", "PRUNED"}
    assert {"lr", "dropout", "batch_size", "epochs", "freeze", "graph_pooling", "test_score", "wall_time_s"} <= set(trials.columns)
    assert trials.lr.between(1e-4, 1e-2).all() and trials.dropout.between(0, 0.6).all()
    assert set(trials.epochs) <= {1, 2, 3} and set(trials.batch_size) <= {16, 32, 64, 128}
    assert (hp / "trials.png").read_bytes()[:4] == b"\x89PNG" and (hp / "study.db").is_file()
    best = json.loads((hp / "best.json").read_text())
    top = trials[trials.state == "COMPLETE"].sort_values("value", ascending=False).iloc[0]  # valid, never test
    assert best["lr"] == top.lr and best["batch_size"] == top.batch_size and best["freeze"] == bool(top.freeze)
    assert best["input_model_file"] == str(small[2]) and best["num_layer"] == 2 and "seeds" not in best
    # each trial's seed files are the normal run layout
    rec = json.loads((hp / f"trial{int(top.number)}" / "bace" / "seed0.json").read_text())
    assert rec["best_valid"]["valid_score"] == top.value and rec["best_valid"]["test_score"] == top.test_score

    # finetune.py --config best.json takes the options back: the same seed computes the same numbers
    root, cache, _ = small
    done = run_script("finetune", "--config", str(hp / "best.json"), "--data-root", str(root), "--cache", str(cache),
                      "--seeds", "0", "--threads", "1", "--no-progress", "--output", str(tmp_path / "final"))
    assert done.returncode == 0, done.stderr
    again = json.loads((tmp_path / "final" / "bace" / "seed0.json").read_text())
    assert again["best_valid"] == rec["best_valid"] and again["config"]["freeze"] == best["freeze"]
    # explicit flags win over the file
    done = run_script("finetune", "--config", str(hp / "best.json"), "--data-root", str(root), "--cache", str(cache),
                      "--seeds", "0", "--epochs", "1", "--threads", "1", "--no-progress", "--output", str(tmp_path / "one"))
    assert done.returncode == 0 and json.loads((tmp_path / "one" / "bace" / "seed0.json").read_text())["config"]["epochs"] == 1

    # the same command again: the study already holds 3 trials, nothing runs; N=4 runs one more
    import optuna

    done = run_script("finetune", *args)
    assert done.returncode == 0 and "3 of 3 trials finished" in done.stdout and "trial 3" not in done.stdout
    done = run_script("finetune", *args[:-1], "4")
    assert done.returncode == 0 and "trial 3 (4/4)" in done.stdout
    study = optuna.load_study(study_name="finetune-bace", storage=f"sqlite:///{hp / 'study.db'}")
    assert len(study.trials) == 4 and len(pd.read_csv(hp / "trials.csv")) == 4


def test_bad_search_inputs_are_one_line_and_exit_2(searched, small, run_script, tmp_path, monkeypatch):
    args, hp, _ = searched
    cases = [
        (["--hpopt", "0"], "at least 1"),
        (["--storage", "sqlite:///x.db"], "--storage only applies to a hyperparameter search"),
        (["--hpopt-seeds", "0,1"], "--hpopt-seeds only applies to a hyperparameter search"),
        (["--address", "auto"], "--address is the Ray cluster of --engine ray"),
        (["--engine", "ray", "--jobs", "2"], "with --engine ray the cluster's CPUs set the parallelism"),
        (["--hpopt", "2", "--hpopt-params", "lr,width"], "unknown parameter(s) width"),
        (["--hpopt", "2", "--jobs", "2"], "the local engine runs one trial at a time"),
    ]
    for extra, message in cases:
        done = run_script("finetune", *_search_args(small, tmp_path / "bad", *extra))
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "bad").exists()  # nothing was started
    # the study of another search is refused, not mixed: other fixed options, or another search space
    for extra, differs in ((["--lr", "0.003", "--hpopt-params", "dropout"], "space"), (["--decay", "0.1"], "decay")):
        done = run_script("finetune", *args, *extra)
        assert done.returncode == 2 and "searched with other options" in done.stderr and differs in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    # --config: an unknown key or a bad value
    bad = tmp_path / "bad.json"
    for content, message in (({"lrr": 1}, "unknown option(s) lrr"), ({"batch_size": 2.5}, "not an integer"),
                             ({"JK": "mean"}, "is not one of"), ({"freeze": "yes"}, "not true or false")):
        bad.write_text(json.dumps(content))
        done = run_script("finetune", "--config", str(bad))
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    # Optuna not installed: one line naming the extra, before any work
    with monkeypatch.context() as m:
        m.setitem(__import__("sys").modules, "optuna", None)
        done = run_script("finetune", *_search_args(small, tmp_path / "no-optuna", "--hpopt", "2"))
    assert done.returncode == 2 and "pip install -e '.[optuna]'" in done.stderr and not (tmp_path / "no-optuna").exists()
    # a Ray cluster that cannot be reached, named by --address or by RAY_ADDRESS: one line, no local fallback
    pytest.importorskip("ray")
    for extra, env in ((["--address", "127.0.0.1:1"], None), ([], "127.0.0.1:1")):
        with monkeypatch.context() as m:
            if env:
                m.setenv("RAY_ADDRESS", env)
            done = run_script("finetune", *_search_args(small, tmp_path / "bad", "--hpopt", "2", "--engine", "ray", *extra))
        assert done.returncode == 2 and "cannot reach the Ray cluster at '127.0.0.1:1'" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_processes_with_one_storage_share_the_study(small, run_script, tmp_path):
    """--storage: two searches (here one after the other, as two machines would run side by side) fill one
    study to N; each writes only its own trials' folders, and neither takes the other's folder lock."""
    import optuna

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = run_script("finetune", *_search_args(small, tmp_path / "a", "--hpopt", "2", "--epochs", "2",
                                                 "--storage", url, "--study-name", "shared"))
    second = run_script("finetune", *_search_args(small, tmp_path / "b", "--hpopt", "3", "--epochs", "2",
                                                  "--storage", url, "--study-name", "shared"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "2 of 3 trials finished" in second.stdout and "trial 2 (3/3)" in second.stdout
    study = optuna.load_study(study_name="shared", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert sorted(p.name for p in (tmp_path / "a" / "bace" / "hpopt").glob("trial[0-9]*")) == ["trial0", "trial1"]
    assert sorted(p.name for p in (tmp_path / "b" / "bace" / "hpopt").glob("trial[0-9]*")) == ["trial2"]
    assert not (tmp_path / "a" / "bace" / "hpopt" / "study.db").exists()
    assert len(pd.read_csv(tmp_path / "b" / "bace" / "hpopt" / "trials.csv")) == 3  # the whole study


def _finished(db: Path) -> list[tuple[int, str, int]]:
    """(number, state, epochs reported) of the study's trials, read with sqlite3 while another process writes."""
    import sqlite3

    if not db.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT number, state, (SELECT count(*) FROM trial_intermediate_values v WHERE "
                               "v.trial_id = t.trial_id) FROM trials t ORDER BY number").fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or busy
        return []


@pytest.mark.slow
def test_a_killed_search_resumes_the_same_study_to_n_trials(small, tmp_path):
    """SIGKILL once the SQLite study holds a finished trial; the same command continues the same study to
    exactly N complete-or-pruned trials, the killed trial's parameters run again in its folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna

    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "scripts" / "finetune.py"), *_search_args(small, out, "--hpopt", "4", "--epochs", "6")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    db = out / "bace" / "hpopt" / "study.db"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        states = _finished(db)
        if any(s in ("COMPLETE", "PRUNED") for _, s, _ in states) and states[-1][1] == "RUNNING" and states[-1][2]:
            break  # killed in the middle of a trial's training
        time.sleep(0.02)
    assert proc.poll() is None, "the search ended before it could be killed: " + proc.stdout.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    before = _finished(db)
    killed = [n for n, s, _ in before if s == "RUNNING"]
    assert len(killed) == 1 and 1 <= sum(s in ("COMPLETE", "PRUNED") for _, s, _ in before) < 4
    storage = f"sqlite:///{db}"
    first = optuna.load_study(study_name="finetune-bace", storage=storage)
    first_id = optuna.storages.RDBStorage(storage).get_study_id_from_name("finetune-bace")
    kept = {t.number: t.params for t in first.trials if t.state.is_finished()}

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "left running by an interrupted search" in done.stdout
    study = optuna.load_study(study_name="finetune-bace", storage=storage)
    assert optuna.storages.RDBStorage(storage).get_study_id_from_name("finetune-bace") == first_id
    assert {t.number: t.params for t in study.trials if t.number in kept} == kept  # the first trials unchanged
    states = [t.state.name for t in study.trials]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 4 and states.count("FAIL") == 1
    failed = study.trials[killed[0]]
    assert failed.state.name == "FAIL"
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed[0]]
    assert len(retry) == 1 and retry[0].params == failed.params and retry[0].state.name in ("COMPLETE", "PRUNED")
    assert retry[0].user_attrs["folder"] == f"trial{killed[0]}"
    assert len(pd.read_csv(db.parent / "trials.csv")) == 5 and json.loads((db.parent / "best.json").read_text())


@pytest.mark.slow
def test_the_ray_tune_engine_runs_the_same_search(searched, small, run_script, tmp_path):
    """Ray Tune trials (OptunaSearch on the same study, ASHA) on a local Ray instance of 2 CPUs, one trial at a
    time: the same seeded TPE suggests the same first trial as the local engine, which computes the same score."""
    ray = pytest.importorskip("ray")
    import os

    import optuna

    _, hp_local, _ = searched
    local = pd.read_csv(hp_local / "trials.csv").set_index("number")
    # paths relative to this process's folder (a Ray worker runs elsewhere: the engine makes them absolute)
    root, cache, encoder = (os.path.relpath(p) for p in small)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        done = run_script("finetune", *_search_args((root, cache, encoder), tmp_path / "out", "--hpopt", "2",
                                                    "--engine", "ray", "--jobs", "1"))
    finally:
        ray.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    hp = tmp_path / "out" / "bace" / "hpopt"
    trials = pd.read_csv(hp / "trials.csv").set_index("number")
    assert len(trials) == 2 and set(trials.state) <= {"COMPLETE", "PRUNED"} and trials.test_score.notna().all()
    for col in ("lr", "dropout", "batch_size", "epochs", "freeze", "graph_pooling", "value", "test_score"):
        assert trials.loc[0, col] == local.loc[0, col], col
    assert "trial 0 (1/2): complete" in done.stdout and (hp / "best.json").is_file() and (hp / "trials.png").is_file()
    assert any((hp / "ray").iterdir())  # Tune's own logs
    study = optuna.load_study(study_name="finetune-bace", storage=f"sqlite:///{hp / 'study.db'}")
    assert [t.state.name for t in study.trials] == list(trials.state)
