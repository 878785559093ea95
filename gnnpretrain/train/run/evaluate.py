"""Scoring: predictions, the objective's metrics, and the best-epoch rule (shared by both engines).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gnnpretrain.metrics import NoValidTaskError, roc_auc_multitask
from gnnpretrain.train.objectives import Objective, TargetScaler, get_objective
from gnnpretrain.train.tasks import Task

__all__ = ["evaluate", "autocast", "amp_note", "predict", "score_predictions", "scores_from_predictions",
           "best_epoch"]


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device) -> tuple[float, list[float]]:
    """Mean ROC-AUC over tasks (and per task) of ``model`` on the graphs of ``loader``."""
    model.eval()
    ys, scores = [], []
    for batch in loader:
        batch = batch.to(device)
        logits = model(batch)
        ys.append(batch.y.reshape(logits.shape).float().cpu())
        scores.append(logits.float().cpu())
    return roc_auc_multitask(torch.cat(ys), torch.cat(scores))


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on ``device`` when ``amp`` (matmuls in bf16; callers keep loss/metrics in fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(amp))


def amp_note(device: torch.device) -> str | None:
    """Why bf16 would be slow on ``device`` (``None`` when the hardware has native bf16 matmuls)."""
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else "this GPU has no native bf16"
    cpu = getattr(torch, "cpu", None)
    has = getattr(cpu, "_is_avx512_bf16_supported", lambda: False)() or getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    return None if has else "this CPU has no AVX512-BF16/AMX: bf16 is emulated and usually slower than fp32"


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device, amp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, raw model outputs)`` over ``loader``, on the CPU (eval mode)."""
    model.eval()
    ys, outs = [], []
    for batch in loader:
        batch = batch.to(device)
        with autocast(device, amp):
            out = model(batch)
        ys.append(batch.y.reshape(out.shape).float().cpu())
        outs.append(out.float().cpu())
    return torch.cat(ys), torch.cat(outs)


def score_predictions(objective: Objective, scaler: TargetScaler, y: torch.Tensor, out: torch.Tensor) -> dict:
    """The objective's metrics for raw outputs ``out`` (regression outputs are un-standardised first)."""
    pred = scaler.inverse(out) if objective.task_type == "regression" else out
    return objective.score(y, pred)


def scores_from_predictions(objective: Objective, scaler: TargetScaler, task: Task,
                            preds: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[dict, list]:
    """One curve row's metrics from ``{"valid": (y, out), "test": (y, out)}`` (fused sweeps score here too)."""
    row: dict[str, Any] = {}
    for part in ("valid", "test"):
        y, out = preds[part]
        m = score_predictions(objective, scaler, y, out)
        row[f"{part}_score"] = m["score"]
        if objective.task_type == "classification":
            row[f"{part}_auc"] = m["roc_auc"]
        else:
            for k in ("rmse", "mae", "r2"):
                row[f"{part}_{k}"] = m[k]
        if part == "test":
            per_task = m["per_task"]
            for sub, mask in task.test_subsets.items():
                if bool(mask.any()):
                    try:
                        row[f"test_score_{sub}"] = score_predictions(objective, scaler, y[mask], out[mask])["score"]
                    except NoValidTaskError:
                        row[f"test_score_{sub}"] = math.nan
    return row, per_task


def best_epoch(curve: list[dict], objective: Objective | None = None) -> dict:
    """The epoch with the best valid score (highest ROC-AUC / lowest RMSE); the earliest on ties (as the
    reference's argmax)."""
    objective = objective or get_objective("classification")
    key = "valid_score" if "valid_score" in curve[0] else "valid_auc"
    return curve[objective.best_index([r[key] for r in curve])]
