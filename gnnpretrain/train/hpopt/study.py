"""The Optuna study of a search: where it is stored, which search it belongs to, resuming it, and the
trial objective of the local engine.

Storage: SQLite at ``<output>/<dataset>/hpopt/study.db`` by default (the search holds the folder's run
lock, so a trial still RUNNING there when a search starts was left by a killed process: it is marked
failed and its parameters are queued again, Optuna's ``RetryHeartbeatStaleTrialCallback``); ``--storage URL`` (any
Optuna RDB URL, e.g. ``postgresql://...``) lets several processes or machines share one study — there
Optuna's heartbeat marks the trials of a process that died as failed and queues them again.

A study remembers what it searches (:func:`study_spec`: the fixed options, the search space, the seeds,
the metric); a search with other options refuses to join it. ``N`` trials means N finished (complete or
pruned) trials in the study: a repeated command runs only the missing ones.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable

from gnnpretrain.errors import UserError
from gnnpretrain.train.objectives import Objective
from gnnpretrain.train.hpopt.space import Param, describe_space, suggest, trial_config
from gnnpretrain.train.run.config import RESULT_KEYS, FinetuneConfig, recorded_config
from gnnpretrain.train.separate import run_seed
from gnnpretrain.train.tasks import Task

__all__ = ["SPEC_ATTR", "HEARTBEAT_INTERVAL_S", "make_storage", "study_spec", "open_study", "finished_count",
           "requeue_trial", "retry_of", "fail_running_trials", "make_sampler", "make_pruner", "trial_folder", "Reporter",
           "local_objective"]

#: The study user attribute holding :func:`study_spec`.
SPEC_ATTR = "gnnpretrain_search"
#: Seconds between a shared study's heartbeats (``--storage``); a trial silent for 4 of them is failed and queued again.
HEARTBEAT_INTERVAL_S = 30


def make_storage(url: str, shared: bool):
    """Optuna's RDB storage at ``url``; ``shared``: with heartbeats, so the trials of a process that died
    are failed and queued again by the others (Optuna's way for several processes)."""
    import optuna

    if not shared:
        return optuna.storages.RDBStorage(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=4 * HEARTBEAT_INTERVAL_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))


def study_spec(base: FinetuneConfig, space: dict[str, Param], seeds: list[int], objective: Objective) -> dict:
    """What a study searches: the fixed result-changing options (content hashes for the checkpoint and a
    CSV), the space, the trial seeds and the metric. JSON, kept as a study attribute."""
    rec = recorded_config(base)
    return {
        "format": 1,
        "fixed": {k: rec.get(k) for k in RESULT_KEYS if k not in space},
        "space": describe_space(space),
        "seeds": [int(s) for s in seeds],
        "metric": objective.metric,
        "direction": "maximize" if objective.higher_is_better else "minimize",
    }


def open_study(storage, name: str, spec: dict, where: str):
    """Create the study ``name`` or load it; an existing study of another search is a one-line error."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction=spec["direction"], load_if_exists=True)
    old = study.user_attrs.get(SPEC_ATTR)
    if old is None:
        if study.trials:
            raise UserError(f"the study {name!r} in {where} was not made by scripts/finetune.py --hpopt; "
                            "choose another --study-name")
        study.set_user_attr(SPEC_ATTR, spec)
        return study
    diff = [f"{k}: study has {old['fixed'].get(k)!r}, now {v!r}" for k, v in spec["fixed"].items()
            if old.get("fixed", {}).get(k) != v]
    diff += [f"{k}: study has {old.get(k)!r}, now {spec[k]!r}" for k in ("space", "seeds", "metric")
             if old.get(k) != spec[k]]
    if diff:
        raise UserError(f"the study {name!r} in {where} searched with other options ({'; '.join(diff)}); "
                        "continue it with the same options, or start another with --study-name or --output")
    return study


def finished_count(study) -> int:
    """Trials that count towards N: complete or pruned."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def retry_of(trial) -> int | None:
    """The number of the first failed trial a (frozen) trial retries, or ``None`` (Optuna's retry callback)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def requeue_trial(study, number: int) -> None:
    """Queue the parameters of failed trial ``number`` again, once (with Optuna's
    ``RetryHeartbeatStaleTrialCallback``, as its heartbeat does for a shared study)."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    trial = next(t for t in trials if t.number == number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback
        retried = {n for t in trials for n in retry.retry_history(t)}
        if trial.params and number not in retried:
            retry()(study, trial)


