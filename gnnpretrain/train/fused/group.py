"""One fused group: G compatible members trained as one stacked computation (:func:`train_group`),
with its state file for resume and its deadline for time budgets."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from gnnpretrain.metrics import masked_bce_with_logits
from gnnpretrain.nn.stacked import FusedBatch, StackedGraphPred
from gnnpretrain.safeload import load_torch
from gnnpretrain.train.fused.store import TrainStore, index_loader
from gnnpretrain.train.objectives import TargetScaler, get_objective
from gnnpretrain.train.run.config import RESULT_KEYS, FinetuneConfig, recorded_config
from gnnpretrain.train.run.data import build_model, check_split_has_classes, eval_batches
from gnnpretrain.train.run.evaluate import scores_from_predictions
from gnnpretrain.train.run.paths import output_dir, seed_path
from gnnpretrain.train.run.records import make_record
from gnnpretrain.train.tasks import Task
from gnnpretrain.utils import atomic_torch_save, resolve_device, seed_everything

__all__ = ["train_group", "BudgetReached", "make_optimizer", "per_model_loss", "predict_group", "state_path",
           "CPU_FUSE_DEFAULT", "EVAL_NODE_BUDGET"]

log = logging.getLogger("gnnpretrain.train.fused")
Tensor = torch.Tensor

#: Default group size on CPU (see benchmarks/RESULTS.md: throughput per graph stops improving
#: beyond a few models on one core, while memory grows linearly).
CPU_FUSE_DEFAULT = 10
#: Node budget of one evaluation chunk (models x nodes of one eval batch). Why 8,192 on CPU: a
#: chunk's activations then stay in the last-level cache (8,192 x 300 fp32 is ~10 MB), which is one
#: model at a time for the usual 256-graph eval batch; at 65,536 ten models' copies fell out of
#: cache. Measured on BBBP valid + test, G = 10, one thread (AMD EPYC Zen 4, 2026-12-07):
#: 0.78 -> 0.64 CPU-s per model in fp32, 0.50 -> 0.31 in bf16, scores bit-equal
#: (benchmarks/RESULTS.md). On a GPU, larger chunks keep it busy.
EVAL_NODE_BUDGET = {"cpu": 1 << 13, "cuda": 1 << 21}

# ------------------------------------------------------------------------------------- training
def resolve_kernels(config: FinetuneConfig, device: torch.device) -> str:
    """The kernel set a group of ``config`` runs on ``device`` (see :data:`gnnpretrain.nn.stacked.KERNELS`).

    ``auto``: ``sparse`` on CPU (the fast path: sparse-matrix aggregation, bf16 products in
    fixed-shape blocks, fused Adam; equal to separate runs to float rounding), ``batched`` on
    CUDA. ``exact`` and ``sparse`` are CPU kernel sets: asked for on a GPU they are refused."""
    kernels = config.fused_kernels
    if kernels == "auto":
        return "batched" if device.type == "cuda" else "sparse"
    if device.type == "cuda" and kernels != "batched":
        raise ValueError(f"fused_kernels={kernels!r} is a CPU kernel set; on {device} use 'batched' or 'auto'")
    return kernels


def make_optimizer(stacked: StackedGraphPred, config: FinetuneConfig, kernels: str) -> torch.optim.Optimizer:
    """One Adam over the stacked tensors (element-wise, so it is G Adams): with the ``exact`` kernels
    torch's default Adam (bit-equal to a separate run's), otherwise torch's fused Adam kernel (3.4x
    faster on one CPU thread for 10 stacked GIN 5 x 300 models, 38.9 vs 130 ms; rounding-equal to the
    default, and a model's update does not depend on its position in the stacked tensors — tested
    in ``tests/train/test_sparse_kernels.py``)."""
    fused = None if kernels == "exact" else True
    return torch.optim.Adam(stacked.parameters(), lr=config.lr, weight_decay=config.decay, fused=fused)


def per_model_loss(logits: Tensor, y: Tensor) -> Tensor:
    """``masked_bce_with_logits`` of every model: ``[G, B, T]`` → ``[G]`` (mean over each model's
    labelled entries; unlabelled entries give no loss and no gradient).

    On CPU model by model, on each model's own ``[B, T]``: torch's vectorised loops round their
    body and their tail differently (``exp`` in the loss and its gradient), so one call over all G
    models would put model g's entries in lanes that depend on g whenever ``B*T`` is not a multiple
    of the vector width — an epoch's last, partial batch. That made a model's update depend on its
    position in the group (and differ from its separate run). On CUDA one call for all."""
    y = y.to(logits.device)
    if logits.device.type == "cpu":
        return torch.stack([masked_bce_with_logits(lg, yg) for lg, yg in zip(logits.unbind(0), y.unbind(0))])
    mask = ~torch.isnan(y)
    target = torch.where(mask, y, torch.zeros_like(y)).to(logits.dtype)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = torch.where(mask, loss, torch.zeros_like(loss))
    return loss.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1)


@torch.no_grad()
def predict_group(stacked: StackedGraphPred, batches: list, device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """``(y, outputs)`` of every model, as :func:`gnnpretrain.train.run.evaluate.predict`; each batch is collated once for all."""
    stacked.eval()
    G = stacked.num_models
    budget = EVAL_NODE_BUDGET.get(device.type, EVAL_NODE_BUDGET["cpu"])
    ys, scores = [], [[] for _ in range(G)]
    for batch in batches:
        batch = batch.to(device)
        chunk = max(1, budget // max(batch.num_nodes, 1))
        ys.append(batch.y.reshape(batch.num_graphs, -1).float().cpu())
        for start in range(0, G, chunk):
            sl = slice(start, min(G, start + chunk))
            logits = stacked(FusedBatch.replicate(batch, sl.stop - sl.start), models=sl)
            for k in range(sl.stop - sl.start):
                scores[start + k].append(logits[k].float().cpu())
    y = torch.cat(ys)
    return [(y, torch.cat(s)) for s in scores]


def _group_key(members: Sequence[tuple[FinetuneConfig, int]]) -> str:
    items = []
    for cfg, seed in members:
        rec = recorded_config(cfg)
        # "freeze" is never set in a group (fallback_reason) and left out, so that a group state saved
        # before the key existed still resumes
        items.append([{k: rec.get(k) for k in RESULT_KEYS if k != "freeze"}, int(seed), str(seed_path(cfg, seed))])
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:16]


def state_path(members: Sequence[tuple[FinetuneConfig, int]]) -> Path:
    """Where a group saves its mid-run state (beside its first member's seed file)."""
    cfg, _ = members[0]
    return output_dir(cfg) / f".sweep-{_group_key(members)}.pt"


class BudgetReached(RuntimeError):
    """A group stopped at its ``stop_at`` deadline after saving its state (it resumes from there)."""

    def __init__(self, state_file: Path, epoch: int, epochs: int) -> None:
        super().__init__(f"time budget reached after epoch {epoch}/{epochs}; state saved in {state_file}")
        self.state_file, self.epoch, self.epochs = state_file, epoch, epochs


def _seed_list(seeds: Sequence[int]) -> str:
    s = sorted(set(int(x) for x in seeds))
    if s and s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}-{s[-1]}"
    return ",".join(map(str, s))


