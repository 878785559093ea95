"""The Ray Tune engine of a search (``scripts/finetune.py --hpopt N --engine ray``): the same search space,
trial configuration and outputs as the local engine, run as Ray Tune trials.

Optuna is the searcher (Ray's ``OptunaSearch`` on the same study and storage as the local engine, the
same seeded TPE sampler), ASHA stops trials early on the per-epoch validation score (best so far), and
each trial is one Ray task of ``threads`` CPUs (``tune.with_resources``), at most ``max_concurrent``
at once. The study stays the record: a finished trial is told to it (an early-stopped or diverged one
as pruned, at its last score), so N and resuming work as in the local engine — a repeated command
starts a new Tune run for the trials still missing. Tune's own logs go to ``<hpopt>/ray/``.

What moves, as for ``compare.py --engine ray`` (:mod:`gnnpretrain.train.rayengine`): the task, featurized
once here, and the checkpoint's bytes go to the trials through Ray's object store (``tune.with_parameters``),
so no machine needs the data, RDKit or a shared filesystem.

Imported only for ``--engine ray``; this module imports Ray.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from gnnpretrain.errors import UserError
from gnnpretrain.train.hpopt.report import best_trial, trial_line, write_results
from gnnpretrain.train.hpopt.space import Param, suggest, trial_config
from gnnpretrain.train.hpopt.study import Reporter, finished_count, make_sampler
from gnnpretrain.train.objectives import get_objective
from gnnpretrain.train.run.config import FinetuneConfig
from gnnpretrain.train.rayengine import portable_task
from gnnpretrain.train.separate import finetune_seed
from gnnpretrain.utils import sha256_file

__all__ = ["run_tune", "trainable", "TrialNumber", "StudySearcher"]

#: The key of a trial's final report (every seed trained); Tune's own ``done`` is also set for a trial ASHA stopped.
FINAL = "all_seeds_trained"


def trainable(params: dict, base: FinetuneConfig, seeds: list[int], task, checkpoint: tuple | None) -> None:
    """One trial in a Ray worker: the first seed reports every epoch (``objective`` = best validation score
    so far); the last report (:data:`FINAL`) holds the mean best-valid validation and test scores over ``seeds``.
    ``task``: the driver's (:func:`~gnnpretrain.train.rayengine.portable_task`); ``checkpoint``: ``(sha256,
    bytes)`` of ``base.input_model_file``, written into this node's cache when the file is not here."""
    import dataclasses

    from gnnpretrain.train.rayengine import node_checkpoint

    if checkpoint is not None:
        base = dataclasses.replace(base, input_model_file=node_checkpoint(base.input_model_file, *checkpoint))
    objective = get_objective(task.task_type)
    cfg = trial_config(base, {k: v for k, v in params.items() if k != "optuna_trial"}, None, seeds)
    records = []

    def report(step: int, value: float, attrs: dict) -> None:
        tune.report({"objective": value, **attrs})

    for i, seed in enumerate(seeds):
        try:
            records.append(finetune_seed(task, seed, cfg, cfg.device,
                                         on_epoch=Reporter(objective, report) if i == 0 else None))
        except FloatingPointError as err:  # diverged: no final report, so the study counts it pruned
            tune.report({"diverged": str(err)})
            return
    tune.report({"objective": statistics.fmean(r["best_valid"]["valid_score"] for r in records),
                 "test_score": statistics.fmean(r["best_valid"]["test_score"] for r in records),
                 "epochs_run": int(cfg.epochs), FINAL: True})


class TrialNumber:
    """The define-by-run space: the trial's parameters (:func:`~gnnpretrain.train.hpopt.space.suggest`),
    plus the Optuna trial number in the Tune trial's config (for the progress line)."""

    def __init__(self, space: dict[str, Param]) -> None:
        self.space = space

    def __call__(self, trial: Any) -> dict:
        suggest(trial, self.space)
        return {"optuna_trial": trial.number}


