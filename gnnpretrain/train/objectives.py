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

from gnnpretrain.metrics import masked_bce_with_logits, masked_mse, regression_metrics, roc_auc_multitask

__all__ = ["Objective", "TargetScaler", "OBJECTIVES", "TASK_TYPES", "get_objective"]


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
