"""The results ledger of comparisons: append / skip / refuse a mixed configuration, tables rebuilt
from the ledger alone, and a killed ``compare.py --jobs 2`` that leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from gnnpretrain.train.compare import CompareConfig, Ledger, LedgerMismatchError, run_comparison
from gnnpretrain.train.compare.ledger import COLUMNS
from _train_helpers import random_encoder, small_root  # noqa: E402

_REPO = Path(__file__).resolve().parents[2]

@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_dir):
    """One tiny real comparison (scratch GIN vs a given encoder, 3 seeds x 2 epochs on BACE)."""
    tmp = tmp_path_factory.mktemp("ledger")
    cfg = CompareConfig(
        strategies=["none"], checkpoints={"gin_mine": str(random_encoder(tmp / "gin_mine.pth"))},
        datasets=["bace"], seeds=[0, 1, 2], epochs=2, num_layer=2, emb_dim=16, batch_size=64,
        data_root=str(small_root(tmp, data_dir)), cache=str(tmp / "cache"), output=str(tmp / "cmp"),
        reference_checkpoints=[], jobs=1,
    )
    report = run_comparison(cfg, log=lambda s: None)
    return cfg, report


def test_ledger_records_each_seed_once(tiny):
    cfg, report = tiny
    assert report["ran"] == 6 and Path(report["ledger"]) == Path(cfg.output) / "ledger.csv"
    df = pd.read_csv(report["ledger"])
    assert tuple(df.columns) == COLUMNS and len(df) == 6
    assert set(zip(df.row, df.seed)) == {(r, s) for r in ("none", "gin_mine") for s in (0, 1, 2)}
    mine = df[df.row == "gin_mine"]
    assert (mine.baseline == "none").all() and mine.checkpoint_sha256.str.len().eq(64).all()
    assert df.epochs.eq(2).all() and df.best_epoch.between(1, 2).all() and df.test_auc_last.between(0, 1).all()
    assert df.torch.eq(torch.__version__).all() and df.torch_threads.eq(1).all() and df.device.eq("cpu").all()
    assert df.compute_dtype.eq("float32").all() and df.ledger_format.eq(2).all()  # format 2: fp32 seeds say so
    # the ledger agrees with the seed files it was made from
    rec = json.loads((Path(cfg.output) / "finetune" / "gin_mine" / "bace" / "seed1.json").read_text())
    line = mine[mine.seed == 1].iloc[0]
    assert line.test_auc_best_valid == pytest.approx(rec["best_valid"]["test_auc"], abs=0)
    assert line.test_auc_last == pytest.approx(rec["last"]["test_auc"], abs=0)
    # a complete comparison re-runs nothing and adds no line
    assert run_comparison(cfg, log=lambda s: None)["ran"] == 0
    assert len(pd.read_csv(report["ledger"])) == 6


def test_append_skips_present_cells_and_refuses_another_configuration(tiny, tmp_path):
    cfg, report = tiny
    lines = Ledger(report["ledger"]).read()
    led = Ledger(tmp_path / "results" / "exp.csv")
    assert led.append(lines[:4]) == 4
    assert led.append(lines) == 2  # the four present are skipped, the two new appended
    assert led.read() == lines
    assert led.append(lines) == 0
    assert not list((tmp_path / "results").glob("*.tmp"))

    other = {**lines[0], "seed": "7", "epochs": "100"}
    with pytest.raises(LedgerMismatchError, match=r"epochs: ledger has '2', now '100'.*another --ledger"):
        led.append([other])
    regrown = {**lines[-1], "seed": "7", "checkpoint_sha256": "0" * 64}
    with pytest.raises(LedgerMismatchError, match=r"row 'gin_mine' has another encoder \(checkpoint_sha256"):
        led.append([regrown])
    same_cell = {**lines[0], "config_hash": "f" * 16}
    with pytest.raises(LedgerMismatchError, match="bace/0 is in the ledger with config"):
        led.append([same_cell])
    assert led.read() == lines  # nothing was written by the refused appends

    # a comparison run with another protocol into the same ledger fails before training
    again = CompareConfig(**{**cfg.__dict__, "epochs": 3, "ledger": str(led.path)})
    with pytest.raises(LedgerMismatchError, match="epochs: ledger has '2', now '3'"):
        run_comparison(again, log=lambda s: None)
    assert led.read() == lines

    # a cut line (a hand edit, a copy interrupted elsewhere) is named
    text = led.path.read_text()
    led.path.write_text(text[: text.rindex(",", 0, len(text) - 40)] + "\n")
    with pytest.raises(LedgerMismatchError, match=r"exp.csv line 7: wrong number of fields"):
        led.read()


def test_config_hash_is_stable_across_library_versions():
    """Lines committed today must match tomorrow's runs: the hash of a fixed configuration is frozen,
    and options the library adds later (unset for this cell) leave it unchanged."""
    from gnnpretrain.train.compare.ledger import config_hash
    from gnnpretrain.train.finetune import FinetuneConfig

    cfg = {**FinetuneConfig(dataset="bace", gnn_type="gcn").to_dict(), "input_model_sha256": None}
    assert config_hash(cfg) == "a99242885caf6d40"
    assert config_hash({**cfg, "some_future_option": None}) == config_hash(cfg)
    assert config_hash({**cfg, "epochs": 99}) != config_hash(cfg)


def test_tables_rebuilt_from_the_ledger_alone(tiny, tmp_path):
    cfg, report = tiny
    ledger = tmp_path / "copy.csv"
    ledger.write_bytes(Path(report["ledger"]).read_bytes())
    sys.path.insert(0, str(_REPO / "scripts"))
    try:
        import compare as compare_script
    finally:
        sys.path.remove(str(_REPO / "scripts"))
    out = tmp_path / "tables"
    summary = compare_script.main(["--report-only", "--ledger", str(ledger), "--output", str(out)])
    assert summary["rows"] == ["none", "gin_mine"] and summary["seeds"] == [0, 1, 2]
    for mode in ("best-valid", "last"):
        assert (out / f"results_{mode}.csv").read_text() == (Path(cfg.output) / f"results_{mode}.csv").read_text()
        assert (out / f"results_{mode}.md").read_text() == (Path(cfg.output) / f"results_{mode}.md").read_text()
    for fig in ("gain.png", "gain_grid.png"):
        assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # errors are one line, exit code 2 (scripts run through run_cli)
    from gnnpretrain.utils import run_cli

    with pytest.raises(SystemExit) as exit_:
        run_cli(compare_script.main, ["--report-only", "--ledger", str(tmp_path / "nope.csv"), "--output", str(out)])
    assert exit_.value.code == 2
    cells = pd.read_csv(out / "results.csv")
    mine = cells[(cells.row == "gin_mine") & (cells.dataset == "bace")].iloc[0]
    assert mine.n == 3 and mine.baseline == "none"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_compare_jobs2_leaves_no_process_and_rerun_gives_the_same_table(tmp_path, data_dir):
    root = small_root(tmp_path, data_dir)
    # 2 rows x 4 seeds x 20 epochs of a 2 x 16 encoder: each seed about a second, long enough to be killed
    common = ["--strategies", "none,none:gcn", "--datasets", "bace", "--seeds", "0-3", "--epochs", "20", "--no-fused",
              "--num-layer", "2", "--emb-dim", "16", "--batch-size", "64",
              "--reference-checkpoints", "", "--data-root", str(root), "--cache", str(tmp_path / "cache")]
    # the uninterrupted reference, in this process with one thread like the workers
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = CompareConfig(strategies=["none", "none:gcn"], datasets=["bace"], seeds=[0, 1, 2, 3], epochs=20,
                            data_root=str(root), cache=str(tmp_path / "cache"), output=str(tmp_path / "ref"),
                            reference_checkpoints=[], num_layer=2, emb_dim=16, batch_size=64)
        run_comparison(ref, log=lambda s: None)
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "cmp"
    cmd = [sys.executable, str(_REPO / "scripts" / "compare.py"), *common, "--jobs", "2", "--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(_REPO)}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline, workers = time.time() + 60, []
        while time.time() < deadline and proc.poll() is None and len(workers) < 2:
            workers = _children(proc.pid)
            time.sleep(0.05)
        assert proc.poll() is None and len(workers) >= 2, "the comparison finished before it could be killed"
        time.sleep(0.3)  # let the workers get into training
        proc.send_signal(sig)
        proc.wait(30)
        deadline = time.time() + 15
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), f"workers outlived a parent killed by {sig.name}"
        # no half-written result: every seed file present is complete JSON; no temporary file is left
        for f in out.rglob("seed*.json"):
            assert json.loads(f.read_text())["finished"] is True
        assert not [p for p in out.rglob("*.tmp")], list(out.rglob("*.tmp"))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(pd.read_csv(out / "ledger.csv")) == 8
    for mode in ("best-valid", "last"):
        assert (out / f"results_{mode}.csv").read_text() == (tmp_path / "ref" / f"results_{mode}.csv").read_text()
