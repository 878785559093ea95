"""The Ray engine (``compare.py --engine ray``) on a real local Ray cluster: the same ledger as the local
engine, a worker killed mid-task is retried with nothing lost or written twice, a killed driver takes
its workers with it, and the one-line errors (no extra, unreachable cluster, options that clash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="the Ray engine's tests need the extra: pip install -e '.[ray]'")

from gnnpretrain.train.compare import CompareConfig, run_comparison  # noqa: E402
from _train_helpers import random_encoder, small_root  # noqa: E402

_REPO = Path(__file__).resolve().parents[2]

#: The ledger columns that are a seed's result (the rest: wall time, runtime, finish time).
RESULT = ["row", "dataset", "seed", "config_hash", "test_auc_best_valid", "test_auc_last", "best_valid_auc",
          "best_epoch", "n_train", "n_valid", "n_test", "compute_dtype"]
TASK_TITLE = "ray::gnnpretrain.finetune"  # the process title of a worker running our task


def _results(ledger: Path) -> pd.DataFrame:
    return pd.read_csv(ledger)[RESULT].sort_values(["row", "seed"]).reset_index(drop=True)


def _task_workers() -> list[int]:
    """PIDs of Ray worker processes running our task right now."""
    import psutil

    pids = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if (p.info["cmdline"] or [""])[0].startswith(TASK_TITLE):
                pids.append(p.pid)
        except psutil.Error:
            pass
    return pids


@pytest.fixture(scope="module")
def cluster():
    """A local two-CPU Ray cluster in this process, as CI and a laptop have."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_dir):
    """A tiny real comparison (GIN scratch vs a given encoder, 3 seeds x 3 epochs on BACE) and its
    local-engine ledger, computed in this process on one thread like every Ray task."""
    tmp = tmp_path_factory.mktemp("ray")
    common = dict(strategies=["none"], checkpoints={"gin_mine": str(random_encoder(tmp / "gin_mine.pth", seed=1))},
                  datasets=["bace"], seeds=[0, 1, 2], epochs=3, num_layer=2, emb_dim=16, batch_size=64,
                  data_root=str(small_root(tmp, data_dir)), cache=str(tmp / "cache"), reference_checkpoints=[])
    refs = {}
    for fused in (False, True):
        cfg = CompareConfig(**common, output=str(tmp / f"local-{fused}"), fused=fused)
        refs[fused] = _results(Path(run_comparison(cfg, log=lambda s: None)["ledger"]))
    return tmp, common, refs


@pytest.mark.parametrize("fused", [True, False], ids=["fused-groups", "separate-seeds"])
def test_ray_ledger_equals_the_local_engines(cluster, tiny, fused):
    tmp, common, refs = tiny
    lines: list[str] = []
    cfg = CompareConfig(**common, output=str(tmp / f"ray-{fused}"), fused=fused, engine="ray")
    report = run_comparison(cfg, log=lines.append)
    got = _results(Path(report["ledger"]))
    assert len(got) == 6 and report["ran"] == 6
    pd.testing.assert_frame_equal(got, refs[fused])  # bit-equal: the same engines at the same thread count
    # two task slots: the fused comparison's one group of 6 is cut in two Ray tasks
    assert any(f"ray: 2 {'fused group(s)' if fused else 'seed(s)'}" in s or "ray: 6 seed(s)" in s for s in lines), lines
    # the driver wrote every seed file, with its own paths in the config
    for f in (Path(cfg.out_dir) / "finetune").rglob("seed*.json"):
        rec = pd.read_json(f, typ="series")
        assert rec["config"]["output"].startswith(str(cfg.out_dir))
    # a rerun finds everything in the ledger and starts no task
    again = run_comparison(cfg, log=lines.append)
    assert again["ran"] == 0 and len(pd.read_csv(again["ledger"])) == 6


