"""What a search leaves besides its study: ``trials.csv``, ``best.json`` and ``trials.png``.

``trials.csv``: one line per trial (number, state, value = the mean best-valid validation score or, for a
pruned trial, its last reported one, test score, epochs run, wall time, one column per parameter).
``best.json``: the best complete trial's configuration in the form ``scripts/finetune.py --config FILE``
takes back. ``trials.png``: the objective per trial with the best so far, and one panel per parameter
(matplotlib only).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from gnnpretrain.train.hpopt.space import Param, cli_options, trial_config
from gnnpretrain.train.hpopt.study import retry_of
from gnnpretrain.train.run.config import FinetuneConfig
from gnnpretrain.utils import atomic_write, atomic_write_json, atomic_write_text

__all__ = ["TRIAL_COLUMNS", "trial_rows", "best_trial", "write_results", "plot_trials", "trial_line"]

TRIAL_COLUMNS = ("number", "state", "value", "test_score", "epochs_run", "wall_time_s", "retry_of", "folder")


def _value(t) -> float | None:
    if t.value is not None:
        return float(t.value)
    if t.intermediate_values:  # a pruned trial: its last reported score
        return float(t.intermediate_values[max(t.intermediate_values)])
    return None


def trial_rows(study, space: dict[str, Param]) -> list[dict[str, Any]]:
    """One dict per trial, in trial order (the columns of ``trials.csv``)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        wall = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        rows.append({
            "number": t.number, "state": t.state.name, "value": _value(t),
            "test_score": t.user_attrs.get("test_score"), "epochs_run": t.user_attrs.get("epochs_run"),
            "wall_time_s": None if wall is None else round(wall, 2),
            "retry_of": retry_of(t), "folder": t.user_attrs.get("folder"),
            **{name: t.params.get(name) for name in space},
        })
    return rows


def best_trial(study):
    """The best complete trial, or ``None`` when none is complete yet."""
    from optuna.trial import TrialState

    return study.best_trial if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) else None


def trial_line(trial, best, done: int, total: int, metric: str) -> str:
    """One progress line for a finished trial: ``trial 3 (4/8): complete, valid roc_auc 0.7123, lr=... ; best: ...``."""
    params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    value = _value(trial)
    how = trial.state.name.lower()
    if trial.state.name == "PRUNED" and trial.user_attrs.get("diverged"):
        how += " (diverged)"
    elif trial.state.name == "PRUNED" and trial.user_attrs.get("epochs_run"):
        how += f" after epoch {trial.user_attrs['epochs_run']}"
    score = "no score" if value is None else f"valid {metric} {value:.4f}"
    tail = f"; best: trial {best.number}, {best.value:.4f}" if best is not None else ""
    return f"trial {trial.number} ({done}/{total}): {how}, {score}, {params}{tail}"


def write_results(study, space: dict[str, Param], base: FinetuneConfig, hp_dir: Path, metric: str,
                  plot: bool = True) -> dict | None:
    """Write ``trials.csv``, ``best.json`` (when a trial is complete) and ``trials.png``; returns the best
    configuration's options (``best.json``) or ``None``."""
    rows = trial_rows(study, space)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*TRIAL_COLUMNS, *space], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(hp_dir / "trials.csv", buf.getvalue())
    best = best_trial(study)
    options = None
    if best is not None:
        options = cli_options(trial_config(base, best.params, None, base.seeds))
        atomic_write_json(hp_dir / "best.json", options)
    if plot and rows:
        plot_trials(rows, space, metric, study.direction.name == "MAXIMIZE", hp_dir / "trials.png")
    return options


def plot_trials(rows: list[dict], space: dict[str, Param], metric: str, maximize: bool, path: Path) -> None:
    """The objective of every finished trial with the best so far, and one panel per parameter."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    done = [r for r in rows if r["value"] is not None and math.isfinite(r["value"]) and r["state"] in ("COMPLETE", "PRUNED")]
    n = 1 + len(space)
    cols = min(n, 4)
    fig = Figure(figsize=(4 * cols, 3.2 * math.ceil(n / cols)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(math.ceil(n / cols), cols, squeeze=False).ravel()
    style = {"COMPLETE": dict(marker="o", color="tab:blue", label="complete"),
             "PRUNED": dict(marker="x", color="tab:gray", label="pruned (last score)")}
    ax = axes[0]
    for state, kw in style.items():
        pts = [r for r in done if r["state"] == state]
        if pts:
            ax.scatter([r["number"] for r in pts], [r["value"] for r in pts], **kw)
    complete = [r for r in done if r["state"] == "COMPLETE"]
    if complete:
        xs, ys, best = [], [], None
        for r in complete:
            best = r["value"] if best is None else (max if maximize else min)(best, r["value"])
            xs.append(r["number"])
            ys.append(best)
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial", ylabel=f"valid {metric}", title="objective per trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize="small")
    for ax, (name, p) in zip(axes[1:], space.items()):
        for state, kw in style.items():
            pts = [r for r in done if r["state"] == state]
            if not pts:
                continue
            if p.kind == "choice":
                xs = [list(p.choices).index(r[name]) if r[name] in p.choices else -1 for r in pts]
            else:
                xs = [r[name] for r in pts]
            ax.scatter(xs, [r["value"] for r in pts], **{k: v for k, v in kw.items() if k != "label"})
        if p.kind == "choice":
            ax.set_xticks(range(len(p.choices)), [str(c) for c in p.choices])
        else:  # the searched range
            ax.set_xscale("log" if p.kind == "log-uniform" else "linear")
            ax.set_xlim(p.low, p.high)
        ax.set(xlabel=name, ylabel=f"valid {metric}")
    for ax in axes[n:]:
        ax.set_visible(False)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
