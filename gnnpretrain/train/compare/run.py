"""Running a comparison: pre-training subprocesses, the fine-tuning worker pool, then the report.

Every step leaves a file behind (``done.json`` beside a pre-trained ``model.pth``, one atomically
written ``seed<k>.json`` per fine-tune), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from gnnpretrain.paths import REPO_ROOT
from gnnpretrain.train.compare.plan import (
    CompareConfig,
    Row,
    build_rows,
    plan_finetunes,
    pretrain_args,
    pretrain_dir,
)
from gnnpretrain.train.compare.report import write_report
from gnnpretrain.utils import atomic_write_json, resolve_device, runtime_info


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
            args = pretrain_args(config, chain[i - 1], gnn_type) + ["--output", str(run), "--resume", "--no-progress"]
            if previous is not None:
                args += ["--input-model-file", str(previous)]
            cmd = [sys.executable, str(REPO_ROOT / "scripts" / "pretrain.py"), *args]
            log(f"pre-training {'+'.join(chain[:i])}: {' '.join(cmd[1:])}")
            t0 = time.time()
            proc = subprocess.run(cmd, cwd=str(REPO_ROOT), capture_output=True, text=True)
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


def _run_one(job: tuple) -> dict:
    """Fine-tune one ``(config, seed)`` (resume-aware) in this process; return the record with the runtime."""
    from gnnpretrain.train.separate import run_seed
    from gnnpretrain.utils import runtime_info

    ft_config, seed = job
    rec = run_seed(ft_config, seed)
    rec.pop("curve", None)  # the curve stays in the seed file; the parent needs the summary
    rec.setdefault("runtime", runtime_info(rec.get("device")))
    return rec


# ------------------------------------------------------------------------------------- the run
def run_comparison(config: CompareConfig, log: Callable[[str], None] = print, stop_at: float | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the whole comparison, grow its ledger and write the report; returns the report.

    Cells already in the ledger with the same configuration are skipped; finished seed files the
    ledger lacks are copied into it without training; the rest is fine-tuned and appended as each
    seed finishes, so a killed run loses at most the seeds in flight.

    Fused runs (``config.fused``, in-process) also take a ``stop_at`` deadline and a per-epoch
    ``progress`` line sink (:func:`gnnpretrain.train.fused.train_group`); at the deadline the group
    in flight saves its state and :class:`~gnnpretrain.train.fused.BudgetReached` propagates.
    """
    from gnnpretrain.outputs import ensure_writable, output_lock

    # before any work: the ledger's folder can be written, and the output folder is ours alone
    ensure_writable(config.ledger_path.parent, what="ledger folder", option="--ledger")
    with output_lock(config.out_dir, what="comparison output folder"):
        return _run_comparison_locked(config, log, stop_at, progress)


def _run_comparison_locked(config: CompareConfig, log: Callable[[str], None], stop_at: float | None = None,
                           progress: Callable[[str], None] | None = None) -> dict:
    from gnnpretrain.train.compare.ledger import Ledger, line_from_record

    t0 = time.time()
    out = config.out_dir
    ledger = Ledger(config.ledger_path)
    rows = build_rows(config)
    checkpoints: dict[str, str | None] = {}
    for row in rows:
        if row.checkpoint:
            checkpoints[row.name] = row.checkpoint
        elif row.chain:
            checkpoints[row.name] = str(ensure_pretrained(config, row.chain, row.gnn_type, log))
        else:
            checkpoints[row.name] = None
    plan = plan_finetunes(config, rows, checkpoints, ledger)
    if plan.backfill:
        ledger.append(plan.backfill)
    todo = plan.todo
    log(f"fine-tuning: {plan.done} runs in the ledger {ledger.path}, {len(plan.backfill)} copied from finished "
        f"seed files, {len(todo)} to run "
        + ("as Ray tasks" if config.engine == "ray" else f"with {config.jobs} process(es)"))

    finished = 0

    def record(i: int, row: Row, rec: dict) -> None:
        nonlocal finished
        ledger.append([line_from_record(rec, experiment=config.experiment, row=row.name,
                                        baseline=row.baseline if row.pretrained else None,
                                        checkpoint=checkpoints[row.name], runtime=rec.get("runtime"))])
        finished += 1
        log(f"[{i}/{len(todo)}] {row.name} {rec['dataset']} seed {rec['seed']}: test ROC-AUC "
            f"{rec['best_valid']['test_auc']:.4f} (best valid) {rec['last']['test_auc']:.4f} (last), "
            f"{rec['wall_time_s']:.0f} s")

    count = iter(range(1, len(todo) + 1))

    def member_record(i: int, rec: dict) -> None:  # engines that report members by their index in todo
        rec.setdefault("runtime", runtime_info(rec.get("device")))
        record(next(count), todo[i][0], rec)

    def interrupted() -> str:
        return (f"{finished} of {len(todo)} fine-tunes finished and are in the ledger {ledger.path}"
                + ("; the Ray tasks in flight were cancelled" if config.engine == "ray" else "")
                + "; the same command continues with the rest")

    from gnnpretrain.runtime import interrupt_note

    with interrupt_note(interrupted):
        _finetune(config, todo, record, member_record, log, stop_at, progress)
    report = write_report(config, rows, checkpoints, ledger.read())
    report["ledger"] = str(ledger.path)
    report["runtime"] = runtime_info(resolve_device(config.device))
    report["wall_time_s"] = round(time.time() - t0, 1)
    report["ran"] = len(todo)
    report["copied_from_seed_files"] = len(plan.backfill)
    atomic_write_json(out / "report.json", report)
    return report


def _finetune(config: CompareConfig, todo: list, record: Callable, member_record: Callable,
              log: Callable[[str], None], stop_at: float | None, progress: Callable[[str], None] | None) -> None:
    """The fine-tuning stage on the chosen engine; every finished seed reaches ``record`` / ``member_record``."""
    if todo and config.engine == "ray":
        # Ray tasks on a cluster (gnnpretrain.train.rayengine): fused groups or single seeds; the records
        # come back here, and only this process writes seed files and ledger lines
        from gnnpretrain.train.rayengine import run_members_ray

        run_members_ray([(ftc, seed) for _, ftc, seed in todo], fused=config.fused, fuse_max=config.fuse_max,
                        threads=config.task_threads, address=config.address, note=log, on_record=member_record)
    elif todo and config.fused:
        # every (architecture, dataset) cell group as stacked computations: same seed files and ledger
        # lines as separate runs (gnnpretrain.train.fused); a line per seed as its group finishes
        from gnnpretrain.train.fused import run_members

        # --jobs processes (one thread each) on CPU; on CUDA one process per visible GPU
        run_members([(ftc, seed) for _, ftc, seed in todo], fuse_max=config.fuse_max, note=log,
                    on_record=member_record, jobs=config.jobs if config.jobs > 1 else None,
                    stop_at=stop_at, progress=progress)
    elif todo:
        if config.jobs == 1:
            for i, (row, ftc, seed) in enumerate(todo, 1):
                record(i, row, _run_one((ftc, seed)))
        else:
            from gnnpretrain.train.workers import parallel_map

            jobs = [(ftc, seed) for _, ftc, seed in todo]
            for i, (k, rec) in enumerate(parallel_map(_run_one, jobs, config.jobs), 1):
                record(i, todo[k][0], rec)