def train_group(
    task: Task,
    members: Sequence[tuple[FinetuneConfig, int]],
    device: str | torch.device = "auto",
    on_step: Callable[[int, int], None] | None = None,
    checkpoint_interval_s: float = 300.0,
    max_steps: int | None = None,
    stop_at: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train one group of compatible members as one stacked computation; return their records.

    Nothing is written except the group state file (see the module docstring); ``on_step(epoch,
    step)`` is called after every optimizer step (tests use it to interrupt a run). ``max_steps``
    stops after that many steps of the first epoch without evaluating (used for equivalence tests
    and benchmarks; returns per-step losses ``{"losses": [G, steps]}`` instead of records).

    ``stop_at`` (a ``time.time()`` deadline): at the first epoch end past it the state is saved
    and :class:`BudgetReached` raised, so a run with a time budget ends cleanly and resumes
    later from that epoch. ``progress`` receives one line per epoch (a group can train for hours;
    a silent process cannot be told from a hung one).
    """
    device = resolve_device(device)
    cfg0 = members[0][0]
    G = len(members)
    if cfg0.num_threads:
        torch.set_num_threads(cfg0.num_threads)
    check_split_has_classes(task)
    objective = get_objective(task.task_type)
    scaler = TargetScaler.identity(task.num_tasks)  # classification only (regression runs separately)
    t0 = time.time()

    plain, rng_states = [], []
    for cfg, seed in members:
        seed_everything(seed)
        plain.append(build_model(task, cfg))
        rng_states.append(torch.get_rng_state())  # what a separate run's dropout draws from next
    num_params = sum(p.numel() for p in plain[0].parameters())
    # CPU: sparse (fast) or exact (bit-equal) per-model kernels; GPU: batched kernels
    kernels = resolve_kernels(cfg0, device)
    stacked = StackedGraphPred(plain, amp=cfg0.amp, kernels=kernels).to(device)
    del plain
    drop_gens = []
    for state in rng_states:
        gen = torch.Generator()
        gen.set_state(state)
        drop_gens.append(gen)
    stacked.dropout_generators = drop_gens
    optimizer = make_optimizer(stacked, cfg0, kernels)
    store = TrainStore(task.graphs("train"))
    loader_gens = [torch.Generator().manual_seed(int(seed)) for _, seed in members]
    valid_batches = eval_batches(task, "valid", cfg0.eval_batch_size)
    test_batches = eval_batches(task, "test", cfg0.eval_batch_size)

    curves: list[list[dict]] = [[] for _ in range(G)]
    start_epoch, elapsed_before = 1, 0.0
    spath = state_path(members) if max_steps is None else None
    if spath is not None and spath.is_file():
        try:
            state = load_torch(spath, map_location=device, what="fused-sweep state")
            if state.get("key") != _group_key(members):
                raise ValueError("state of another group")
            stacked.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optim"])
            for gen, s in zip(loader_gens, state["loader_gens"]):
                gen.set_state(s)
            for gen, s in zip(drop_gens, state["drop_gens"]):
                gen.set_state(s)
            curves = json.loads(state["curves"])
            start_epoch = int(state["epoch"]) + 1
            elapsed_before = float(state["elapsed"])
            log.info("resuming fused group of %d from epoch %d (%s)", G, start_epoch, spath)
        except Exception as err:  # a damaged/foreign state file costs time, never results
            log.warning("ignoring fused-sweep state %s (%s); starting the group from epoch 1", spath, err)
            curves, start_epoch, elapsed_before = [[] for _ in range(G)], 1, 0.0
    t0 -= elapsed_before
    last_save = time.time()
    t_run = time.time()
    label = f"{task.name}: group of {G} (seeds {_seed_list([s for _, s in members])})"
    step_losses: list[Tensor] = []

    for epoch in range(start_epoch, cfg0.epochs + 1):
        stacked.train()
        loaders = [index_loader(len(store), cfg0.batch_size, gen) for gen in loader_gens]
        iters = [iter(ld) for ld in loaders]
        totals = torch.zeros(G, dtype=torch.float64)
        seen = 0
        for step in range(len(loaders[0])):
            idx = torch.stack([next(it) for it in iters])
            fb = store.collate(idx, padded=kernels == "batched").to(device)
            losses = per_model_loss(stacked(fb), fb.y)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            detached = losses.detach().double().cpu()
            totals += detached * fb.num_graphs  # as a separate run: float(loss) * num_graphs, summed
            seen += fb.num_graphs
            if max_steps is not None:
                step_losses.append(detached)
                if len(step_losses) >= max_steps:
                    return [{"losses": torch.stack(step_losses, 1), "model": stacked}]
            if on_step is not None:
                on_step(epoch, step)
        epoch_loss = (totals / max(seen, 1)).tolist()
        bad = [members[g][1] for g in range(G) if not math.isfinite(epoch_loss[g])]
        if bad:
            raise FloatingPointError(f"{task.name} seed(s) {bad}: training loss became non-finite at epoch {epoch}; lower --lr")
        valid = predict_group(stacked, valid_batches, device)
        test = predict_group(stacked, test_batches, device)
        share = round((time.time() - t0) / G, 3)
        for g in range(G):
            scores, per_task = scores_from_predictions(objective, scaler, task, {"valid": valid[g], "test": test[g]})
            curves[g].append({"epoch": epoch, "train_loss": epoch_loss[g], **scores, "time_s": share,
                              "test_per_task": per_task})
        if progress is not None:
            per_epoch = (time.time() - t_run) / (epoch - start_epoch + 1)
            left = per_epoch * (cfg0.epochs - epoch)
            mean = lambda key: sum(c[-1][key] for c in curves) / G  # noqa: E731
            progress(f"{label}: epoch {epoch}/{cfg0.epochs}, train loss {sum(epoch_loss) / G:.4f}, "
                     f"valid {mean('valid_score'):.4f}, test {mean('test_score'):.4f} (means over the group); "
                     f"{per_epoch:.1f} s/epoch, ~{left / 60:.0f} min left")
        budget_out = stop_at is not None and time.time() >= stop_at and epoch < cfg0.epochs
        if spath is not None and epoch < cfg0.epochs and (budget_out or time.time() - last_save >= checkpoint_interval_s):
            atomic_torch_save({
                "key": _group_key(members), "epoch": epoch, "model": stacked.state_dict(),
                "optim": optimizer.state_dict(), "loader_gens": [g.get_state() for g in loader_gens],
                "drop_gens": [g.get_state() for g in drop_gens], "curves": json.dumps(curves),
                "elapsed": time.time() - t0,
            }, spath)
            last_save = time.time()
        if budget_out:
            raise BudgetReached(spath, epoch, cfg0.epochs)

    wall = time.time() - t0
    records = []
    for g, (cfg, seed) in enumerate(members):
        rec = make_record(task, seed, cfg, curves[g], num_params, round(wall / G, 3), device, objective, scaler)
        rec["fused"] = {"group_size": G, "group_wall_time_s": round(wall, 3), "kernels": kernels}
        records.append(rec)
    return records
