"""The one pre-training loop, shared by every strategy and every domain.

It owns what the reference scattered over one script per strategy: the optimiser, progress display,
per-epoch metrics (``metrics.jsonl``), the run's configuration (``config.json``), atomic checkpoints
after every epoch and exact resumption, DistributedDataParallel and bf16 autocast where the hardware
multiplies bf16 natively (:func:`gnnpretrain.hardware.resolve_amp`).

Determinism and resume: at the start of every epoch the global torch RNG and the generator handed to
the strategy's transforms are re-seeded from ``(seed, epoch, rank)``, and the loader is reshuffled
with ``set_epoch(epoch)``. An epoch therefore depends only on the weights and optimiser state at its
start, which ``checkpoint.pth`` stores, so a resumed run reproduces an uninterrupted one bit for bit
(on the same device and software).

Run directory layout (``out_dir``):
    config.json      run configuration (strategy, encoder architecture, options, data, training)
    metrics.jsonl    one JSON object per finished epoch (means over the epoch's steps; ``runtime``:
                     torch threads and device of the process that ran it)
    model.pth        encoder state dict (reference key names), what fine-tuning loads
    model.safetensors  the same tensors in safetensors (no pickle), run config in its metadata
    checkpoint.pth   full state for ``resume``: strategy, optimiser, epoch, RNG states — tensors and
                     plain types only, read back with ``weights_only=True`` (gnnpretrain.safeload)
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist

from gnnpretrain.errors import OutputExistsError
from gnnpretrain.hardware import cpu_capability, hardware_info, resolve_amp
from gnnpretrain.train.resume import (
    CONFIG_NAME,
    ConfigMismatchError,
    check_resume_config,
    check_resume_config_early,
    read_resume_checkpoint,
    read_run_config,
    rng_state,
    set_rng_state,
)
from gnnpretrain.runtime import deferred_interrupt
from gnnpretrain.utils import atomic_save_safetensors, atomic_torch_save, atomic_write_json, atomic_write_text, resolve_device, runtime_info

__all__ = ["pretrain", "ConfigMismatchError", "CHECKPOINT_NAME", "MODEL_NAME", "CONFIG_NAME", "METRICS_NAME", "epoch_seed",
           "check_resume_config_early"]

CHECKPOINT_NAME = "checkpoint.pth"
MODEL_NAME = "model.pth"
METRICS_NAME = "metrics.jsonl"

def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one (epoch, rank): distinct per epoch and per rank, stable across runs."""
    return (int(seed) * 1_000_003 + int(epoch) * 9_176 + int(rank) * 131) % (2**63 - 1)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _autocast(device: torch.device, amp: bool):
    """bf16 autocast on ``device`` (CUDA or CPU) when ``amp``; :func:`resolve_amp` has already made
    sure bf16 is native there."""
    if amp and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class _MetricAccumulator:
    """Per-key running means (NaN values skipped) and sums for ``num_*`` counts."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def add(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            v = float(v)
            if math.isnan(v):
                continue
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0.0) + 1.0

    def reduce(self, device: torch.device, world_size: int, keys: list[str]) -> dict[str, float]:
        """Means (sums for ``num_*``) over all steps of all ranks; ``keys`` must agree across ranks."""
        sums = torch.tensor([self.sums.get(k, 0.0) for k in keys], dtype=torch.float64)
        counts = torch.tensor([self.counts.get(k, 0.0) for k in keys], dtype=torch.float64)
        if world_size > 1:
            both = torch.stack([sums, counts]).to(device)
            dist.all_reduce(both)
            sums, counts = both.cpu()
        out = {}
        for k, s, c in zip(keys, sums.tolist(), counts.tolist()):
            if k.startswith("num_"):
                out[k] = int(s) if float(s).is_integer() else s
            else:
                out[k] = s / c if c > 0 else float("nan")
        return out


def _average_buffers(module: torch.nn.Module, world_size: int) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the ranks.

    DDP broadcasts rank 0's buffers at every forward, so after the last step of an epoch each rank
    holds statistics updated by its own last batch; averaging makes every rank hold the same model
    (and a better estimate than rank 0's alone) before it is saved.
    """
    for buf in module.buffers():
        if buf.dtype.is_floating_point:
            dist.all_reduce(buf.data)
            buf.data /= world_size


