"""The separate engine: one seed, one model, the reference's training loop.

:func:`finetune_seed` ``(task, seed, config, device) -> record`` trains one seed (nothing written);
:func:`run_seed` adds the resume check and the atomic write of ``<output>/<dataset>/seed<k>.json``.
This is the loop every other engine is measured against: the fused engine
(:mod:`gnnpretrain.train.fused`) with its exact kernels is bit-equal to it.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable

import torch

from gnnpretrain.train.objectives import Objective, TargetScaler, get_objective
from gnnpretrain.train.run.config import FinetuneConfig
from gnnpretrain.train.run.data import build_model, check_split_has_classes, eval_batches, load_task, train_loader
from gnnpretrain.train.run.evaluate import amp_note, autocast, predict, scores_from_predictions
from gnnpretrain.train.run.paths import seed_path
from gnnpretrain.train.run.records import load_finished, make_record
from gnnpretrain.train.tasks import Task
from gnnpretrain.utils import atomic_write_json, resolve_device, seed_everything

__all__ = ["finetune_seed", "run_seed", "build_training", "train_epoch", "epoch_scores", "BATCH_PROGRESS_MIN"]


#: Training sets with at least this many batches get a progress bar within each epoch (HIV, bio).
BATCH_PROGRESS_MIN = 200


def train_epoch(model, loader, optimizer, device, objective: Objective | None = None,
                 scaler: TargetScaler | None = None, amp: bool = False, progress: str | None = None) -> float:
    """One epoch; ``progress`` (a description) shows a per-batch bar on large training sets."""
    objective = objective or get_objective("classification")
    model.train()
    total, n = 0.0, 0
    if progress is not None and len(loader) >= BATCH_PROGRESS_MIN:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc=progress, unit="batch", leave=False, dynamic_ncols=True, mininterval=1.0)
    for batch in loader:
        batch = batch.to(device)
        with autocast(device, amp):
            logits = model(batch)
        logits = logits.float()
        target = batch.y.reshape(logits.shape).float()
        if scaler is not None and objective.task_type == "regression":
            target = scaler.transform(target)
        loss = objective.loss(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * batch.num_graphs
        n += batch.num_graphs
    return total / max(n, 1)


def epoch_scores(objective: Objective, scaler: TargetScaler, task: Task, model, valid_loader, test_loader,
                  device, amp: bool = False) -> tuple[dict, list]:
    """One curve row's metrics: ``valid_score``/``test_score`` (+ ``*_auc`` or ``*_rmse/mae/r2``) and test subsets."""
    preds = {part: predict(model, loader, device, amp) for part, loader in (("valid", valid_loader), ("test", test_loader))}
    return scores_from_predictions(objective, scaler, task, preds)


def build_training(task: Task, config: FinetuneConfig, device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The model on ``device`` and its Adam over the parameters that train (with ``config.freeze`` the
    encoder has none: :func:`gnnpretrain.train.run.data.build_model` froze it). Seed the RNGs first."""
    model = build_model(task, config).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.Adam(trainable, lr=config.lr, weight_decay=config.decay)


def finetune_seed(task: Task, seed: int, config: FinetuneConfig, device: str | torch.device = "auto",
                  on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Fine-tune one seed on ``task`` and return its record (nothing is written).

    The seed controls model initialisation, dropout and the order of training batches; the split is
    fixed by ``task``. Valid and test ROC-AUC are measured after every epoch, so the record holds both
    the last-epoch and the best-valid-epoch test ROC-AUC.

    ``on_epoch(epoch, curve_row)`` is called after each epoch's scores (``curve_row`` holds
    ``valid_score``, ``test_score``, ...); an exception it raises (e.g. ``optuna.TrialPruned``) ends the
    run there and propagates.
    """
    from tqdm.auto import tqdm

    device = resolve_device(device)
    if config.num_threads:
        # process-wide; on a shared or small CPU one thread per process is often several times
        # faster than letting intra-op threads compete (measured: 9x on a loaded 2-core machine)
        torch.set_num_threads(config.num_threads)
    check_split_has_classes(task)
    if config.amp and amp_note(device):
        warnings.warn(f"--amp: {amp_note(device)}", stacklevel=2)
    objective = get_objective(task.task_type)
    scaler = (TargetScaler.fit(torch.cat([g.y.reshape(1, -1) for g in task.graphs("train")]))
              if task.task_type == "regression" else TargetScaler.identity(task.num_tasks))
    t0 = time.time()
    seed_everything(seed)
    model, optimizer = build_training(task, config, device)
    batches = train_loader(task, config.batch_size, seed, config.num_workers)
    valid_loader = eval_batches(task, "valid", config.eval_batch_size)
    test_loader = eval_batches(task, "test", config.eval_batch_size)

    curve: list[dict] = []
    bar = tqdm(range(1, config.epochs + 1), desc=f"{task.name} seed {seed}", leave=False,
               disable=not config.progress, dynamic_ncols=True)
    for epoch in bar:
        loss = train_epoch(model, batches, optimizer, device, objective, scaler, config.amp,
                            progress=f"  epoch {epoch}/{config.epochs}" if config.progress else None)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"{task.name} seed {seed}: training loss became {loss} at epoch {epoch}; lower --lr"
            )
        scores, test_per_task = epoch_scores(objective, scaler, task, model, valid_loader, test_loader, device,
                                              config.amp)
        curve.append({"epoch": epoch, "train_loss": loss, **scores, "time_s": round(time.time() - t0, 3),
                      "test_per_task": test_per_task})
        bar.set_postfix(loss=f"{loss:.4f}", valid=f"{scores['valid_score']:.4f}", test=f"{scores['test_score']:.4f}")
        if on_epoch is not None:
            on_epoch(epoch, curve[-1])
    bar.close()
    num_params = sum(p.numel() for p in model.parameters())
    return make_record(task, seed, config, curve, num_params, round(time.time() - t0, 3), device, objective, scaler)


def run_seed(config: FinetuneConfig, seed: int, task: Task | None = None, check: bool = True,
             on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Fine-tune one seed unless a matching finished file exists; write the record atomically.

    The returned record has ``"skipped": True`` when it was read back instead of computed (not saved).
    ``check=False`` skips the resume check (the caller has done it) and always computes.
    ``on_epoch``: as in :func:`finetune_seed` (not called for a seed read back).
    """
    if check:
        done = load_finished(config, seed)
        if done is not None:
            done["skipped"] = True
            return done
    if task is None:
        task = load_task(config)
    record = finetune_seed(task, seed, config, config.device, on_epoch=on_epoch)
    atomic_write_json(seed_path(config, seed), record)
    record["skipped"] = False
    return record