class StudySearcher(OptunaSearch):
    """``OptunaSearch`` that keeps a trial's test score and epochs run as Optuna user attributes and tells
    a trial without its final report (:data:`FINAL`) — stopped by ASHA, or diverged — as pruned."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = getattr(self, "_ot_trials", {}).get(trial_id)  # Ray's record of the Optuna trial
        if ot_trial is not None and result:
            for key in ("test_score", "epochs_run", "diverged"):
                if result.get(key) is not None:
                    ot_trial.set_user_attr(key, result[key])
        if result and not error and not result.get(FINAL):
            if ot_trial is not None and result.get("objective") is not None:
                with warnings.catch_warnings():  # Tune passes a stopping result to the scheduler only
                    warnings.simplefilter("ignore")  # (Optuna ignores a step reported twice)
                    ot_trial.report(result["objective"], result["training_iteration"])
            result = None  # Optuna then keeps the last reported score as the pruned trial's value
        super().on_trial_complete(trial_id, result, error)


class _Progress(tune.Callback):
    def __init__(self, line: Callable[[int], None]) -> None:
        self.line = line

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        number = trial.config.get("optuna_trial")
        if number is not None:
            self.line(int(number))


def _worker_config(base: FinetuneConfig, threads: int) -> FinetuneConfig:
    """``base`` as a Ray worker needs it: paths absolute as this process resolves them (a worker runs in
    another folder: the checkpoint is found there when the machine is this one), ``threads`` torch threads."""
    import dataclasses

    from gnnpretrain.paths import cache_dir, data_root

    csv = Path(base.dataset)
    return dataclasses.replace(
        base, num_threads=threads,
        dataset=str(csv.resolve()) if csv.suffix and csv.is_file() else base.dataset,
        input_model_file=str(Path(base.input_model_file).resolve()) if base.input_model_file else None,
        data_root=str(data_root(base.data_root).resolve()), cache=str(cache_dir(base.cache).resolve()))


def _checkpoint_bytes(base: FinetuneConfig) -> tuple[str, bytes] | None:
    if not base.input_model_file:
        return None
    return sha256_file(base.input_model_file), Path(base.input_model_file).read_bytes()


def _trial_error(grid, n_finished: int, logs: Path) -> Exception:
    """The first failed trial's error: a user's mistake (a missing file, a bad value) is one line."""
    first = grid.errors[0]
    text = str(first).strip().splitlines()[-1] if str(first).strip() else type(first).__name__
    message = (f"a Ray Tune trial failed, so the search stopped: {text} ({n_finished} finished trials are saved "
               f"in the study; logs in {logs})")
    if isinstance(first, (UserError, ValueError, FileNotFoundError)):
        return UserError(message)
    return RuntimeError(message)


@contextlib.contextmanager
def _plain_interrupts():
    """Ctrl-C during the Tune run is a plain ``KeyboardInterrupt`` (the search's one-line note; the study's
    unfinished trials are queued again by the next run), not Tune's own stop-and-save for ``Tuner.restore``,
    which this search does not use: Tune's ``TUNE_DISABLE_SIGINT_HANDLER``, set for the run only."""
    before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = before


def run_tune(base: FinetuneConfig, task, study, storage, name: str, space: dict[str, Param], seeds: list[int],
             hp_dir: Path, n_trials: int, metric: str, *, threads: int, max_concurrent: int | None,
             sampler_seed: int, log: Callable[[str], None]) -> None:
    """Run Ray Tune trials of ``task`` until the study holds ``n_trials`` finished ones (Ray must be
    initialised: :func:`gnnpretrain.raycluster.connect`)."""
    import ray

    driver_base, base = base, _worker_config(base, threads)
    done = finished_count(study)
    todo = n_trials - done
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if threads > cpus:
        raise UserError(f"--threads {threads} per trial, but the Ray cluster has {cpus} CPUs")
    concurrent = max(1, min(todo, max_concurrent or cpus // threads))
    mode = "max" if study.direction.name == "MAXIMIZE" else "min"
    max_epochs = int(base.epochs)
    searcher = StudySearcher(
        space=TrialNumber(space), metric="objective", mode=mode, study_name=name, storage=storage,
        sampler=make_sampler(sampler_seed, len(study.trials), n_trials, shared=False))
    scheduler = ASHAScheduler(time_attr="training_iteration", metric="objective", mode=mode,
                              max_t=max_epochs + 1, grace_period=max(1, max_epochs // 5), reduction_factor=3)

    def line(number: int) -> None:
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is not None:
            log(trial_line(trial, best_trial(study), finished_count(study), n_trials, metric))
            write_results(study, space, driver_base, hp_dir, metric, plot=False)

    log(f"Ray Tune: {todo} trial(s), {concurrent} at a time, {threads} CPU(s) each, on a cluster of {cpus} CPUs")
    tuner = tune.Tuner(
        # the task and the checkpoint's bytes go through the object store (with_parameters puts them there)
        tune.with_resources(tune.with_parameters(trainable, base=base, seeds=list(seeds),
                                                 task=portable_task(task),
                                                 checkpoint=_checkpoint_bytes(base)), {"cpu": threads}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=todo,
                                    max_concurrent_trials=concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                  storage_path=str((hp_dir / "ray").resolve()), verbose=0,
                                  # a failing trial is a mistake every trial repeats (a diverging one is pruned)
                                  failure_config=tune.FailureConfig(max_failures=0, fail_fast=True),
                                  callbacks=[_Progress(line)]),
    )
    with _plain_interrupts():
        grid = tuner.fit()
    if grid.errors:
        raise _trial_error(grid, finished_count(study), hp_dir / "ray")
