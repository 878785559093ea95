"""Seed records: what a finished seed's file holds, reading it back (resume), and summaries over seeds.

Resume policy: a finished seed file whose recorded config matches the current one on every result key
(:data:`~gnnpretrain.train.run.config.RESULT_KEYS`) is reused without retraining. If it differs, the
default is a clear error naming the differing options (results of different experiments are never
averaged silently); ``overwrite=True`` (``--overwrite``) recomputes that seed with a warning instead.
Records written by the separate loop and by fused groups are the same (:func:`make_record`), so their
files are interchangeable.
"""

from __future__ import annotations

import json
import math
import warnings
import numpy as np
import torch

from gnnpretrain.hardware import hardware_info
from gnnpretrain.train.objectives import Objective, TargetScaler
from gnnpretrain.train.run.config import (
    RESULT_FORMAT,
    ConfigMismatchError,
    FinetuneConfig,
    config_mismatch,
    recorded_config,
)
from gnnpretrain.train.run.evaluate import best_epoch
from gnnpretrain.train.run.paths import output_dir, seed_path
from gnnpretrain.train.tasks import Task
from gnnpretrain.utils import atomic_write_json, runtime_info

__all__ = ["make_record", "load_finished", "summarize", "summary_line"]


def make_record(task: Task, seed: int, config: FinetuneConfig, curve: list[dict], num_params: int,
                wall_time_s: float, device: torch.device, objective: Objective, scaler: TargetScaler) -> dict:
    """The seed record written to ``seed<k>.json`` from a finished training curve (shared by separate
    runs and fused groups, so their files are interchangeable); ``curve`` rows as
    :func:`gnnpretrain.train.separate.finetune_seed` makes them."""
    best = best_epoch(curve, objective)
    last = curve[-1]

    def pick(r: dict) -> dict:
        # per-task ROC-AUC is nan for single-class tasks; null keeps the file strict JSON
        per_task = [None if math.isnan(v) else v for v in r["test_per_task"]]
        kept = {k: v for k, v in r.items() if k not in ("train_loss", "time_s", "test_per_task")}
        return {**kept, "test_per_task": per_task}

    return {
        "format": RESULT_FORMAT,
        "finished": True,
        "domain": task.domain,
        "dataset": task.name,
        "seed": int(seed),
        "metric": objective.metric,
        "task_type": task.task_type,
        "higher_is_better": objective.higher_is_better,
        **({"target_scaling": scaler.to_dict()} if task.task_type == "regression" else {}),
        **({"test_subsets": {k: int(v.sum()) for k, v in task.test_subsets.items()}} if task.test_subsets else {}),
        "config": recorded_config(config),
        "split": {"method": task.split, "split_seed": config.split_seed, **task.sizes},
        "num_tasks": task.num_tasks,
        "num_params": num_params,
        "task_info": task.info,
        "curve": [{k: v for k, v in r.items() if k != "test_per_task"} for r in curve],
        "last": pick(last),
        "best_valid": pick(best),
        "wall_time_s": wall_time_s,
        "compute_dtype": config.compute_dtype,
        "hardware": hardware_info(device),
        "device": str(device),
        "torch_version": torch.__version__,
        "runtime": runtime_info(device),
    }