def _read_metrics(path: Path, before_epoch: int) -> list[str]:
    if not path.exists():
        return []
    kept = []
    for line in path.read_text().splitlines():
        if line.strip() and json.loads(line).get("epoch", 0) < before_epoch:
            kept.append(line)
    return kept


def _pretrain(
    strategy: torch.nn.Module,
    loader: Iterable,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    device: str | torch.device = "auto",
    out_dir: str | Path = "runs/pretrain",
    resume: bool = False,
    amp: bool | str = False,
    config: dict | None = None,
    output_model_file: str | Path | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    trust_pickle: bool = False,
) -> list[dict]:
    """Train ``strategy`` on ``loader`` for ``epochs`` epochs; return the per-epoch metrics.

    Args:
        strategy: a :class:`gnnpretrain.strategies.Strategy` (``forward(batch, generator)`` returns
            ``(loss, metrics)``; ``.encoder`` is what ``model.pth`` holds).
        loader: yields collated batches; ``set_epoch(e)`` is called before each epoch when present.
            Under DistributedDataParallel each rank's loader must yield its own shard and the same
            number of batches on every rank.
        epochs: total number of epochs (with ``resume``, the run continues up to this number).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        out_dir: run directory (see the module docstring); only rank 0 writes.
        resume: continue from ``out_dir/checkpoint.pth`` (a config differing from the saved
            ``config.json`` is a :class:`ConfigMismatchError`); without a checkpoint, start afresh.
        amp: bf16 autocast where the device multiplies bf16 natively (GPUs of compute capability 8.0+,
            CPUs with AVX512-BF16 or AMX-BF16: measured about 2x the fp32 graphs/s of an attribute-
            masking step, GIN 5 x 300, batch 256, one thread of an AMD EPYC Zen 4 with avx512_bf16, see
            benchmarks/RESULTS.md); elsewhere fp32 with one logged line saying so
            (bf16 there runs ATen's scalar fallback, several times slower than fp32). ``"force"``
            asks for bf16 or a :class:`~gnnpretrain.hardware.Bf16UnsupportedError` (exit 2 from the
            CLI). See :func:`gnnpretrain.hardware.resolve_amp`; ``config.json`` records the dtype used
            (``training.compute_dtype``) and the hardware (``hardware``, incl. ``cpu_capability``).
        config: extra run configuration recorded in ``config.json`` (the strategy's own config and
            the training settings are added here).
        output_model_file: where the encoder state dict goes (default ``out_dir/model.pth``).
        overwrite: allow starting afresh in a directory that already holds a checkpoint.
        trust_pickle: let ``resume`` read a ``checkpoint.pth`` that holds Python objects (written by an
            older version of this code). Only for files you trust; new checkpoints never need it.
    """
    device = resolve_device(device)
    rank, world_size = _dist_info()
    out_dir = Path(out_dir)
    model_path = Path(output_model_file) if output_model_file else out_dir / MODEL_NAME
    ckpt_path = out_dir / CHECKPOINT_NAME
    metrics_path = out_dir / METRICS_NAME
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    decision = resolve_amp(amp, device)  # a forced bf16 without native support fails here, before any work
    if decision.requested != "off" and rank == 0:
        log(decision.reason)
    amp_used = decision.enabled

    strategy_cfg = strategy.config() if hasattr(strategy, "config") else {}
    full_config = {
        **strategy_cfg,
        **(config or {}),
        "training": {
            "epochs": int(epochs),
            "lr": float(lr),
            "weight_decay": float(weight_decay),
            "seed": int(seed),
            "world_size": world_size,
            "amp": amp_used,
            "compute_dtype": decision.compute_dtype,
        },
        "output_model_file": str(model_path),
        "runtime": runtime_info(device),
        "hardware": hardware_info(device),
    }
    plain_config = json.loads(json.dumps(full_config, default=str))  # plain types: loads with weights_only=True

    strategy.to(device)
    optimizer = torch.optim.Adam(strategy.parameters(), lr=lr, weight_decay=weight_decay)
    start_epoch = 1
    if resume and ckpt_path.exists():
        saved_cfg = read_run_config(out_dir / CONFIG_NAME)
        check_resume_config(saved_cfg, full_config, out_dir)
        ckpt = read_resume_checkpoint(ckpt_path, map_location=device, trust_pickle=trust_pickle)
        try:
            strategy.load_state_dict(ckpt["strategy"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:  # same config (checked above), yet other tensors
            from gnnpretrain.errors import CorruptFileError

            raise CorruptFileError(
                f"{ckpt_path} does not fit this run although config.json matches ({str(err).splitlines()[0][:120]}): "
                "the checkpoint was replaced or damaged; restore it from a copy, or start again with --overwrite"
            ) from None
        set_rng_state(ckpt["rng"])
        start_epoch = int(ckpt["epoch"]) + 1
        if rank == 0:
            log(f"resuming {out_dir} after epoch {ckpt['epoch']}")
    elif resume and rank == 0:
        log(f"--resume: no checkpoint in {out_dir}, starting from epoch 1")
    elif ckpt_path.exists() and not overwrite:
        raise OutputExistsError(
            f"{out_dir} already holds a pre-training run ({CHECKPOINT_NAME}); pass --resume to continue it, "
            "--overwrite to start it again, or choose another --output directory"
        )

    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / CONFIG_NAME, full_config)
        history_lines = _read_metrics(metrics_path, start_epoch)
    history = [json.loads(line) for line in history_lines] if rank == 0 else []

    model: torch.nn.Module = strategy
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            strategy, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=True
        )

    finished = {"epoch": start_epoch - 1}

    def note() -> str:
        if finished["epoch"] < 1:
            return f"no pre-training epoch had finished; nothing to keep in {out_dir}"
        return (f"pre-training stopped during epoch {finished['epoch'] + 1}/{epochs}; epochs 1-{finished['epoch']} "
                f"are saved in {ckpt_path} (encoder: {model_path}); add --resume to the same command to continue")

    total_steps = len(loader) if hasattr(loader, "__len__") else None
    if rank == 0 and start_epoch <= int(epochs) and total_steps:
        log(f"pre-training: {int(epochs) - start_epoch + 1} epoch(s) x {total_steps} steps; a time estimate "
            "follows the first steps of a long run")
    with _interrupt_note(note):
        history = _epochs(strategy, model, loader, optimizer, device, amp_used, seed, rank, world_size, start_epoch,
                          int(epochs), progress, log, history, finished, model_path, ckpt_path, metrics_path,
                          plain_config, total_steps)
    return history