def test_checkpoints_travel_through_the_object_store(cluster, tiny, tmp_path, cache):
    """A worker that cannot see the driver's checkpoint file fine-tunes from the bytes the driver put
    into the object store, written into the worker's cache under the file's SHA-256."""
    from gnnpretrain.train.compare.plan import Row, finetune_config
    from gnnpretrain.train.rayengine import run_members_ray
    from gnnpretrain.utils import sha256_file

    tmp, common, refs = tiny
    moved = tmp_path / "elsewhere.pth"
    moved.write_bytes((tmp / "gin_mine.pth").read_bytes())
    sha = sha256_file(str(moved))
    copy = cache / "ray" / "checkpoints" / f"{sha}.pth"  # the workers share this process's cache here
    copy.unlink(missing_ok=True)
    cfg = CompareConfig(**{**common, "checkpoints": {"gin_mine": str(moved)}}, output=str(tmp_path / "out"))
    ftc = finetune_config(cfg, Row("gin_mine", "gin", checkpoint=str(moved)), "bace", str(moved))

    def note(line: str) -> None:  # said after the bytes are in the object store, before any task starts
        if line.startswith("ray: ") and moved.exists():
            moved.rename(tmp_path / "hidden.pth")

    recs = run_members_ray([(ftc, s) for s in (0, 1)], fused=True, note=note)
    assert not moved.exists() and copy.is_file() and sha256_file(str(copy)) == sha
    want = refs[True][refs[True].row == "gin_mine"].set_index("seed")
    for r in recs:  # the driver's file name in the record, the same weights, the same result
        assert r["config"]["input_model_sha256"] == sha and r["config"]["input_model_file"] == str(moved)
        assert r["best_valid"]["test_auc"] == want.loc[r["seed"], "test_auc_best_valid"]


def test_finetune_seeds_on_ray_equal_the_local_ones(cluster, tiny, tmp_path, run_script):
    """``finetune.py --engine ray``: every seed a Ray task (one thread), the same seed files and summary."""
    tmp, common, refs = tiny
    args = ["--dataset", "bace", "--seeds", "0-2", "--epochs", "3", "--num-layer", "2", "--emb-dim", "16",
            "--batch-size", "64", "--data-root", common["data_root"], "--cache", common["cache"], "--no-progress"]
    local = run_script("finetune", *args, "--output", str(tmp_path / "local"), "--threads", "1", "--jobs", "1")
    remote = run_script("finetune", *args, "--output", str(tmp_path / "ray"), "--engine", "ray")
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    for seed in (0, 1, 2):
        a = pd.read_json(tmp_path / "local" / "bace" / f"seed{seed}.json", typ="series")
        b = pd.read_json(tmp_path / "ray" / "bace" / f"seed{seed}.json", typ="series")
        untimed = [[{k: v for k, v in row.items() if k != "time_s"} for row in r["curve"]] for r in (a, b)]
        assert untimed[0] == untimed[1] and a["best_valid"] == b["best_valid"] and a["config"] == b["config"] | {
            "output": a["config"]["output"], "jobs": a["config"]["jobs"], "num_threads": a["config"]["num_threads"]}
    summary = pd.read_json(tmp_path / "ray" / "bace" / "summary.json", typ="series")
    assert summary["test_score"]["best-valid"]["n"] == 3


def _compare_cmd(root: Path, tmp: Path, out: Path, epochs: int) -> list[str]:
    return [sys.executable, str(_REPO / "scripts" / "compare.py"), "--strategies", "none,none:gcn",
            "--datasets", "bace", "--seeds", "0-3", "--epochs", str(epochs), "--num-layer", "2", "--emb-dim", "16",
            "--batch-size", "64", "--reference-checkpoints", "", "--data-root", str(root),
            "--cache", str(tmp / "cache"), "--fused", "--engine", "ray", "--output", str(out)]


def _env(tmp: Path) -> dict:
    # a Ray instance of the command's own (no RAY_ADDRESS), two CPUs as on this project's machines
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(_REPO), "GNNPRETRAIN_CACHE": str(tmp / "workers")}


def _wait_for_task_workers(proc: subprocess.Popen, n: int, timeout: float = 120) -> list[int]:
    deadline, pids = time.time() + timeout, []
    while time.time() < deadline and proc.poll() is None:
        pids = _task_workers()
        if len(pids) >= n:
            return pids
        time.sleep(0.1)
    out = proc.communicate(timeout=30)[1] if proc.poll() is not None else b""
    pytest.fail(f"no Ray task started in {timeout} s (exit {proc.poll()}): {out[-2000:]!r}")


#: Epochs of the killed runs: two groups of four models, long enough to be killed in the middle.
KILL_EPOCHS = 20