def load_finished(config: FinetuneConfig, seed: int, current: dict | None = None) -> dict | None:
    """The finished record of ``seed`` if its file exists and matches ``config``; ``None`` if absent.

    Raises :class:`ConfigMismatchError` on a mismatch unless ``config.overwrite`` (then warns and
    returns ``None`` so the seed is recomputed). An unreadable or unfinished file is recomputed.
    """
    path = seed_path(config, seed)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        warnings.warn(f"{path} is not valid JSON; recomputing seed {seed}", stacklevel=2)
        return None
    if not record.get("finished"):
        return None
    current = current if current is not None else recorded_config(config)
    diffs = config_mismatch(record.get("config", {}), current)
    if not diffs:
        return record
    if config.overwrite:
        warnings.warn(
            f"{path} was computed with another configuration ({'; '.join(diffs)}); recomputing it (--overwrite)",
            stacklevel=2,
        )
        return None
    raise ConfigMismatchError(
        f"{path} holds a finished seed computed with a different configuration ("
        + "; ".join(diffs)
        + "); use another --output/--name for the new experiment, or pass --overwrite to recompute these seeds"
    )


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def summarize(config: FinetuneConfig, records: list[dict] | None = None) -> dict:
    """Mean ± std (population std, ``ddof=0``) over seeds for both report modes; writes ``summary.json``."""
    if records is None:
        records = []
        for seed in config.seeds:
            rec = load_finished(config, seed)
            if rec is None:
                raise FileNotFoundError(f"seed {seed} has no finished result in {output_dir(config)}")
            records.append(rec)
    if not records:
        raise ValueError("summarize: no seed records given")
    records = sorted(records, key=lambda r: r["seed"])
    metric = records[0].get("metric", "roc_auc")

    def score(rec: dict, mode: str, part: str = "test") -> float:
        r = rec[mode]
        return r[f"{part}_score"] if f"{part}_score" in r else r[f"{part}_auc"]  # older files: *_auc only

    scores = {
        part: {"best-valid": _stats([score(r, "best_valid", part) for r in records]),
               "last": _stats([score(r, "last", part) for r in records])}
        for part in ("test", "valid")
    }
    subsets = sorted({k[len("test_score_"):] for r in records for k in r["last"] if k.startswith("test_score_")})
    summary = {
        "format": RESULT_FORMAT,
        "domain": config.domain,
        "dataset": config.dataset,
        "metric": metric,
        "task_type": records[0].get("task_type", "classification"),
        "higher_is_better": records[0].get("higher_is_better", True),
        "report": config.report,
        "seeds": [r["seed"] for r in records],
        "config": recorded_config(config),
        "split": records[0].get("split"),
        "std": "population (ddof=0)",
        "test_score": scores["test"],
        "valid_score": scores["valid"],
        **({"test_auc": scores["test"], "valid_auc": scores["valid"]} if metric == "roc_auc" else {}),
        **({"test_subsets": {
            s: {"best-valid": _stats([r["best_valid"].get(f"test_score_{s}", math.nan) for r in records]),
                "last": _stats([r["last"].get(f"test_score_{s}", math.nan) for r in records])}
            for s in subsets}} if subsets else {}),
        "per_seed": [
            {"seed": r["seed"], "test_score_best_valid": score(r, "best_valid"), "best_valid_epoch": r["best_valid"]["epoch"],
             "test_score_last": score(r, "last"), "wall_time_s": r["wall_time_s"],
             **({"test_auc_best_valid": score(r, "best_valid"), "test_auc_last": score(r, "last")}
                if metric == "roc_auc" else {})}
            for r in records
        ],
        "wall_time_s_total": round(sum(r["wall_time_s"] for r in records), 3),
        # every distinct runtime (versions, threads, device) the seeds were computed under
        "runtimes": [json.loads(u) for u in dict.fromkeys(json.dumps(r.get("runtime"), sort_keys=True) for r in records)],
    }
    atomic_write_json(output_dir(config) / "summary.json", summary)
    return summary


def summary_line(summary: dict) -> str:
    """One human-readable line: the chosen report mode first, the other in brackets."""
    from gnnpretrain.train.tasks import dataset_display  # a CSV path as given, not chem//path

    mode = summary["report"]
    other = "last" if mode == "best-valid" else "best-valid"
    table = summary.get("test_score") or summary["test_auc"]
    a, b = table[mode], table[other]
    if summary.get("metric", "roc_auc") == "roc_auc":
        label, fmt = "ROC-AUC", (lambda v: f"{100 * v:.2f}")
    else:
        label, fmt = summary["metric"].upper(), (lambda v: f"{v:.4f}")
    subsets = "".join(
        f", {name} {fmt(t[mode]['mean'])} ± {fmt(t[mode]['std'])}" for name, t in summary.get("test_subsets", {}).items()
    )
    return (
        f"{dataset_display(summary['domain'], summary['dataset'])}: test {label} ({mode}) {fmt(a['mean'])} ± "
        f"{fmt(a['std'])} over {a['n']} seeds [{other}: {fmt(b['mean'])} ± {fmt(b['std'])}]{subsets}"
        f" | epochs {summary['config']['epochs']}, split {(summary.get('split') or {}).get('method', summary['config']['split'])}, "
        f"{summary['wall_time_s_total']:.0f} s"
    )