def _interrupt_note(note):
    from gnnpretrain.runtime import interrupt_note

    return interrupt_note(note)


def _epochs(strategy, model, loader, optimizer, device, amp_used, seed, rank, world_size, start_epoch, epochs,
            progress, log, history, finished, model_path, ckpt_path, metrics_path, plain_config, total_steps):
    """The epoch loop of :func:`pretrain` (split out so the interrupt note wraps it)."""
    metric_keys: list[str] | None = None
    estimate_at = max(3, min(20, (total_steps or 0) // 10))
    t_start = time.time()
    for epoch in range(start_epoch, int(epochs) + 1):
        strategy.train()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        es = epoch_seed(seed, epoch, rank)
        torch.manual_seed(es)
        generator = torch.Generator(device=device)
        generator.manual_seed(es)
        acc = _MetricAccumulator()
        t0 = time.time()
        steps = 0
        bar = None
        it = loader
        if progress and rank == 0:
            from tqdm.auto import tqdm

            total = len(loader) if hasattr(loader, "__len__") else None
            bar = tqdm(loader, total=total, desc=f"epoch {epoch}/{epochs}", leave=False, dynamic_ncols=True)
            it = bar
        for batch in it:
            batch = batch.to(device)
            with _autocast(device, amp_used):
                loss, metrics = model(batch, generator=generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite pre-training loss ({float(loss)}) at epoch {epoch}, step {steps}; "
                    "lower --lr or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            acc.add(metrics)
            steps += 1
            if rank == 0 and total_steps and epoch == start_epoch and steps == estimate_at and total_steps > 2 * steps:
                per_step = (time.time() - t_start) / steps
                remaining = per_step * (total_steps * (epochs - start_epoch + 1) - steps)
                if remaining >= 30:
                    log(f"about {_duration(per_step * total_steps)} per epoch, {_duration(remaining)} to go "
                        f"(measured over the first {steps} steps)")
            if bar is not None:
                shown = {k: f"{metrics[k]:.4f}" for k in ("loss", "acc") if k in metrics and not math.isnan(metrics[k])}
                bar.set_postfix(shown, refresh=False)
        if bar is not None:
            bar.close()
        if steps == 0:
            raise RuntimeError(f"the loader yielded no batch in epoch {epoch} (empty dataset, or drop_last with too few graphs)")
        keys = sorted(set(acc.sums) | set(acc.counts))
        if world_size > 1:  # every rank must reduce the same keys in the same order
            gathered: list[Any] = [None] * world_size
            dist.all_gather_object(gathered, keys)
            keys = sorted(set().union(*gathered))
        metric_keys = keys
        if world_size > 1:
            _average_buffers(strategy, world_size)
        record = {"epoch": epoch, "steps": steps, **acc.reduce(device, world_size, metric_keys)}
        record["time_s"] = round(time.time() - t0, 3)
        # what can change floating-point results within a resumed run (full runtime_info in config.json)
        record["runtime"] = {"torch_threads": torch.get_num_threads(), "device": str(device),
                             "compute_dtype": "bfloat16" if amp_used else "float32", "cpu_capability": cpu_capability()}
        if rank == 0:
            history.append(record)
            shown = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                              if k != "runtime")
            log(f"epoch {epoch}: {shown}")
        # the epoch's files, then the counter the Ctrl-C line reads, with Ctrl-C held until all are
        # written; the checkpoint last (a resume keeps only metrics lines before its epoch), so even
        # a kill -9 in between leaves files a resume reads consistently
        with deferred_interrupt():
            if rank == 0:
                encoder_state = {k: v.detach().cpu() for k, v in strategy.encoder.state_dict().items()}
                if model_path.suffix != ".safetensors":
                    atomic_torch_save(encoder_state, model_path)
                # the same weights as safetensors (no pickle) with the run's config as metadata, so
                # hub.load / load_encoder_state know the architecture without config.json
                atomic_save_safetensors(
                    encoder_state, model_path.with_suffix(".safetensors"),
                    metadata={"format": "gnnpretrain-encoder", "epoch": str(epoch), "config": json.dumps(plain_config)},
                )
                atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in history))
                atomic_torch_save(
                    {
                        "strategy": {k: v.detach().cpu() for k, v in strategy.state_dict().items()},
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch,
                        "rng": rng_state(),
                        "config": plain_config,
                    },
                    ckpt_path,
                )
            finished["epoch"] = epoch
        if world_size > 1:
            dist.barrier()
    return history


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@functools.wraps(_pretrain)
def pretrain(*args: Any, **kwargs: Any) -> list[dict]:
    # rank 0 holds the lock on the run directory for the whole run (gnnpretrain.outputs.output_lock):
    # a second run on the same directory is refused at once instead of mixing their files
    from gnnpretrain.outputs import output_lock

    bound = inspect.signature(_pretrain).bind(*args, **kwargs)
    bound.apply_defaults()
    if _dist_info()[0] != 0:
        return _pretrain(*args, **kwargs)
    with output_lock(Path(bound.arguments["out_dir"]), what="pre-training run directory"):
        return _pretrain(*args, **kwargs)
