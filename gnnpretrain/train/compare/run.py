"""Running a comparison: pre-training subprocesses, the fine-tuning worker pool, then the report.

Every step leaves a file behind (``done.json`` beside a pre-trained ``model.pth``, one atomically
written ``seed<k>.json`` per fine-tune), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Sequence

from gnnpretrain.train.compare.plan import (
    _REPO,
    CompareConfig,
    _pretrain_args,
    build_rows,
    plan_finetunes,
    pretrain_dir,
)
from gnnpretrain.train.compare.report import write_report
from gnnpretrain.utils import atomic_write_json

def ensure_pretrained(
    config: CompareConfig, chain: Sequence[str], gnn_type: str, log: Callable[[str], None] = print
) -> Path:
    """``model.pth`` of the chain, pre-training each missing step (in order) as a subprocess."""
    previous: Path | None = None
    for i in range(1, len(chain) + 1):
        run = pretrain_dir(config, chain[:i], gnn_type)
        model = run / "model.pth"
        done = run / "done.json"
        if not (done.is_file() and model.is_file()):
            args = _pretrain_args(config, chain[i - 1], gnn_type) + ["--output", str(run), "--resume", "--no-progress"]
            if previous is not None:
                args += ["--input-model-file", str(previous)]
            cmd = [sys.executable, str(_REPO / "scripts" / "pretrain.py"), *args]
            log(f"pre-training {'+'.join(chain[:i])}: {' '.join(cmd[1:])}")
            t0 = time.time()
            proc = subprocess.run(cmd, cwd=str(_REPO), capture_output=True, text=True)
            if proc.returncode != 0 or not model.is_file():
                tail = (proc.stdout + proc.stderr)[-3000:]
                raise RuntimeError(
                    f"pre-training {'+'.join(chain[:i])} failed (exit {proc.returncode}); command:\n  "
                    f"{' '.join(cmd)}\n--- output tail ---\n{tail}"
                )
            atomic_write_json(done, {"command": cmd[1:], "wall_time_s": round(time.time() - t0, 1)})
        previous = model
    assert previous is not None
    return previous


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run_one(ft_config, seed: int) -> dict:
    from gnnpretrain.train.finetune import run_seed

    rec = run_seed(ft_config, seed)
    return {"dataset": rec["dataset"], "seed": rec["seed"], "skipped": rec["skipped"], "wall_time_s": rec["wall_time_s"]}


def run_comparison(config: CompareConfig, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the whole comparison and write the report; returns the report dict."""
    t0 = time.time()
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    rows = build_rows(config)
    checkpoints: dict[str, str | None] = {}
    for row in rows:
        if row.checkpoint:
            checkpoints[row.name] = row.checkpoint
        elif row.chain:
            checkpoints[row.name] = str(ensure_pretrained(config, row.chain, row.gnn_type, log))
        else:
            checkpoints[row.name] = None
    todo, done = plan_finetunes(config, rows, checkpoints)
    log(f"fine-tuning: {done} runs already finished, {len(todo)} to run with {config.jobs} process(es)")
    if todo:
        if config.jobs == 1:
            _worker_init_threads_main()
            for i, (row, ftc, seed) in enumerate(todo, 1):
                r = _run_one(ftc, seed)
                log(f"[{i}/{len(todo)}] {row.name} {r['dataset']} seed {seed}: {r['wall_time_s']:.0f} s")
        else:
            with ProcessPoolExecutor(max_workers=config.jobs, initializer=_worker_init) as pool:
                futs = {pool.submit(_run_one, ftc, seed): (row, ftc, seed) for row, ftc, seed in todo}
                for i, fut in enumerate(as_completed(futs), 1):
                    row, ftc, seed = futs[fut]
                    r = fut.result()
                    log(f"[{i}/{len(todo)}] {row.name} {r['dataset']} seed {seed}: {r['wall_time_s']:.0f} s")
    report = write_report(config, rows, checkpoints)
    report["wall_time_s"] = round(time.time() - t0, 1)
    report["ran"] = len(todo)
    atomic_write_json(out / "report.json", report)
    return report


def _worker_init_threads_main() -> None:
    """In-process runs (``jobs == 1``) keep the caller's thread count: nothing else competes."""
