""":func:`run_hpopt`: a hyperparameter search over a base fine-tuning configuration, Optuna's or Ray Tune's.

Everything goes to ``<output>/<dataset>/hpopt/`` (:func:`hpopt_dir`): ``study.db`` (the Optuna study,
unless ``storage`` names another), ``trial<k>/`` (the local engine's seed files, the normal run layout),
``trials.csv``, ``best.json`` (``scripts/finetune.py --config`` takes it back), ``trials.png`` and, for
the Ray engine, ``ray/`` (Tune's logs). See :mod:`gnnpretrain.train.hpopt` and docs/hpopt.md.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gnnpretrain.errors import UserError
from gnnpretrain.train.hpopt.report import best_trial, trial_line, write_results
from gnnpretrain.train.hpopt.space import search_space
from gnnpretrain.train.hpopt.study import (
    fail_running_trials,
    finished_count,
    local_objective,
    make_pruner,
    make_sampler,
    make_storage,
    open_study,
    requeue_trial,
    study_spec,
)
from gnnpretrain.train.objectives import get_objective
from gnnpretrain.train.run.config import FinetuneConfig
from gnnpretrain.train.run.data import load_task
from gnnpretrain.train.run.paths import dataset_dirname, output_dir, safe_name
from gnnpretrain.utils import parse_seeds

__all__ = ["HpoptOptions", "ENGINES", "hpopt_dir", "default_study_name", "run_hpopt"]

ENGINES = ("local", "ray")


@dataclass
class HpoptOptions:
    """How to search: ``trials`` = N, the finished (complete or pruned) trials the study ends with;
    ``storage`` an Optuna RDB URL (None: SQLite in :func:`hpopt_dir`); ``seeds`` fine-tuned per trial (the
    objective is their mean best-valid validation score); ``params`` the searched parameters (None: all,
    :data:`~gnnpretrain.train.hpopt.space.SEARCHABLE`); ``engine`` ``local`` (trials one after another in
    this process) or ``ray`` (Ray Tune trials on the cluster at ``address``: None = ``RAY_ADDRESS``, else a
    Ray instance on this machine); ``jobs`` the Ray trials at once (None: the cluster's CPUs / ``threads``);
    ``threads`` torch threads per Ray trial; ``sampler_seed`` seeds the TPE sampler."""

    trials: int
    storage: str | None = None
    study_name: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    params: list[str] | None = None
    engine: str = "local"
    address: str | None = None
    jobs: int | None = None
    threads: int = 1
    sampler_seed: int = 0
    log: Callable[[str], None] = field(default=lambda s: print(s, flush=True), repr=False)

    def __post_init__(self) -> None:
        if int(self.trials) < 1:
            raise UserError(f"--hpopt N needs N >= 1 trials, got {self.trials}")
        if self.engine not in ENGINES:
            raise UserError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.jobs is not None and int(self.jobs) < 1:
            raise UserError(f"--jobs must be >= 1, got {self.jobs}")
        self.seeds = parse_seeds(self.seeds)
        if isinstance(self.params, str):
            self.params = [p.strip() for p in self.params.split(",") if p.strip()]


def hpopt_dir(base: FinetuneConfig) -> Path:
    """``<output>/<dataset>/hpopt``: the search's folder beside the data set's normal results."""
    return output_dir(base) / "hpopt"


def default_study_name(base: FinetuneConfig) -> str:
    return safe_name(f"finetune-{dataset_dirname(base.dataset)}")


def _where(url: str) -> str:
    """The storage as shown to the user (a password in the URL hidden)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (display only)
        return url


def run_hpopt(base: FinetuneConfig, options: HpoptOptions) -> dict:
    """Search until the study holds ``options.trials`` finished trials; write trials.csv, best.json and
    trials.png; return a summary (study, storage, counts, best trial, the files)."""
    from gnnpretrain.raycluster import require_optuna, require_ray

    optuna = require_optuna()
    if options.engine == "ray":
        require_ray()
    space = search_space(base, options.params)  # a bad --hpopt-params: one line before any work
    hp = hpopt_dir(base)
    shared = options.storage is not None
    url = options.storage or f"sqlite:///{(hp / 'study.db').resolve()}"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    if options.engine == "ray":  # the cluster first: an unreachable one is one line before any work
        from gnnpretrain.raycluster import connect

        cluster = connect(options.address)
    else:
        cluster = contextlib.nullcontext()
    try:
        with cluster, _search_folder(hp, shared):
            return _search(base, options, space, hp, url, shared)
    finally:
        optuna.logging.set_verbosity(verbosity)


@contextlib.contextmanager
def _search_folder(hp: Path, shared: bool):
    """The default study belongs to its folder: one search at a time (the folder's run lock). A shared
    storage is meant for several processes, whose trials write only their own ``trial<k>/`` folders."""
    from gnnpretrain.outputs import ensure_writable, output_lock

    if shared:
        ensure_writable(hp, what="hyperparameter search folder")
        yield hp
    else:
        with output_lock(hp, what="hyperparameter search folder"):
            yield hp


def _search(base: FinetuneConfig, options: HpoptOptions, space: dict, hp: Path, url: str, shared: bool) -> dict:
    from gnnpretrain.runtime import interrupt_note

    if base.input_model_file:  # unsafe or damaged: one line before any work
        from gnnpretrain.nn.checkpoint import check_weights_file

        check_weights_file(base.input_model_file, trust_pickle=base.trust_pickle, what="--input-model-file checkpoint")
    task = load_task(base)
    objective = get_objective(task.task_type)
    name = options.study_name or default_study_name(base)
    where = _where(url)
    storage = make_storage(url, shared=shared and options.engine == "local")
    study = open_study(storage, name, study_spec(base, space, options.seeds, objective), where)
    log, n = options.log, int(options.trials)
    if not shared:  # we hold the folder's lock: a RUNNING trial was left by a killed search
        left = fail_running_trials(study)
        if left:
            log(f"{left} trial(s) left running by an interrupted search: marked failed, their parameters queued again")
    done = finished_count(study)
    log(f"study {name} in {where}: {done} of {n} trials finished; searching {', '.join(space)} "
        f"(valid {objective.metric}, {study.direction.name.lower()}); engine {options.engine}")

    def note() -> str:
        return (f"{finished_count(study)} of {n} trials are saved in the study {name} ({where}); "
                "the same command continues")

    if done < n:
        with interrupt_note(note):
            if options.engine == "local":
                _run_local(base, task, objective, space, options, study, storage, name, hp, n)
            else:
                from gnnpretrain.train.hpopt.tune import run_tune

                run_tune(base, task, study, storage, name, space, options.seeds, hp, n, objective.metric,
                         threads=options.threads, max_concurrent=options.jobs, sampler_seed=options.sampler_seed,
                         log=log)
    best_options = write_results(study, space, base, hp, objective.metric)
    best = best_trial(study)
    return {
        "study": name, "storage": where, "folder": str(hp), "trials": n, "finished": finished_count(study),
        "metric": objective.metric, "direction": study.direction.name.lower(),
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                           "test_score": best.user_attrs.get("test_score")},
        "best_json": str(hp / "best.json") if best_options is not None else None,
        "trials_csv": str(hp / "trials.csv"), "plot": str(hp / "trials.png"),
    }


def _run_local(base, task, objective, space, options: HpoptOptions, study, storage, name: str, hp: Path, n: int) -> None:
    import optuna
    from optuna.trial import TrialState

    existing = len(study.trials)
    study = optuna.load_study(study_name=name, storage=storage,
                              sampler=make_sampler(options.sampler_seed, existing, n, shared=options.storage is not None),
                              pruner=make_pruner(int(base.epochs)))

    def progress(study, trial) -> None:
        options.log(trial_line(trial, best_trial(study), finished_count(study), n, objective.metric))
        write_results(study, space, base, hp, objective.metric, plot=False)

    running: dict = {}
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a trial's error is raised (one line); an interrupt is ours
    try:
        study.optimize(local_objective(study, base, task, objective, space, options.seeds, hp, running),
                       n_trials=n - finished_count(study),
                       callbacks=[optuna.study.MaxTrialsCallback(n, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                                  progress])
    except KeyboardInterrupt:
        # Optuna marked the interrupted trial failed: queue its parameters again for the next run
        number = running.get("number")
        if number is not None and any(t.number == number and t.state == TrialState.FAIL
                                      for t in study.get_trials(deepcopy=False)):
            requeue_trial(study, number)
        raise
