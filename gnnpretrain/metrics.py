"""Evaluation metrics and the masked multi-task loss used for fine-tuning.

Labels follow OGB's convention (see ``docs/INTERFACES.md``): ``0.``/``1.`` for the two classes and
``nan`` for a missing label. The paper's metric (reference notes, "Fine-tuning protocol") is ROC-AUC
per task over the entries that carry a label, averaged without weights over the tasks that have both
classes present in the split being evaluated. Tasks with a single class are skipped rather than
counted as 0.5 because ROC-AUC is undefined for them; this is also what ``ogb``'s ``Evaluator`` does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

__all__ = ["roc_auc_multitask", "masked_bce_with_logits", "NoValidTaskError", "masked_mse", "regression_metrics"]


class NoValidTaskError(ValueError):
    """Raised when no task has both classes among its labelled entries (ROC-AUC undefined)."""


def _to_numpy(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a [num_samples, num_tasks] array, got shape {tuple(arr.shape)}")
    return arr


def roc_auc_multitask(y_true, y_score) -> tuple[float, list[float]]:
    """Mean ROC-AUC over tasks, ignoring missing labels (``nan``) and single-class tasks.

    Args:
        y_true: ``[B, T]`` (or ``[B]`` for one task) with values 0, 1 or nan (missing).
        y_score: ``[B, T]`` scores (logits or probabilities; ROC-AUC only uses their order).

    Returns:
        ``(mean, per_task)`` where ``per_task[t]`` is the task's ROC-AUC, or ``nan`` when task ``t``
        does not have both classes among its labelled entries (such tasks do not enter the mean).

    Raises:
        ValueError: on shape mismatch, labels other than 0/1/nan, or non-finite scores at labelled
            entries. :class:`NoValidTaskError` (a ``ValueError``) when no task qualifies, e.g. an
            empty split or a split whose labels are all of one class.
    """
    yt = _to_numpy(y_true, "y_true")
    ys = _to_numpy(y_score, "y_score")
    if yt.shape != ys.shape:
        raise ValueError(
            f"y_true and y_score must have the same shape, got {tuple(yt.shape)} and {tuple(ys.shape)}"
        )
    labelled = ~np.isnan(yt)
    bad = labelled & (yt != 0) & (yt != 1)
    if bad.any():
        found = np.unique(yt[bad])[:5].tolist()
        raise ValueError(
            f"y_true must hold 0, 1 or nan (missing), found {found}; convert ±1 labels with (y + 1) / 2 "
            "and 0 'missing' markers to nan first"
        )
    if not np.isfinite(ys[labelled]).all():
        raise ValueError("y_score has nan/inf at labelled entries: the model diverged or the scores are corrupt")
    per_task: list[float] = []
    for t in range(yt.shape[1]):
        m = labelled[:, t]
        lab = yt[m, t]
        n_pos = int((lab == 1).sum())
        if n_pos == 0 or n_pos == lab.size:
            per_task.append(math.nan)
            continue
        per_task.append(float(roc_auc_score(lab, ys[m, t])))
    valid = [v for v in per_task if not math.isnan(v)]
    if not valid:
        raise NoValidTaskError(
            f"ROC-AUC is undefined: none of the {yt.shape[1]} task(s) has both classes among its "
            f"{int(labelled.sum())} labelled entries (over {yt.shape[0]} samples). The split is empty or "
            "single-class; use a larger split or another split method."
        )
    return float(np.mean(valid)), per_task


def masked_bce_with_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits averaged over the labelled entries only.

    ``nan`` entries of ``y`` (missing labels) contribute neither to the loss nor to its gradient, and
    the mean is taken over the labelled entries (as the reference: sum of the masked loss matrix
    divided by the number of labelled entries). A batch with no label at all gives a zero loss that
    still carries a graph back to ``logits`` (so ``backward()`` works and changes nothing).
    """
    if logits.shape != y.shape:
        y = y.view(logits.shape)
    mask = ~torch.isnan(y)
    target = torch.where(mask, y, torch.zeros_like(y)).to(logits.dtype)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = torch.where(mask, loss, torch.zeros_like(loss))
    return loss.sum() / mask.sum().clamp(min=1)


def masked_mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the labelled (non-``nan``) entries only; the regression twin of
    :func:`masked_bce_with_logits` (a batch without labels gives a zero loss that still backpropagates)."""
    if pred.shape != y.shape:
        y = y.view(pred.shape)
    mask = ~torch.isnan(y)
    target = torch.where(mask, y, torch.zeros_like(y)).to(pred.dtype)
    sq = torch.where(mask, (pred - target) ** 2, torch.zeros_like(pred))
    return sq.sum() / mask.sum().clamp(min=1)


def regression_metrics(y_true, y_pred) -> dict[str, object]:
    """RMSE, MAE and R² (scikit-learn) per target over its labelled entries, and their unweighted means.

    Returns ``{"rmse", "mae", "r2", "per_task_rmse", "per_task_mae", "per_task_r2"}``. The headline
    ``rmse`` of several targets is the mean of the per-target RMSEs (each target in its own units, like
    the ROC-AUC mean over tasks); targets without labelled entries are ``nan`` and skipped in the means.
    R² needs two labelled entries (else ``nan``).
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    yt = _to_numpy(y_true, "y_true")
    yp = _to_numpy(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true {yt.shape} and y_pred {yp.shape} differ in shape")
    rmse, mae, r2 = [], [], []
    for t in range(yt.shape[1]):
        m = ~np.isnan(yt[:, t])
        if not m.any():
            rmse.append(math.nan), mae.append(math.nan), r2.append(math.nan)
            continue
        rmse.append(float(math.sqrt(mean_squared_error(yt[m, t], yp[m, t]))))
        mae.append(float(mean_absolute_error(yt[m, t], yp[m, t])))
        r2.append(float(r2_score(yt[m, t], yp[m, t])) if m.sum() >= 2 else math.nan)
    if all(math.isnan(v) for v in rmse):
        raise NoValidTaskError("no target has a labelled entry in this split, so RMSE is undefined")

    def mean(v: list[float]) -> float:
        vals = [x for x in v if not math.isnan(x)]
        return float(np.mean(vals)) if vals else math.nan

    return {"rmse": mean(rmse), "mae": mean(mae), "r2": mean(r2),
            "per_task_rmse": rmse, "per_task_mae": mae, "per_task_r2": r2}
