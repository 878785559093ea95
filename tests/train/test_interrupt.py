"""Ctrl-C during featurization and during pre-training: one line, exit code 130, and the work resumes.

Real runs of ``scripts/pretrain.py`` in a subprocess (its own process group, so SIGINT reaches the
script and its featurization workers, as a terminal's Ctrl-C does).
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gnnpretrain.chem import corpus
from gnnpretrain.chem.corpus import featurize_to_store
from gnnpretrain.utils import run_cli

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "pretrain.py"
TINY = ["--emb-dim", "16", "--num-layer", "2", "--batch-size", "64", "--no-progress"]


def _pretrain_main():
    import importlib.util

    spec = importlib.util.spec_from_file_location("pretrain_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _zinc_csv(data_dir: Path, path: Path, n: int) -> Path:
    with gzip.open(data_dir / "zinc" / "moses_train.csv.gz", "rt") as fh:
        lines = [next(fh) for _ in range(n + 1)]
    path.write_text("".join(lines))
    return path


def _env(cache: Path) -> dict:
    env = dict(os.environ, GNNPRETRAIN_CACHE=str(cache), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("GNNPRETRAIN_DEBUG", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start(args: list[str], cache: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=REPO, env=_env(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _interrupt(proc: subprocess.Popen) -> tuple[str, str]:
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    out, err = proc.communicate(timeout=60)
    return out, err


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (code {proc.returncode}) before the point to interrupt:\n{out}\n{err}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail("timed out waiting for the point to interrupt")
        time.sleep(0.05)


def _one_interrupt_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    hits = [ln for ln in lines if ln.startswith("interrupted")]
    assert len(hits) == 1, err
    assert lines[-1] == hits[0], err
    return hits[0]


@pytest.mark.slow
def test_ctrl_c_during_featurization_keeps_chunks_and_resumes(data_dir, tmp_path):
    csv = _zinc_csv(data_dir, tmp_path / "zinc6k.csv", 6_000)  # 3 chunks of 2,000
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    args = ["--strategy", "attrmasking", "--dataset", str(csv), "--epochs", "1", "--output", str(out),
            "--num-workers", "2", *TINY]
    proc = _start(args, cache)

    def chunks() -> list[Path]:
        return sorted((cache / "corpus").glob(".partial-*/*.npz")) if (cache / "corpus").is_dir() else []

    _wait_for(lambda: len(chunks()) >= 1, proc)
    stdout, err = _interrupt(proc)
    assert proc.returncode == 130, (stdout, err)
    line = _one_interrupt_line(err)
    assert "molecules featurized and saved in" in line and "the same command continues" in line
    assert "featurizing 6,000" in stdout  # announced up front, with a rough time
    saved = {p.name: p.stat().st_mtime_ns for p in chunks()}
    assert 1 <= len(saved) < 3, saved
    assert not (out / "checkpoint.pth").exists()

    # the same command again: the saved chunks are read back, not recomputed, and the run finishes
    proc = _start(args, cache)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert (out / "model.pth").is_file()
    stores = [p for p in (cache / "corpus").iterdir() if not p.name.startswith(".")]
    assert len(stores) == 1 and not chunks()  # the partial folder is gone once the store is written


def test_resumed_featurization_equals_one_pass(data_dir, tmp_path, monkeypatch):
    """Chunks kept from an interrupted pass are reused untouched; the store equals a one-pass build."""
    monkeypatch.setattr(corpus, "CHUNK_SIZE", 100)
    import pandas as pd

    smiles = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")["smiles"].tolist()[:450] + ["not a smiles"]
    one, skipped_one = featurize_to_store(smiles, num_workers=1, progress=False)
    folder = tmp_path / "chunks"
    featurize_to_store(smiles, num_workers=1, progress=False, chunk_dir=folder)
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 5
    for f in files[2:]:  # as if interrupted after two chunks
        f.unlink()
    kept = {f.name: f.stat().st_mtime_ns for f in files[:2]}
    again, skipped_again = featurize_to_store(smiles, num_workers=1, progress=False, chunk_dir=folder)
    assert {f.name: f.stat().st_mtime_ns for f in files[:2]} == kept
    assert skipped_one == skipped_again == 1 + (450 - len(one)) and len(again) == len(one)
    for key in ("x", "edge_attr", "node_ptr", "edge_ptr", "source_index"):
        a, b = getattr(one, key), getattr(again, key)
        assert np.array_equal(np.asarray(a), np.asarray(b)), key


@pytest.mark.slow
def test_ctrl_c_during_training_says_what_is_saved_and_resume_continues(data_dir, tmp_path, capsys):
    csv = _zinc_csv(data_dir, tmp_path / "zinc2k.csv", 2_000)
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    args = ["--strategy", "attrmasking", "--dataset", str(csv), "--epochs", "200", "--output", str(out),
            "--num-workers", "1", *TINY]
    proc = _start(args, cache)
    metrics = out / "metrics.jsonl"
    _wait_for(lambda: metrics.is_file() and metrics.read_text().count("\n") >= 1, proc)
    stdout, err = _interrupt(proc)
    assert proc.returncode == 130, (stdout, err)
    line = _one_interrupt_line(err)
    done = metrics.read_text().count("\n")
    assert f"epochs 1-{done} are saved in" in line and "add --resume" in line, line
    assert "pre-training: 200 epoch(s) x 32 steps" in stdout

    # the same command without --resume is refused at once (before loading data), with one line
    with pytest.raises(SystemExit) as exit_info:
        run_cli(_pretrain_main(), [*args, "--data-root", str(tmp_path / "no-data-needed")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already holds a pre-training run" in err and err.count("\n") == 1
    # with --resume it continues after the saved epoch
    proc = _start([*args[:5], str(done + 1), *args[6:], "--resume"], cache)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"resuming {out} after epoch {done}" in stdout
    assert metrics.read_text().count("\n") == done + 1
