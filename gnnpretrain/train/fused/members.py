"""Which members fuse, how groups are cut, and :func:`run_members`: every ``(config, seed)``
member run (or resumed) as fused groups, in this process or over worker processes."""

from __future__ import annotations

import json
import logging
import math
from typing import Callable, Sequence

import torch

from gnnpretrain.nn.stacked import StackedGraphPred, unsupported_reason
from gnnpretrain.train.fused.group import (
    CPU_FUSE_DEFAULT,
    per_model_loss,
    resolve_kernels,
    state_path,
    train_group,
)
from gnnpretrain.train.fused.store import TrainStore, index_loader
from gnnpretrain.train.run.config import RESULT_KEYS, FinetuneConfig
from gnnpretrain.train.run.data import build_model, load_task
from gnnpretrain.train.run.paths import seed_path
from gnnpretrain.train.run.records import load_finished
from gnnpretrain.train.separate import run_seed
from gnnpretrain.train.tasks import Task
from gnnpretrain.utils import atomic_write_json, resolve_device, seed_everything

__all__ = ["fusion_key", "fallback_reason", "fused_by_default", "auto_group_size", "resolve_kernels", "run_members", "work_items"]

log = logging.getLogger("gnnpretrain.train.fused")

#: Result keys that may differ inside one fused group (the starting checkpoint).
_PER_MEMBER_KEYS = ("input_model_sha256",)


def fusion_key(config: FinetuneConfig) -> tuple:
    """Members with equal keys can share one stacked computation (everything that changes results
    except the starting checkpoint, plus where the data comes from)."""
    rec = config.to_dict()
    keys = [k for k in RESULT_KEYS if k not in _PER_MEMBER_KEYS]
    return tuple((k, json.dumps(rec.get(k), sort_keys=True)) for k in keys) + (
        ("data_root", str(config.data_root)), ("cache", str(config.cache)), ("device", str(config.device)),
        ("fused_kernels", str(config.fused_kernels)),
    )


def fallback_reason(task: Task, config: FinetuneConfig) -> str | None:
    """Why ``config`` on ``task`` cannot run fused (``None`` if it can)."""
    if getattr(task, "task_type", "classification") != "classification":
        return f"{task.task_type} task (fused sweeps train the classification loss)"
    if task.model_kwargs.get("center_pool"):
        return "centre-node pooling"
    if config.freeze:
        return "frozen encoder"
    if config.num_workers:
        return None  # batches are gathered in-process; workers are simply not needed
    seed_everything(0)
    return unsupported_reason(build_model(task, FinetuneConfig(**{**config.to_dict(), "input_model_file": None})))


def fused_by_default(device: str | None) -> bool:
    """Whether the scripts fuse when neither ``--fused`` nor ``--no-fused`` is given: on a CPU, where the
    sparse kernels measured faster in fp32 (1.2x separate runs at one seed, 1.36x per seed-epoch at
    ten) and in bf16 (benchmarks/RESULTS.md); not on GPUs, where it is not measured yet. A device
    that does not resolve gives ``False`` (the configuration then reports it)."""
    try:
        return resolve_device(device or "cpu").type == "cpu"
    except ValueError:
        return False


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
        idx = next(iter(index_loader(len(store), config.batch_size, gen)))
        fb = store.collate(idx.unsqueeze(0).expand(g, -1), padded=True).to(device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        per_model_loss(stacked(fb), fb.y).sum().backward()
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


def work_items(members: Sequence[tuple[FinetuneConfig, int]], indices: Sequence[int], workers: int,
               fuse_max: int | None = None) -> list[list[int]]:
    """The fused work items for ``workers`` parallel workers (processes, Ray tasks): the members at
    ``indices`` grouped by :func:`fusion_key`, each group cut as :func:`_shares` cuts it."""
    groups: dict[tuple, list[int]] = {}
    for i in indices:
        groups.setdefault(fusion_key(members[i][0]), []).append(i)
    return _shares(groups, members, workers, fuse_max)


# Worker processes: the parent's tasks (fork) and this worker's device (CUDA: one per process).
_WORKER_TASKS: dict[tuple, Task] = {}
_WORKER_DEVICE: str | None = None


def _task_key(cfg: FinetuneConfig) -> tuple:
    return (cfg.domain, cfg.dataset, cfg.split, cfg.split_seed, cfg.featurizer, cfg.data_root, cfg.cache)


def _take_device(devices) -> None:
    global _WORKER_DEVICE
    _WORKER_DEVICE = devices.get()


def _worker_item(item: list[tuple[FinetuneConfig, int]]) -> list[dict]:
    import dataclasses

    if _WORKER_DEVICE is not None:
        item = [(dataclasses.replace(cfg, device=_WORKER_DEVICE), seed) for cfg, seed in item]
    task = _WORKER_TASKS.get(_task_key(item[0][0]))
    return run_members(item, task=task, jobs=1)


def _run_parallel(members: list[tuple[FinetuneConfig, int]], groups: dict[tuple, list[int]], workers: int,
                  fuse_max: int | None, task: Task | None, note: Callable[[str], None],
                  on_record: Callable[[int, dict], None] | None, results: dict[int, dict]) -> None:
    """Train the groups in ``workers`` processes (:func:`gnnpretrain.train.workers.parallel_map`: they
    die with this one); seed files are written by the workers (atomic), ``on_record`` runs here as
    each work item comes back."""
    import dataclasses
    import multiprocessing as mp

    from gnnpretrain.train.workers import parallel_map

    global _WORKER_TASKS
    cfg0 = members[next(iter(groups.values()))[0]][0]
    on_cuda = _on_cuda(cfg0)
    items = _shares(groups, members, workers, fuse_max)
    if fuse_max is not None:
        members = [(dataclasses.replace(cfg, fuse_max=fuse_max), seed) for cfg, seed in members]
    note(f"fused fine-tuning: {len(items)} group(s) over {workers} "
         f"{'GPU processes (one per device)' if on_cuda else 'processes (one thread each)'}")
    pool_options: dict = {"threads": 1}
    if on_cuda:
        # CUDA cannot be used in a forked child of a process that touched it: fresh processes, each
        # loading its tasks from the cache, and each taking one device
        devices = mp.get_context("spawn").Queue()
        for k in range(workers):
            devices.put(f"cuda:{k}")
        pool_options = {"threads": cfg0.num_threads or 1, "context": "spawn", "initializer": _take_device,
                        "initargs": (devices,)}
    else:
        tasks = {}
        for idxs in groups.values():
            key = _task_key(members[idxs[0]][0])
            if key not in tasks:
                tasks[key] = task if task is not None else load_task(members[idxs[0]][0])
        _WORKER_TASKS = tasks  # forked workers inherit the loaded tasks
    try:
        payload = [[members[i] for i in item] for item in items]
        for k, records in parallel_map(_worker_item, payload, workers, **pool_options):
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
    training, as :func:`~gnnpretrain.train.engines.run_finetune`). Members are grouped by
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