@pytest.fixture(scope="module")
def killable(tmp_path_factory, data_dir):
    """The data root of the killed runs and their uninterrupted table, computed here (fused, one thread)."""
    tmp = tmp_path_factory.mktemp("killable")
    root = small_root(tmp, data_dir)
    cfg = CompareConfig(strategies=["none", "none:gcn"], datasets=["bace"], seeds=[0, 1, 2, 3], epochs=KILL_EPOCHS,
                        num_layer=2, emb_dim=16, batch_size=64, data_root=str(root), cache=str(tmp / "cache"),
                        reference_checkpoints=[], output=str(tmp / "ref"), fused=True)
    return root, _results(Path(run_comparison(cfg, log=lambda s: None)["ledger"]))


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_is_retried_and_nothing_is_lost_or_written_twice(tmp_path, killable):
    root, ref = killable
    out = tmp_path / "cmp"
    proc = subprocess.Popen(_compare_cmd(root, tmp_path, out, KILL_EPOCHS), env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victims = _wait_for_task_workers(proc, 1)
    time.sleep(1.0)  # into training
    assert victims[0] in _task_workers(), "the task finished before its worker could be killed"
    os.kill(victims[0], signal.SIGKILL)  # mid-task: Ray must run the task again
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    got = pd.read_csv(out / "ledger.csv")
    assert len(got) == 8 and not got.duplicated(["row", "dataset", "seed"]).any()
    pd.testing.assert_frame_equal(_results(out / "ledger.csv"), ref)
    assert len(list((out / "finetune").rglob("seed*.json"))) == 8
    assert not list(out.rglob("*.tmp")) and not list((tmp_path / "workers").rglob("seed*.json"))


def _stop_driver(cmd: list[str], tmp: Path, sig: signal.Signals) -> tuple[subprocess.Popen, str]:
    """Start the command, stop its driver with ``sig`` while a task trains; wait until no task worker is left."""
    proc = subprocess.Popen(cmd, env=_env(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers = _wait_for_task_workers(proc, 1)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    deadline = time.time() + 20
    while time.time() < deadline and any(p in _task_workers() for p in workers):
        time.sleep(0.2)
    assert not [p for p in workers if p in _task_workers()], f"Ray workers outlived a driver stopped by {sig.name}"
    return proc, err.decode()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_stopped_driver_takes_its_workers_and_the_rerun_gives_the_same_table(tmp_path, killable):
    root, ref = killable
    out = tmp_path / "cmp"
    cmd = _compare_cmd(root, tmp_path, out, KILL_EPOCHS)
    # Ctrl-C: the tasks are cancelled, and one line says what was kept and how to continue
    proc, err = _stop_driver(cmd, tmp_path, signal.SIGINT)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130 and last.startswith("interrupted: ") and "Ray tasks in flight were cancelled" in last
    assert "the same command continues" in last, err
    # kill -9: no chance to cancel anything, yet the local instance's task workers die with the driver
    _stop_driver(cmd, tmp_path, signal.SIGKILL)
    for f in out.rglob("seed*.json"):  # nothing half-written
        assert pd.read_json(f, typ="series")["finished"]
    done = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    pd.testing.assert_frame_equal(_results(out / "ledger.csv"), ref)


def test_without_the_extra_the_error_names_it(tmp_path):
    blocked = tmp_path / "blocked" / "ray"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    done = subprocess.run([sys.executable, str(_REPO / "scripts" / "compare.py"), "--profile", "quick",
                           "--engine", "ray"], env={**os.environ, "PYTHONPATH": f"{blocked.parent}:{_REPO}"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -e '.[ray]'" in lines[0], done.stderr


def test_an_unreachable_cluster_is_one_line_and_no_local_fallback(tmp_path, data_dir):
    root = small_root(tmp_path, data_dir, n=80)
    cmd = [sys.executable, str(_REPO / "scripts" / "compare.py"), "--strategies", "none", "--datasets", "bace",
           "--seeds", "0", "--epochs", "1", "--num-layer", "2", "--emb-dim", "8", "--reference-checkpoints", "",
           "--data-root", str(root), "--cache", str(tmp_path / "cache"), "--output", str(tmp_path / "cmp"),
           "--engine", "ray", "--address", "127.0.0.1:9"]
    t0 = time.time()
    done = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and time.time() - t0 < 60
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Ray cluster at '127.0.0.1:9'" in lines[0], done.stderr
    assert "ray start --head" in lines[0]
    ledger = tmp_path / "cmp" / "ledger.csv"
    assert not ledger.exists() or len(pd.read_csv(ledger)) == 0  # nothing ran on a substitute cluster


@pytest.mark.parametrize("args, message", [
    (["--jobs", "2", "--engine", "ray"], "--jobs sets local worker processes"),
    (["--address", "auto"], "--address names a Ray cluster: it needs --engine ray"),
])
def test_options_that_clash_are_one_line(run_script, args, message):
    done = run_script("compare", "--profile", "quick", *args)
    assert done.returncode == 2 and message in done.stderr
