"""What a downstream task optimises and how it is scored: one object per task type.

Fine-tuning (and anything else that trains heads on tasks, e.g. sweeps) asks :func:`get_objective`
for the task's :class:`Objective` instead of hard-coding ROC-AUC:

* ``"classification"`` — masked BCE with logits; metric ``roc_auc`` (mean over tasks with both
  classes), higher is better.
* ``"regression"`` — masked MSE on targets standardised with the *training split's* per-target mean
  and standard deviation (so the loss scale and learning rate do not depend on the units); predictions
  are mapped back to the original units before scoring; metric ``rmse`` (mean of per-target RMSEs),
  lower is better; MAE and R² are reported too.

``Objective.score(y, pred)`` returns ``{"score": headline, <metric>: headline, "per_task": [...], ...}``
with every extra metric the type has (``mae``, ``r2``), and ``Objective.best_index(values)`` picks the
best epoch with the right direction (the earliest on ties, as the reference's argmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from gnnpretrain.errors import UserError
from gnnpretrain.metrics import masked_bce_with_logits, masked_mse, regression_metrics, roc_auc_multitask

__all__ = ["Objective", "TargetScaler", "OBJECTIVES", "TASK_TYPES", "get_objective", "UnlearnableTargetError",
           "target_problems", "MIN_DISTINCT_REGRESSION_VALUES", "MAX_TARGET_MAGNITUDE"]

#: A regression column needs at least this many distinct values on the training split: one is a
#: constant (nothing to learn, yet an RMSE would be reported), two is a binary label in disguise.
MIN_DISTINCT_REGRESSION_VALUES = 3
#: Targets are stored and trained in float32, where squared errors of magnitudes above
#: sqrt(float32 max) ≈ 1.8e19 are infinite: the largest target magnitude accepted.
MAX_TARGET_MAGNITUDE = float(np.sqrt(np.finfo(np.float32).max))


@dataclass(frozen=True)
class Objective:
    task_type: str
    metric: str
    higher_is_better: bool
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    label: str  # for printed summaries ("ROC-AUC", "RMSE")

    def score(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> dict[str, object]:
        """Metrics of predictions (logits for classification, original units for regression)."""
        if self.task_type == "classification":
            mean, per_task = roc_auc_multitask(y_true, y_pred)
            return {"score": mean, "roc_auc": mean, "per_task": per_task}
        m = regression_metrics(y_true, y_pred)
        return {"score": m["rmse"], "rmse": m["rmse"], "mae": m["mae"], "r2": m["r2"], "per_task": m["per_task_rmse"]}

    def best_index(self, values: Sequence[float]) -> int:
        """Index of the best value (nan never wins; the earliest on ties)."""
        sign = 1.0 if self.higher_is_better else -1.0
        return max(range(len(values)), key=lambda i: (-math.inf if math.isnan(values[i]) else sign * values[i], -i))

    def format(self, value: float) -> str:
        return f"{100 * value:.2f}" if self.metric == "roc_auc" else f"{value:.4f}"


OBJECTIVES = {
    "classification": Objective("classification", "roc_auc", True, masked_bce_with_logits, "ROC-AUC"),
    "regression": Objective("regression", "rmse", False, masked_mse, "RMSE"),
}
TASK_TYPES = tuple(OBJECTIVES)


def get_objective(task_type: str) -> Objective:
    if task_type not in OBJECTIVES:
        raise ValueError(f"unknown task type {task_type!r}; expected one of {TASK_TYPES}")
    return OBJECTIVES[task_type]


@dataclass(frozen=True)
class TargetScaler:
    """Per-target standardisation fitted on the training split (identity for classification)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def identity(cls, num_tasks: int) -> "TargetScaler":
        return cls(torch.zeros(num_tasks), torch.ones(num_tasks))

    @classmethod
    def fit(cls, y: torch.Tensor) -> "TargetScaler":
        """Mean and population std of each column over its labelled entries; std 0 (or one value) → 1."""
        y = y.double()
        mask = ~torch.isnan(y)
        n = mask.sum(0).clamp(min=1)
        filled = torch.where(mask, y, torch.zeros_like(y))
        mean = filled.sum(0) / n
        var = (torch.where(mask, (y - mean) ** 2, torch.zeros_like(y))).sum(0) / n
        std = var.sqrt()
        std = torch.where((std > 0) & torch.isfinite(std), std, torch.ones_like(std))
        return cls(mean.float(), std.float())

    def transform(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean.to(y.device)) / self.std.to(y.device)

    def inverse(self, pred: torch.Tensor) -> torch.Tensor:
        return pred * self.std.to(pred.device) + self.mean.to(pred.device)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in np.asarray(self.mean)], "std": [float(v) for v in np.asarray(self.std)]}


