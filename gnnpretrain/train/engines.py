"""Choosing the engine: :func:`run_finetune` runs every seed of a config separately or fused,
in this process or in parallel worker processes, then summarises.

Engines (siblings over the run layer :mod:`gnnpretrain.train.run`, both returning the same records):

* :mod:`gnnpretrain.train.separate` — one model per seed, the reference's loop (the default);
* :mod:`gnnpretrain.train.fused` — many seeds / checkpoints of one architecture as one stacked
  computation (``config.fused``).

A new engine goes beside them: a function from ``(task, members, device)`` to records, written
through :func:`gnnpretrain.train.run.records.make_record`, chosen here.
"""

from __future__ import annotations

import dataclasses

import torch

from gnnpretrain.train.run.config import FinetuneConfig, recorded_config
from gnnpretrain.train.run.data import load_task
from gnnpretrain.train.run.paths import output_dir
from gnnpretrain.train.run.records import load_finished, summarize
from gnnpretrain.train.separate import run_seed
from gnnpretrain.train.tasks import Task

__all__ = ["run_finetune"]


def run_finetune(config: FinetuneConfig, *, engine: str = "local", address: str | None = None) -> dict:
    """Run (or resume) every seed of ``config`` and return the summary (also in ``summary.json``).

    Resuming checks every seed file first, so a configuration mismatch fails before any training.
    With ``config.jobs > 1`` the unfinished seeds run in that many parallel processes with one torch
    thread each (on a small CPU that beats sequential seeds with several threads; see
    ``benchmarks/RESULTS.md``); every seed computes exactly what it computes alone.
    ``engine="ray"``: the seeds (fused groups with ``config.fused``) as Ray tasks of
    ``config.num_threads`` CPUs on the cluster at ``address`` (:mod:`gnnpretrain.train.rayengine`).
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    from gnnpretrain.outputs import output_lock

    # before any data loading or training: the output can be written and is ours alone (lock), and
    # the checkpoint is safe to read and whole — each failure is one line (gnnpretrain.errors)
    with output_lock(output_dir(config), what="fine-tuning output folder"):
        if config.input_model_file:  # every format (.pth/.pt/.safetensors): unsafe or damaged is one line
            from gnnpretrain.nn.checkpoint import check_weights_file

            check_weights_file(config.input_model_file, trust_pickle=config.trust_pickle,
                               what="--input-model-file checkpoint")
        if engine == "ray":
            return _run_finetune_ray(config, address)
        return _run_finetune_locked(config)


def _run_finetune_ray(config: FinetuneConfig, address: str | None) -> dict:
    from gnnpretrain.runtime import interrupt_note
    from gnnpretrain.train.rayengine import run_members_ray

    if int(config.jobs) != 1:
        raise ValueError("jobs sets local worker processes; on Ray the cluster's CPUs set the parallelism "
                         "(num_threads = torch threads per Ray task)")
    finished: list[int] = []

    def note() -> str:
        return (f"{len(finished)} of {len(config.seeds)} fine-tuning seeds came back and are saved in "
                f"{output_dir(config)}; the Ray tasks in flight were cancelled; the same command continues")

    def line(text: str) -> None:
        if config.progress:
            print(text, flush=True)

    with interrupt_note(note):
        records = run_members_ray([(config, s) for s in config.seeds], fused=config.fused, fuse_max=config.fuse_max,
                                  threads=config.num_threads or 1, address=address, note=line,
                                  on_record=lambda i, rec: finished.append(i))
    return summarize(config, records)


def _run_finetune_locked(config: FinetuneConfig) -> dict:
    from tqdm.auto import tqdm

    current = recorded_config(config)
    done = {s: load_finished(config, s, current) for s in config.seeds}
    todo = [s for s in config.seeds if done[s] is None]
    task = load_task(config) if todo else None
    records = {s: {**r, "skipped": True} for s, r in done.items() if r is not None}
    bar = tqdm(total=len(config.seeds), desc=f"{config.dataset} seeds", disable=not config.progress,
               dynamic_ncols=True)
    bar.update(len(records))

    def finished(rec: dict) -> None:
        records[rec["seed"]] = rec
        bar.update(1)
        key = "test_score" if "test_score" in rec["best_valid"] else "test_auc"
        bar.set_postfix(seed=rec["seed"], test_bv=f"{rec['best_valid'][key]:.4f}",
                        test_last=f"{rec['last'][key]:.4f}")

    def note() -> str:
        n_done = sum(1 for s in config.seeds if s in records)
        return (f"{n_done} of {len(config.seeds)} fine-tuning seeds are finished and saved in {output_dir(config)}; "
                "the same command continues with the others")

    from gnnpretrain.runtime import interrupt_note

    jobs = min(int(config.jobs), len(todo))
    with interrupt_note(note):
        if config.fused and todo:
            # one stacked computation per group of seeds (gnnpretrain.train.fused); with jobs > 1 the
            # seeds are dealt to that many processes, each training its share as fused groups
            if jobs > 1:
                for recs in _run_seeds_parallel(config, task, [todo[i::jobs] for i in range(jobs)], jobs):
                    for rec in recs:
                        finished(rec)
            else:
                from gnnpretrain.train.fused import run_members

                for rec in run_members([(config, s) for s in todo], fuse_max=config.fuse_max, task=task):
                    finished(rec)
        elif jobs > 1:
            for rec in _run_seeds_parallel(config, task, todo, jobs):
                finished(rec)
        else:
            for seed in todo:
                finished(run_seed(config, seed, task, check=False))
    bar.close()
    return summarize(config, [records[s] for s in config.seeds])


# Parallel seeds: the task is handed to forked workers through this global (no pickling of graphs).
_PARALLEL_TASK: Task | None = None


def _parallel_seed(args: tuple[FinetuneConfig, int | list[int]]) -> dict | list[dict]:
    config, seed = args
    if isinstance(seed, list):  # a fused share: its seeds as fused groups, records in seed order
        from gnnpretrain.train.fused import run_members

        return run_members([(config, s) for s in seed], fuse_max=config.fuse_max, task=_PARALLEL_TASK)
    return run_seed(config, seed, _PARALLEL_TASK, check=False)


def _run_seeds_parallel(config: FinetuneConfig, task: Task, seeds: list, jobs: int):
    """Yield the records of ``seeds`` as ``jobs`` worker processes (one thread each) finish them
    (an item that is a list of seeds is one fused share; its worker yields the list of records).

    Each worker writes its seed file atomically, so an interruption keeps every finished seed; the
    workers die with this process (:func:`gnnpretrain.train.workers.parallel_map`).
    """
    global _PARALLEL_TASK
    from gnnpretrain.train.workers import parallel_map

    worker_config = dataclasses.replace(config, progress=False, jobs=1)
    _PARALLEL_TASK = task  # forked workers inherit the loaded task (spawned ones load it from the cache)
    try:
        for _, rec in parallel_map(_parallel_seed, [(worker_config, s) for s in seeds], jobs,
                                   threads=config.num_threads or 1):
            yield rec
    finally:
        _PARALLEL_TASK = None