def fail_running_trials(study) -> int:
    """Mark every RUNNING trial failed and queue its parameters again (call only while no other process
    can be working on the study: the default SQLite study under the run lock). Returns how many."""
    from optuna.trial import TrialState

    running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in running:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        requeue_trial(study, number)
    return len(running)


def make_sampler(seed: int, existing: int, n_trials: int, shared: bool):
    """Optuna's TPE sampler, seeded by ``seed`` and the trials already in the study (a resumed search does
    not repeat the first one's random start); a shared study adds this process's identity, so processes
    started together differ. Random start: a third of the trials, 3 to 10."""
    import optuna

    if shared:
        seed += zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode())
    return optuna.samplers.TPESampler(seed=(seed + existing) % 2**32, n_startup_trials=min(10, max(3, n_trials // 3)))


def make_pruner(max_epochs: int):
    """Optuna's median pruner on the per-epoch validation score (best so far): from the 4th trial on, a trial
    whose score after an epoch is worse than the median of the earlier trials' at that epoch stops, once
    it has trained a fifth of the most epochs."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, max_epochs // 5))


def trial_folder(hp_dir: Path, trial) -> Path:
    """``<hpopt>/trial<k>`` of a (frozen) trial; a trial queued again after a failure keeps the first one's
    folder (its finished seeds are read back)."""
    first = retry_of(trial)
    return hp_dir / f"trial{trial.number if first is None else first}"


class Reporter:
    """The per-epoch hook of a trial's first seed: the best validation score so far (the objective's
    direction), the test score at that epoch and the epochs run go to ``report(step, value, attrs)``;
    ``report`` may stop the run by raising."""

    def __init__(self, objective: Objective, report: Callable[[int, float, dict], None]) -> None:
        self.objective, self.report = objective, report
        self.best: tuple[float, float] | None = None

    def __call__(self, epoch: int, row: dict) -> None:
        v = float(row["valid_score"])
        if math.isfinite(v) and (self.best is None or (v > self.best[0] if self.objective.higher_is_better
                                                       else v < self.best[0])):
            self.best = (v, float(row["test_score"]))
        if self.best is not None:
            self.report(epoch, self.best[0], {"test_score": self.best[1], "epochs_run": epoch})


def local_objective(study, base: FinetuneConfig, task: Task, objective: Objective, space: dict[str, Param],
                    seeds: list[int], hp_dir: Path, running: dict) -> Callable[[Any], float]:
    """Optuna's objective: one trial = the base configuration with the suggested parameters, fine-tuned on
    ``seeds`` (seed files under :func:`trial_folder`); value = the mean best-valid validation score. The
    first seed reports every epoch to the pruner; a diverging run (non-finite loss) counts as pruned.
    The test score is kept as a trial attribute, never used for selection. ``running["number"]``: the
    trial in progress (for Ctrl-C)."""
    import optuna

    def run(trial) -> float:
        running["number"] = trial.number
        params = suggest(trial, space)
        folder = trial_folder(hp_dir, next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number))
        cfg = trial_config(base, params, str(folder), seeds)
        trial.set_user_attr("folder", folder.name)

        def report(step: int, value: float, attrs: dict) -> None:
            trial.report(value, step)
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            last = step >= cfg.epochs and len(seeds) == 1  # nothing left to save: the trial completes
            if not last and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {step}")

        records = []
        for i, seed in enumerate(seeds):
            hook = Reporter(objective, report) if i == 0 else None
            try:
                rec = run_seed(cfg, seed, task, on_epoch=hook)
            except FloatingPointError as err:  # a learning rate too high for this configuration
                trial.set_user_attr("diverged", str(err))
                raise optuna.TrialPruned(str(err)) from None
            if hook is not None and rec.get("skipped"):  # read back (a retried trial): its curve, unpruned
                quiet = Reporter(objective, lambda s, v, a: trial.report(v, s))
                for row in rec["curve"]:
                    quiet(row["epoch"], row)
            records.append(rec)
        trial.set_user_attr("test_score", statistics.fmean(r["best_valid"]["test_score"] for r in records))
        trial.set_user_attr("epochs_run", int(cfg.epochs))
        return statistics.fmean(r["best_valid"]["valid_score"] for r in records)

    return run
