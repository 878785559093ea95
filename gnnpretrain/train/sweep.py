"""Fused fine-tuning sweeps: G fine-tunes of one architecture on one data set as one computation.

The protocol's compute is fine-tuning (10 seeds x every checkpoint x every data set), and those runs
differ only in seed and starting checkpoint. :func:`run_members` trains any mix of ``(config, seed)``
pairs that share the architecture and every result-changing option except the checkpoint as groups
of :class:`~gnnpretrain.nn.stacked.StackedGraphPred` (parameters stacked on a model axis, message
passing on the disjoint union of their batches, one Adam over the stacked tensors — Adam is
element-wise, so that *is* G Adams with the same lr / eps / weight decay), in this process or spread
over worker processes (``jobs``: CPU processes of one thread, or one process per GPU).

Three kernel sets (``FinetuneConfig.fused_kernels``, :func:`resolve_kernels`):

* ``sparse`` (CPU default): each layer's neighbourhood sum as one sparse-matrix product, per-model
  dense layers writing into one output (bf16 under ``amp``, in fixed-height blocks so oneDNN's
  compiled kernels are reused), dropout masks from raw random bits, torch's fused Adam. Equal to separate runs to float rounding step by step (``tests/train/test_sparse_kernels.py``)
  and in distribution over whole runs (``benchmarks/validate_fused.py``); the fast path
  (``benchmarks/RESULTS.md``).
* ``exact`` (CPU): torch's own kernels model by model, bit-equal to separate runs — the reference
  for the equivalence tests.
* ``batched`` (GPU default): padded layout, one batched matmul per layer, masked BatchNorm.

A model's training never depends on the group it is in or its position there (tested bitwise for
``sparse`` and ``exact``), so a seed gives the same result in a group of 2 or of 40, in one process
or in a worker — at the same torch thread count (another count splits some sums differently).

With the ``exact`` kernels each model computes what its separate run
(:func:`gnnpretrain.train.finetune.finetune_seed`) computes:

* initialisation: ``seed_everything(seed)`` then ``build_model`` — the G plain models are built
  exactly as separate runs build them, then stacked;
* batch order: its own ``torch.Generator().manual_seed(seed)`` driving the same ``DataLoader``
  sampler a separate run uses (only the graph *indices* are drawn that way; the G batches are then
  collated together from flat tensors of the training split);
* dropout: on CPU its own generator, continuing the global RNG state a separate run has after
  building its model, so the masks are bit-identical; on CUDA independent per-model masks from the
  device RNG (statistically, not bitwise, the separate run's);
* evaluation: every valid/test batch is collated once and scored by all models (in chunks of models
  that bound memory), with the same metric function as :func:`~gnnpretrain.train.finetune.evaluate`.

Tested equal to separate runs (``tests/train/test_sweep.py``, exact kernels): training losses of the
first 20 steps bit-equal (the issue asks 1e-5 relative) for GIN and GAT (and GCN/GraphSAGE ad hoc),
from scratch and from checkpoints, dropout 0 and 0.5; whole records of a group of 10 over two epochs
equal. (Groups of >= 9 used to drift at an epoch's last, partial batch: the loss was one call over all
models, and torch's vectorised ``exp`` rounds its loop body and tail differently, so a model's entries
fell in position-dependent lanes. The loss is now taken model by model.) Why the sparse kernels are
only rounding-equal over many steps: Adam's first steps move every parameter by about ``lr`` whatever
its gradient's size, so parameters whose true gradient is ~0 (a bias before a BatchNorm, a unit that
is almost never active) take steps decided by rounding noise; 1e-7 differences at step 0 reach 1e-3 in
the loss within a few steps — as a separate run on another thread count would.

Records, resume and mismatch rules are those of separate runs: each seed gets the same
``seed<k>.json`` (plus bookkeeping ``"fused": {"group_size": G, ...}``), finished seeds are skipped,
a finished seed of another configuration is a :class:`~gnnpretrain.train.finetune.ConfigMismatchError`.
A group also checkpoints its whole state (stacked weights, Adam, BatchNorm statistics, generator
states, curves so far) after an epoch at most every ``checkpoint_interval_s`` seconds into
``<output>/<dataset>/.sweep-<key>.pt``, so a killed sweep continues from its last saved epoch with
the same results; the file is deleted once the group's seed files are written.

Anything the stacked model does not cover (another input encoder, attention/set2set pooling,
centre pooling, a metric other than ROC-AUC) runs as separate runs with a logged note.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from gnnpretrain.metrics import masked_bce_with_logits
from gnnpretrain.nn.stacked import FusedBatch, StackedGraphPred, unsupported_reason
from gnnpretrain.safeload import load_torch
from gnnpretrain.train.finetune import (
    RESULT_KEYS,
    FinetuneConfig,
    _check_split_has_classes,
    _eval_batches,
    _recorded_config,
    build_model,
    load_finished,
    load_task,
    make_record,
    output_dir,
    run_seed,
    scores_from_predictions,
    seed_path,
)
from gnnpretrain.train.objectives import TargetScaler, get_objective
from gnnpretrain.train.tasks import Task
from gnnpretrain.utils import atomic_torch_save, atomic_write_json, resolve_device, seed_everything

__all__ = ["run_members", "train_group", "BudgetReached", "TrainStore", "fusion_key", "fallback_reason", "auto_group_size", "CPU_FUSE_DEFAULT",
           "resolve_kernels"]

log = logging.getLogger(__name__)
Tensor = torch.Tensor

#: Default group size on CPU (see benchmarks/RESULTS.md: throughput per graph stops improving
#: beyond a few models on one core, while memory grows linearly).
CPU_FUSE_DEFAULT = 10
#: Node budget of one evaluation chunk (models x nodes of one eval batch).
EVAL_NODE_BUDGET = {"cpu": 1 << 16, "cuda": 1 << 21}

#: Result keys that may differ inside one fused group (the starting checkpoint).
_PER_MEMBER_KEYS = ("input_model_sha256",)


# ------------------------------------------------------------------------------------ collation
class TrainStore:
    """The training split as flat tensors, so G batches are gathered into one :class:`FusedBatch`
    with a few index operations instead of G ``Batch.from_data_list`` calls."""

    def __init__(self, graphs: Sequence) -> None:
        self.x = torch.cat([g.x for g in graphs])
        self.edge_index = torch.cat([g.edge_index for g in graphs], dim=1)
        self.edge_attr = torch.cat([g.edge_attr for g in graphs])
        self.num_nodes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
        self.num_edges = torch.tensor([g.edge_index.size(1) for g in graphs], dtype=torch.long)
        self.node_ptr = torch.cat([torch.zeros(1, dtype=torch.long), self.num_nodes.cumsum(0)])
        self.edge_ptr = torch.cat([torch.zeros(1, dtype=torch.long), self.num_edges.cumsum(0)])
        self.y = torch.cat([g.y.reshape(1, -1) for g in graphs]).float()

    def __len__(self) -> int:
        return int(self.num_nodes.numel())

    @staticmethod
    def _ranges(starts: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """Concatenated ``arange(s, s + c)`` for each pair, and the position inside each range."""
        total = int(counts.sum())
        seg_start = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        within = torch.arange(total) - seg_start
        return torch.repeat_interleave(starts, counts) + within, within

    def collate(self, idx: "Tensor", padded: bool = False) -> FusedBatch:
        """``idx [G, B]`` graph indices (model g's batch in row g, in its sampled order).

        Unpadded (the CPU layout): model after model, like one PyG batch of all G*B graphs.
        ``padded=True`` (the GPU layout): model g's nodes in rows ``g*Nmax ...``, for batched matmuls.
        """
        G, B = idx.shape
        flat = idx.reshape(-1)
        nc, ec = self.num_nodes[flat], self.num_edges[flat]
        counts = nc.view(G, B).sum(1)
        nmax = int(counts.max())
        src, within = self._ranges(self.node_ptr[flat], nc)
        if padded:
            local_off = nc.view(G, B).cumsum(1) - nc.view(G, B)
            goff = (torch.arange(G).view(G, 1) * nmax + local_off).reshape(-1)  # first node of each graph
            dst = torch.repeat_interleave(goff, nc) + within
            x = torch.zeros(G * nmax, self.x.size(1), dtype=self.x.dtype)
            x[dst] = self.x[src]
            graph_index = torch.full((G * nmax,), G * B, dtype=torch.long)
            graph_index[dst] = torch.repeat_interleave(torch.arange(G * B), nc)
        else:
            goff = nc.cumsum(0) - nc
            x = self.x[src]
            graph_index = torch.repeat_interleave(torch.arange(G * B), nc)
        esrc, _ = self._ranges(self.edge_ptr[flat], ec)
        edge_index = self.edge_index[:, esrc] + torch.repeat_interleave(goff, ec)
        edge_model = torch.repeat_interleave(torch.arange(G), ec.view(G, B).sum(1))
        return FusedBatch(
            x=x, edge_index=edge_index, edge_attr=self.edge_attr[esrc], edge_model=edge_model, counts=counts,
            graph_index=graph_index, num_models=G, nmax=nmax, num_graphs=B, y=self.y[flat].view(G, B, -1),
            padded=padded,
        )


def _index_loader(n: int, batch_size: int, generator: torch.Generator):
    """Batches of training-graph *indices* drawn exactly as ``finetune._train_loader`` draws its
    graphs: the same ``DataLoader`` sampler and per-epoch generator use, over ``range(n)``."""
    from torch.utils.data import DataLoader

    return DataLoader(range(n), batch_size=batch_size, shuffle=True, generator=generator)


# ------------------------------------------------------------------------------------- grouping
def fusion_key(config: FinetuneConfig) -> tuple:
    """Members with equal keys can share one stacked computation (everything that changes results
    except the starting checkpoint, plus where the data comes from)."""
    rec = config.to_dict()
    keys = [k for k in RESULT_KEYS if k not in _PER_MEMBER_KEYS]
    return tuple((k, json.dumps(rec.get(k), sort_keys=True)) for k in keys) + (
        ("data_root", str(config.data_root)), ("cache", str(config.cache)), ("device", str(config.device)),
        ("fused_kernels", str(config.fused_kernels)),
    )


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


def fallback_reason(task: Task, config: FinetuneConfig) -> str | None:
    """Why ``config`` on ``task`` cannot run fused (``None`` if it can)."""
    if getattr(task, "task_type", "classification") != "classification":
        return f"{task.task_type} task (fused sweeps train the classification loss)"
    if task.model_kwargs.get("center_pool"):
        return "centre-node pooling"
    if config.num_workers:
        return None  # batches are gathered in-process; workers are simply not needed
    seed_everything(0)
    return unsupported_reason(build_model(task, FinetuneConfig(**{**config.to_dict(), "input_model_file": None})))


def auto_group_size(task: Task, config: FinetuneConfig, n: int, device: torch.device, fuse_max: int | None) -> int:
    """How many models one group holds.

    CPU: :data:`CPU_FUSE_DEFAULT` (throughput per graph stops improving beyond it on one core, see
    benchmarks/RESULTS.md). CUDA: measured — the peak memory of one training step of 1 and of 2
    stacked models gives the per-model cost, and the group fills 80% of the free memory.
    ``fuse_max`` caps either.
    """
    cap = n if fuse_max is None else max(1, min(n, int(fuse_max)))
    if device.type != "cuda":
        return cap if fuse_max is not None else min(cap, CPU_FUSE_DEFAULT)
    peaks = []
    store = TrainStore(task.graphs("train"))
    for g in (1, 2):
        seed_everything(0)
        models = [build_model(task, FinetuneConfig(**{**config.to_dict(), "input_model_file": None})) for _ in range(g)]
        stacked = StackedGraphPred(models, amp=config.amp, kernels="batched").to(device)
        stacked.train()
        gen = torch.Generator().manual_seed(0)
        idx = next(iter(_index_loader(len(store), config.batch_size, gen)))
        fb = store.collate(idx.unsqueeze(0).expand(g, -1), padded=True).to(device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _per_model_loss(stacked(fb), fb.y).sum().backward()
        torch.cuda.synchronize(device)
        # weights + grads + 2 Adam moments are not all in the step's peak: add them explicitly
        params = sum(p.numel() * p.element_size() for p in stacked.parameters())
        peaks.append(torch.cuda.max_memory_allocated(device) - base + 3 * params)
        del stacked, models, fb
        torch.cuda.empty_cache()
    per_model = max(peaks[1] - peaks[0], 1)
    fixed = max(peaks[0] - per_model, 0)
    free, _ = torch.cuda.mem_get_info(device)
    # batches vary in size: leave headroom (x1.5) for the largest ones
    fit = int((0.8 * free - fixed) / (1.5 * per_model))
    return max(1, min(cap, fit))


# ------------------------------------------------------------------------------------- training
def make_optimizer(stacked: StackedGraphPred, config: FinetuneConfig, kernels: str) -> torch.optim.Optimizer:
    """One Adam over the stacked tensors (element-wise, so it is G Adams): with the ``exact`` kernels
    torch's default Adam (bit-equal to a separate run's), otherwise torch's fused Adam kernel (3.4x
    faster on one CPU thread for 10 stacked GIN 5 x 300 models, 38.9 vs 130 ms; rounding-equal to the
    default, and a model's update does not depend on its position in the stacked tensors — tested
    in ``tests/train/test_sparse_kernels.py``)."""
    fused = None if kernels == "exact" else True
    return torch.optim.Adam(stacked.parameters(), lr=config.lr, weight_decay=config.decay, fused=fused)


def _per_model_loss(logits: Tensor, y: Tensor) -> Tensor:
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
def _predict_group(stacked: StackedGraphPred, batches: list, device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """``(y, outputs)`` of every model, as ``finetune.predict``; each batch is collated once for all."""
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
        rec = _recorded_config(cfg)
        items.append([{k: rec.get(k) for k in RESULT_KEYS}, int(seed), str(seed_path(cfg, seed))])
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
    _check_split_has_classes(task)
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
    valid_batches = _eval_batches(task, "valid", cfg0.eval_batch_size)
    test_batches = _eval_batches(task, "test", cfg0.eval_batch_size)

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
        loaders = [_index_loader(len(store), cfg0.batch_size, gen) for gen in loader_gens]
        iters = [iter(ld) for ld in loaders]
        totals = torch.zeros(G, dtype=torch.float64)
        seen = 0
        for step in range(len(loaders[0])):
            idx = torch.stack([next(it) for it in iters])
            fb = store.collate(idx, padded=kernels == "batched").to(device)
            losses = _per_model_loss(stacked(fb), fb.y)
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
        valid = _predict_group(stacked, valid_batches, device)
        test = _predict_group(stacked, test_batches, device)
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


def _on_cuda(config: FinetuneConfig) -> bool:
    device = str(config.device)
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def _worker_count(config: FinetuneConfig, jobs: int | None, n: int) -> int:
    """Worker processes for ``n`` members: ``jobs`` (capped by the GPUs on CUDA); ``None``: every
    visible GPU on CUDA (unless one device is named), this process alone on CPU."""
    device, on_cuda = str(config.device), _on_cuda(config)
    if jobs is None:
        jobs = torch.cuda.device_count() if on_cuda and device in ("cuda", "auto") else 1
    elif on_cuda and jobs > 1 and device in ("cuda", "auto"):
        jobs = min(jobs, torch.cuda.device_count())
    return max(1, min(int(jobs), n))


def _shares(groups: dict[tuple, list[int]], members: Sequence[tuple[FinetuneConfig, int]], workers: int,
            fuse_max: int | None) -> list[list[int]]:
    """Work items for ``workers`` processes: each fusion group cut into pieces no larger than a
    group (CPU: ``fuse_max`` or :data:`CPU_FUSE_DEFAULT`), and into at least ``workers`` pieces so
    no worker idles while another trains a big group; largest first, so the last ones are short."""
    items = []
    for idxs in groups.values():
        cfg = members[idxs[0]][0]
        cap = fuse_max if fuse_max is not None else cfg.fuse_max
        if cap is None and not _on_cuda(cfg):
            cap = CPU_FUSE_DEFAULT
        size = math.ceil(len(idxs) / workers)
        if cap is not None:
            size = min(size, int(cap))
        items += [idxs[k:k + size] for k in range(0, len(idxs), max(size, 1))]
    return sorted(items, key=len, reverse=True)


# Worker processes: the parent's tasks (fork) and this worker's device (CUDA: one per process).
_WORKER_TASKS: dict[tuple, Task] = {}
_WORKER_DEVICE: str | None = None


def _task_key(cfg: FinetuneConfig) -> tuple:
    return (cfg.domain, cfg.dataset, cfg.split, cfg.split_seed, cfg.featurizer, cfg.data_root, cfg.cache)


def _worker_init(threads: int, devices, parent_pid: int) -> None:
    global _WORKER_DEVICE
    from gnnpretrain.runtime import ignore_interrupts_in_worker
    from gnnpretrain.train.compare.run import _die_with_parent

    ignore_interrupts_in_worker()  # Ctrl-C: the parent stops the pool and prints one line
    _die_with_parent(parent_pid)
    torch.set_num_threads(threads)
    if devices is not None:
        _WORKER_DEVICE = devices.get()


def _worker_item(args: tuple[int, list[tuple[FinetuneConfig, int]]]) -> tuple[int, list[dict]]:
    import dataclasses

    k, item = args
    if _WORKER_DEVICE is not None:
        item = [(dataclasses.replace(cfg, device=_WORKER_DEVICE), seed) for cfg, seed in item]
    task = _WORKER_TASKS.get(_task_key(item[0][0]))
    return k, run_members(item, task=task, jobs=1)


def _run_parallel(members: list[tuple[FinetuneConfig, int]], groups: dict[tuple, list[int]], workers: int,
                  fuse_max: int | None, task: Task | None, note: Callable[[str], None],
                  on_record: Callable[[int, dict], None] | None, results: dict[int, dict]) -> None:
    """Train the groups in ``workers`` processes; seed files are written by the workers (atomic),
    ``on_record`` runs here as each work item comes back."""
    import dataclasses
    import multiprocessing as mp
    import os

    global _WORKER_TASKS
    cfg0 = members[next(iter(groups.values()))[0]][0]
    on_cuda = _on_cuda(cfg0)
    items = _shares(groups, members, workers, fuse_max)
    if fuse_max is not None:
        members = [(dataclasses.replace(cfg, fuse_max=fuse_max), seed) for cfg, seed in members]
    note(f"fused fine-tuning: {len(items)} group(s) over {workers} "
         f"{'GPU processes (one per device)' if on_cuda else 'processes (one thread each)'}")
    devices = None
    if on_cuda:
        # CUDA cannot be used in a forked child of a process that touched it: fresh processes, each
        # loading its tasks from the cache, and each taking one device
        ctx = mp.get_context("spawn")
        devices = ctx.Queue()
        for k in range(workers):
            devices.put(f"cuda:{k}")
    else:
        try:
            ctx = mp.get_context("fork")  # workers inherit the loaded tasks
        except ValueError:
            ctx = mp.get_context("spawn")
        tasks = {}
        for idxs in groups.values():
            key = _task_key(members[idxs[0]][0])
            if key not in tasks:
                tasks[key] = task if task is not None else load_task(members[idxs[0]][0])
        _WORKER_TASKS = tasks
    threads = 1 if not on_cuda else (cfg0.num_threads or 1)
    try:
        with ctx.Pool(workers, initializer=_worker_init, initargs=(threads, devices, os.getpid())) as pool:
            payload = [(k, [members[i] for i in item]) for k, item in enumerate(items)]
            for k, records in pool.imap_unordered(_worker_item, payload):
                for i, rec in zip(items[k], records):
                    results[i] = rec
                    if on_record is not None:
                        on_record(i, rec)
    finally:
        _WORKER_TASKS = {}


def run_members(
    members: Sequence[tuple[FinetuneConfig, int]],
    fuse_max: int | None = None,
    task: Task | None = None,
    on_step: Callable[[int, int], None] | None = None,
    checkpoint_interval_s: float = 300.0,
    note: Callable[[str], None] | None = None,
    on_record: Callable[[int, dict], None] | None = None,
    jobs: int | None = None,
    stop_at: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Run (or resume) every ``(config, seed)`` member, fused where possible; records in member order.

    ``stop_at`` / ``progress``: as :func:`train_group` (in-process groups only); a group that
    reaches the deadline raises :class:`BudgetReached` after saving its state, and the groups
    already finished keep their seed files and records.

    ``jobs`` > 1 spreads the groups over that many worker processes (:func:`_run_parallel`): on CPU
    one torch thread each, on CUDA one process per visible GPU (``jobs=None`` on CUDA: all of
    them; on CPU: 1, this process).

    Every member's finished file is checked first (a configuration mismatch fails before any
    training, as :func:`~gnnpretrain.train.finetune.run_finetune`). Members are grouped by
    :func:`fusion_key`; each group is split into chunks of at most ``fuse_max`` (default:
    :func:`auto_group_size`) and trained by :func:`train_group`; each seed file is written atomically
    as soon as its group finishes, then ``on_record(member_index, record)`` is called (the
    comparison appends its ledger line there). Returned records carry ``"skipped"`` as
    ``run_seed``'s do.
    """
    note = note or log.info
    members = list(members)
    results: dict[int, dict] = {}
    todo: list[int] = []
    seen: dict[str, int] = {}
    for i, (cfg, seed) in enumerate(members):
        path = str(seed_path(cfg, seed))
        if path in seen:
            raise ValueError(f"member {i} (seed {seed}) writes the same file as member {seen[path]}: {path}")
        seen[path] = i
        done = load_finished(cfg, seed)
        if done is not None:
            results[i] = {**done, "skipped": True}
        else:
            todo.append(i)

    groups: dict[tuple, list[int]] = {}
    for i in todo:
        groups.setdefault(fusion_key(members[i][0]), []).append(i)
    workers = _worker_count(members[todo[0]][0], jobs, len(todo)) if todo else 1
    if workers > 1:
        _run_parallel(members, groups, workers, fuse_max, task, note, on_record, results)
        return [results[i] for i in range(len(members))]
    tasks: dict[tuple, Task] = {}
    for idxs in groups.values():
        cfg0 = members[idxs[0]][0]
        tkey = _task_key(cfg0)
        if tkey not in tasks:
            tasks[tkey] = task if task is not None else load_task(cfg0)
        t = tasks[tkey]
        reason = fallback_reason(t, cfg0)
        if reason is not None:
            note(f"{cfg0.dataset}: {len(idxs)} fine-tune(s) run separately, not fused: {reason}")
            for i in idxs:
                cfg, seed = members[i]
                results[i] = run_seed(cfg, seed, t, check=False)
                if on_record is not None:
                    on_record(i, results[i])
            continue
        device = resolve_device(cfg0.device)
        size = auto_group_size(t, cfg0, len(idxs), device, fuse_max if fuse_max is not None else cfg0.fuse_max)
        for start in range(0, len(idxs), size):
            chunk = idxs[start:start + size]
            group = [members[i] for i in chunk]
            note(f"{cfg0.dataset}: fused group of {len(group)} (seeds {[s for _, s in group]})")
            records = train_group(t, group, device, on_step=on_step, checkpoint_interval_s=checkpoint_interval_s,
                                  stop_at=stop_at, progress=progress)
            for i, rec in zip(chunk, records):
                cfg, seed = members[i]
                atomic_write_json(seed_path(cfg, seed), rec)
                results[i] = {**rec, "skipped": False}
                if on_record is not None:
                    on_record(i, results[i])
            spath = state_path(group)
            if spath.exists():
                spath.unlink()
    return [results[i] for i in range(len(members))]