class UnlearnableTargetError(UserError, ValueError):
    """A target column that training cannot learn from (constant, too few values, overflowing, one class)."""


def _g(v: float) -> str:
    return f"{v:.6g}"


def target_problems(labels: dict[str, torch.Tensor], task_type: str) -> list[tuple[int, str]]:
    """``[(column, what is wrong and what to do), ...]`` for the columns of ``labels`` (``{"train": [n, T],
    "valid": ..., "test": ...}``, NaN = missing) that training cannot learn from; ``[]`` when all can.

    Why before training: a target of 1e300 trains into a NaN loss whose message blames the learning
    rate, and a constant target trains and reports an RMSE as if something had been learned. The
    checks are the ones standardisation (:class:`TargetScaler`, fitted on the training split) and the
    float32 model need; see :func:`gnnpretrain.train.tasks.check_task_targets` for which ones refuse.
    """
    train = labels["train"].double()
    out: list[tuple[int, str]] = []
    for j in range(train.shape[1]):
        col = train[:, j]
        seen = col[~torch.isnan(col)]
        if seen.numel() == 0:
            out.append((j, "has no value on the training split; use another --split or leave the column out"))
            continue
        if task_type == "classification":
            classes = torch.unique(seen)
            if classes.numel() < 2:
                out.append((j, f"has a single class on the training split (all {seen.numel()} labels are "
                               f"{_g(float(classes[0]))}), so a classifier has nothing to learn; use another --split "
                               "(e.g. random) or leave the column out (--target-columns)"))
            continue
        every = torch.cat([labels[p][:, j].double() for p in ("train", "valid", "test") if p in labels])
        every = every[~torch.isnan(every)]
        if bool(torch.isinf(every).any()) or float(every.abs().max()) > MAX_TARGET_MAGNITUDE:
            out.append((j, f"holds magnitudes up to {_g(float(every.abs().max()))}, beyond ±{MAX_TARGET_MAGNITUDE:.2g} "
                           "(float32 training squares errors, which overflow there); rescale the column (e.g. take "
                           "log10 of it) before fine-tuning"))
            continue
        mean = float(seen.mean())
        std = float(seen.std(unbiased=False)) if seen.numel() > 1 else 0.0
        distinct = torch.unique(seen)
        if distinct.numel() == 1 or std == 0.0:
            out.append((j, f"is constant on the training split (all {seen.numel()} values are {_g(float(distinct[0]))}), "
                           "so there is nothing to learn and an RMSE would mean nothing; leave the column out "
                           "(--target-columns) or use a split on which it varies"))
            continue
        if distinct.numel() < MIN_DISTINCT_REGRESSION_VALUES:
            shown = ", ".join(_g(float(v)) for v in distinct)
            out.append((j, f"takes only {distinct.numel()} distinct values on the training split ({shown}): too few "
                           "to fit a regression; recode it as 0/1 and use --task classification, or leave it out"))
            continue
        z = (every - mean) / std
        if not (math.isfinite(mean) and math.isfinite(std)) or float(z.abs().max()) > MAX_TARGET_MAGNITUDE:
            out.append((j, f"overflows float32 once standardised (training mean {_g(mean)}, std {_g(std)}, values up "
                           f"to {_g(float(every.abs().max()))}); rescale the column (e.g. take log10 of it) first"))
    return out
