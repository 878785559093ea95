"""Fine-tuning on downstream graph classification tasks (the paper's protocol), with resumable seeds.

The library API, used by ``scripts/finetune.py`` and by tools that run many fine-tunes in parallel:

* :class:`FinetuneConfig` — every option, defaults = the paper's chem protocol (reference notes,
  "Fine-tuning protocol": batch 32, 100 epochs, Adam lr 1e-3, weight decay 0, dropout 0.5, JK last,
  mean pooling, 5 layers x 300, seeds 0-9, scaffold split).
* :func:`build_model` — the *one* place that builds ``GNNGraphPred`` and loads a pre-trained encoder.
* :func:`finetune_seed` ``(task, seed, config, device) -> dict`` — train one seed, return its record.
* :func:`run_seed` ``(config, seed) -> dict`` — the same, with the resume check and the atomic write
  of ``<output>/<dataset>/seed<k>.json``; safe to call from parallel processes for different seeds.
* :func:`run_finetune` ``(config) -> dict`` — all seeds, then :func:`summarize` writes
  ``summary.json`` (mean ± std over seeds of the test ROC-AUC at the last epoch *and* at the epoch
  of best validation ROC-AUC) and returns it.

Task types (:mod:`gnnpretrain.train.objectives`): classification tasks are scored by ROC-AUC (higher is
better), regression tasks (a CSV with real-valued targets, MoleculeACE) by RMSE (lower is better) on
targets standardised with the training split's mean/std and mapped back for scoring; MAE and R² are
recorded too. Every record carries ``metric``, ``task_type``, ``higher_is_better`` and generic
``valid_score``/``test_score`` (curve, ``last``, ``best_valid``); classification records also keep the
historical ``valid_auc``/``test_auc`` keys, so older seed files and the comparison tables still read.
"Best valid" means the best score in the task's direction.

Resume policy (decided here, documented in ``chem/README.md``): a finished seed file whose recorded
config matches the current one on every option that changes results (see :data:`RESULT_KEYS`) is
reused without retraining. If it differs, the default is a clear error naming the differing options
(results of different experiments must never be averaged silently); ``overwrite=True``
(``--overwrite``) recomputes that seed with a warning instead. Options that do not change results
(device, output folder, worker count, progress bar, report mode, the list of seeds) are not compared.
The pre-trained checkpoint is compared by content (SHA-256), so re-pre-training into the same path is
detected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnpretrain.errors import UserError
from gnnpretrain.metrics import NoValidTaskError, roc_auc_multitask
from gnnpretrain.paths import REPO_ROOT
from gnnpretrain.train.objectives import Objective, TargetScaler, get_objective
from gnnpretrain.train.tasks import Task, get_task
from gnnpretrain.utils import atomic_write_json, parse_seeds, resolve_device, runtime_info, seed_everything

__all__ = [
    "FinetuneConfig",
    "RESULT_KEYS",
    "REPORT_MODES",
    "ConfigMismatchError",
    "build_model",
    "evaluate",
    "finetune_seed",
    "run_seed",
    "run_finetune",
    "summarize",
    "seed_path",
    "default_output",
    "checkpoint_label",
    "safe_name",
]

REPORT_MODES = ("best-valid", "last")
RESULT_FORMAT = 1


@dataclass
class FinetuneConfig:
    """All fine-tuning options. Defaults reproduce the paper's chem protocol."""

    dataset: str = "bbbp"
    domain: str = "chem"
    input_model_file: str | None = None
    # None = the pre-trained checkpoint's (its metadata or weights), else the paper's gin / 5 / 300
    gnn_type: str | None = None
    num_layer: int | None = None
    emb_dim: int | None = None
    JK: str = "last"
    graph_pooling: str = "mean"
    dropout: float = 0.5
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    decay: float = 0.0
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    split: str = "scaffold"
    split_seed: int = 0
    featurizer: str = "reference"
    data_root: str | None = None
    cache: str | None = None
    output: str | None = None
    name: str | None = None
    device: str = "auto"
    num_workers: int = 0
    num_threads: int | None = None
    jobs: int = 1
    eval_batch_size: int = 256
    report: str = "best-valid"
    overwrite: bool = False
    progress: bool = True
    # read an --input-model-file holding Python objects besides tensors (runs code: trusted files only)
    trust_pickle: bool = False
    # CSV datasets only (dataset = a .csv path): SMILES column (None: the one named "smiles", any case),
    # target columns, and "classification" | "regression" (None: inferred, 0/1 values -> classification)
    smiles_column: str | None = None
    target_columns: list[str] | None = None
    task_type: str | None = None
    amp: bool = False  # bf16 autocast (changes results: a RESULT_KEY)
    fused: bool = False  # train the seeds as one stacked computation (gnnpretrain.train.sweep); bookkeeping
    fuse_max: int | None = None  # cap on models per fused group (None: automatic)
    # kernels of a fused group (gnnpretrain.nn.stacked.KERNELS): "auto" = "sparse" on CPU (fast,
    # rounding-equal), "batched" on CUDA; "exact" = CPU, bit-equal to separate runs. Bookkeeping
    fused_kernels: str = "auto"

    def __post_init__(self) -> None:
        self.seeds = parse_seeds(self.seeds)
        if isinstance(self.target_columns, str):
            self.target_columns = [c.strip() for c in self.target_columns.split(",") if c.strip()]
        if self.target_columns is not None:
            self.target_columns = list(self.target_columns)
        if self.task_type not in (None, "classification", "regression"):
            raise ValueError(f"task_type must be 'classification', 'regression' or None (infer), got {self.task_type!r}")
        if self.report not in REPORT_MODES:
            raise ValueError(f"report must be one of {REPORT_MODES}, got {self.report!r}")
        self._resolve_input_model()
        for key in ("epochs", "batch_size", "num_layer", "emb_dim", "eval_batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 (or None for torch's default), got {self.num_threads}")
        if int(self.jobs) < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.fused_kernels not in ("auto", "exact", "sparse", "batched"):
            raise ValueError(f"fused_kernels must be auto, exact, sparse or batched, got {self.fused_kernels!r}")
        if self.fuse_max is not None and int(self.fuse_max) < 1:
            raise ValueError(f"fuse_max must be >= 1 (or None for automatic), got {self.fuse_max}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    def _resolve_input_model(self) -> None:
        """A hub name becomes its local file; unset architecture options come from the checkpoint."""
        arch: dict[str, Any] = {}
        if self.input_model_file is not None:
            self.input_model_file = str(self.input_model_file)
            from gnnpretrain import hub

            if not Path(self.input_model_file).is_file() and self.input_model_file in hub.REGISTRY:
                self.input_model_file = str(hub.resolve(self.input_model_file, cache=self.cache))
            if not Path(self.input_model_file).is_file():
                raise FileNotFoundError(
                    f"--input-model-file {self.input_model_file}: no such file. Give the path of an "
                    "encoder checkpoint (e.g. model.pth from scripts/pretrain.py or a reference .pth) or a "
                    "published model's name (gnnpretrain.hub.list()), or omit it to fine-tune from scratch."
                )
            if None in (self.gnn_type, self.num_layer, self.emb_dim):
                arch = hub.architecture_of(self.input_model_file)
        self.gnn_type = self.gnn_type or arch.get("gnn_type", "gin")
        self.num_layer = self.num_layer or arch.get("num_layer", 5)
        self.emb_dim = self.emb_dim or arch.get("emb_dim", 300)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Options that change what a seed computes; everything else (device, paths, workers, display, the
# seed list, the report mode) is bookkeeping. The checkpoint is compared by content hash.
RESULT_KEYS = (
    "dataset", "domain", "gnn_type", "num_layer", "emb_dim", "JK", "graph_pooling", "dropout",
    "epochs", "batch_size", "lr", "decay", "split", "split_seed", "featurizer", "input_model_sha256",
    # CSV datasets (absent = None in older files, which matches benchmark datasets)
    "smiles_column", "target_columns", "task_type", "dataset_sha256",
    # bf16 autocast; absent in older files = False (see RESULT_KEY_DEFAULTS)
    "amp",
)
#: Value of a result key in files written before the key existed (so old files stay valid);
#: keys not listed here default to ``None``.
RESULT_KEY_DEFAULTS: dict[str, Any] = {"amp": False}


class ConfigMismatchError(UserError, RuntimeError):
    """A finished seed file exists for a different configuration (see the module docstring)."""


#: Checkpoint file stems that say nothing about the run (the folder name is added to them).
_GENERIC_STEMS = frozenset({"model", "encoder", "checkpoint", "best", "last", "final", "weights"})


def safe_name(text: str) -> str:
    """``text`` as a portable file or folder name: letters, digits, ``.``, ``_``, ``-`` only."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return out or "run"


def checkpoint_label(path: str | os.PathLike) -> str:
    """A short, filesystem-safe name for a checkpoint that differs for different weights.

    The file stem (after the run folder's name when the stem is generic, e.g.
    ``contextpred-model`` for ``runs/pretrain/contextpred/model.pth``) plus the first 8 hex digits
    of its SHA-256, so two checkpoints both called ``model.pth`` never share a results folder.
    """
    p = Path(path)
    stem = p.stem
    if stem.lower() in _GENERIC_STEMS and p.resolve().parent.name:
        stem = f"{p.resolve().parent.name}-{stem}"
    return safe_name(f"{stem}-{_sha256(str(p))[:8]}")


def default_output(config: FinetuneConfig) -> Path:
    """``<domain>/runs/finetune/<name>`` in the checkout.

    The name defaults to ``<gnn type>_scratch`` or ``<gnn type>_<checkpoint label>``
    (:func:`checkpoint_label`: stem + content hash); a given ``name`` is made filesystem-safe.
    """
    if config.name:
        name = safe_name(config.name)
    elif config.input_model_file:
        name = f"{config.gnn_type}_{checkpoint_label(config.input_model_file)}"
    else:
        name = f"{config.gnn_type}_scratch"
    return REPO_ROOT / config.domain / "runs" / "finetune" / name


def dataset_dirname(dataset: str) -> str:
    """The folder name of a dataset's results: the name itself, a CSV's stem, ``moleculeace_NAME``."""
    from gnnpretrain.chem.csvtask import dataset_label

    return dataset_label(dataset)


def output_dir(config: FinetuneConfig) -> Path:
    """``<output>/<dataset label>``, filesystem-safe (``string_human:max_centres=3000`` has no ``:``/``=``)."""
    return (Path(config.output) if config.output else default_output(config)) / safe_name(
        dataset_dirname(config.dataset))


def seed_path(config: FinetuneConfig, seed: int) -> Path:
    return output_dir(config) / f"seed{seed}.json"


def _sha256(path: str | None) -> str | None:
    if not path:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _recorded_config(config: FinetuneConfig) -> dict[str, Any]:
    d = config.to_dict()
    d["input_model_sha256"] = _sha256(config.input_model_file)
    # a CSV dataset is compared by content, like the checkpoint (editing the file invalidates old seeds)
    d["dataset_sha256"] = _sha256(config.dataset) if Path(config.dataset).suffix and Path(config.dataset).is_file() else None
    return d


# ------------------------------------------------------------------------------------------ model
def build_model(task: Task, config: FinetuneConfig) -> torch.nn.Module:
    """Build ``GNNGraphPred`` for ``task`` and load the pre-trained encoder if one is given.

    This is the only place fine-tuning constructs a model, so the architecture options and the
    checkpoint loading (with ``nn``'s clear error on an architecture mismatch) stay consistent.
    """
    from gnnpretrain.nn import GNNGraphPred, load_encoder_state

    model = GNNGraphPred(
        num_layer=config.num_layer,
        emb_dim=config.emb_dim,
        num_tasks=task.num_tasks,
        JK=config.JK,
        drop_ratio=config.dropout,
        graph_pooling=config.graph_pooling,
        gnn_type=config.gnn_type,
        **task.model_kwargs,
    )
    if config.input_model_file:
        try:
            load_encoder_state(model.gnn, config.input_model_file, trust_pickle=config.trust_pickle)
        except UserError:  # unsafe or damaged file: its own one-line message says what to do
            raise
        except (RuntimeError, ValueError, KeyError) as err:
            raise type(err)(
                f"cannot load {config.input_model_file} into the fine-tuning encoder "
                f"(gnn_type={config.gnn_type}, num_layer={config.num_layer}, emb_dim={config.emb_dim}, "
                f"JK={config.JK}, input={task.model_kwargs.get('input')}): {err}\n"
                "Pass the --gnn-type/--num-layer/--emb-dim the checkpoint was pre-trained with."
            ) from err
    return model


# ------------------------------------------------------------------------------------------- data
def _train_loader(task: Task, batch_size: int, seed: int, num_workers: int):
    """Shuffled training batches; the order is fixed by ``seed`` (its own generator)."""
    from torch_geometric.loader import DataLoader

    return DataLoader(
        task.graphs("train"),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(int(seed)),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def _eval_batches(task: Task, part: str, batch_size: int) -> list:
    """Pre-collated evaluation batches of ``part`` (fixed order), built once per task and batch size."""
    from torch_geometric.data import Batch

    cache = task.__dict__.setdefault("_eval_batches", {})
    key = (part, batch_size)
    if key not in cache:
        graphs = task.graphs(part)
        cache[key] = [Batch.from_data_list(graphs[i:i + batch_size]) for i in range(0, len(graphs), batch_size)]
    return cache[key]


def _check_split_has_classes(task: Task) -> None:
    """Fail before training if valid or test cannot be scored (no task with both classes / no value)."""
    if task.task_type == "regression":
        for part in ("train", "valid", "test"):
            y = torch.cat([g.y.reshape(1, -1) for g in task.graphs(part)], dim=0)
            if bool(torch.isnan(y).all()):
                raise NoValidTaskError(
                    f"{task.domain}/{task.name} {part} split ({len(y)} graphs, split={task.split!r}) has no target "
                    "value, so it cannot be trained on or scored. Use another split method."
                )
        return
    for part in ("valid", "test"):
        y = torch.cat([g.y.reshape(1, -1) for g in task.graphs(part)], dim=0)
        labelled = ~torch.isnan(y)
        pos = ((y == 1) & labelled).sum(0)
        if not bool(((pos > 0) & (pos < labelled.sum(0))).any()):
            raise NoValidTaskError(
                f"{task.domain}/{task.name} {part} split ({len(y)} graphs, split={task.split!r}): no task has "
                "both classes among its labelled entries, so ROC-AUC is undefined. Use another split method."
            )


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


#: Training sets with at least this many batches get a progress bar within each epoch (HIV, bio).
BATCH_PROGRESS_MIN = 200


def _train_epoch(model, loader, optimizer, device, objective: Objective | None = None,
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


# ------------------------------------------------------------------------------------------ seeds
def _best_epoch(curve: list[dict], objective: Objective | None = None) -> dict:
    """The epoch with the best valid score (highest ROC-AUC / lowest RMSE); the earliest on ties (as the
    reference's argmax)."""
    objective = objective or get_objective("classification")
    key = "valid_score" if "valid_score" in curve[0] else "valid_auc"
    return curve[objective.best_index([r[key] for r in curve])]


def _epoch_scores(objective: Objective, scaler: TargetScaler, task: Task, model, valid_loader, test_loader,
                  device, amp: bool = False) -> tuple[dict, list]:
    """One curve row's metrics: ``valid_score``/``test_score`` (+ ``*_auc`` or ``*_rmse/mae/r2``) and test subsets."""
    preds = {part: predict(model, loader, device, amp) for part, loader in (("valid", valid_loader), ("test", test_loader))}
    return scores_from_predictions(objective, scaler, task, preds)


def scores_from_predictions(objective: Objective, scaler: TargetScaler, task: Task,
                            preds: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[dict, list]:
    """:func:`_epoch_scores` from ``{"valid": (y, out), "test": (y, out)}`` (fused sweeps score here too)."""
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


def finetune_seed(task: Task, seed: int, config: FinetuneConfig, device: str | torch.device = "auto") -> dict:
    """Fine-tune one seed on ``task`` and return its record (nothing is written).

    The seed controls model initialisation, dropout and the order of training batches; the split is
    fixed by ``task``. Valid and test ROC-AUC are measured after every epoch, so the record holds both
    the last-epoch and the best-valid-epoch test ROC-AUC.
    """
    from tqdm.auto import tqdm

    device = resolve_device(device)
    if config.num_threads:
        # process-wide; on a shared or small CPU one thread per process is often several times
        # faster than letting intra-op threads compete (measured: 9x on a loaded 2-core machine)
        torch.set_num_threads(config.num_threads)
    _check_split_has_classes(task)
    if config.amp and amp_note(device):
        warnings.warn(f"--amp: {amp_note(device)}", stacklevel=2)
    objective = get_objective(task.task_type)
    scaler = (TargetScaler.fit(torch.cat([g.y.reshape(1, -1) for g in task.graphs("train")]))
              if task.task_type == "regression" else TargetScaler.identity(task.num_tasks))
    t0 = time.time()
    seed_everything(seed)
    model = build_model(task, config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.decay)
    train_loader = _train_loader(task, config.batch_size, seed, config.num_workers)
    valid_loader = _eval_batches(task, "valid", config.eval_batch_size)
    test_loader = _eval_batches(task, "test", config.eval_batch_size)

    curve: list[dict] = []
    bar = tqdm(range(1, config.epochs + 1), desc=f"{task.name} seed {seed}", leave=False,
               disable=not config.progress, dynamic_ncols=True)
    for epoch in bar:
        loss = _train_epoch(model, train_loader, optimizer, device, objective, scaler, config.amp,
                            progress=f"  epoch {epoch}/{config.epochs}" if config.progress else None)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"{task.name} seed {seed}: training loss became {loss} at epoch {epoch}; lower --lr"
            )
        scores, test_per_task = _epoch_scores(objective, scaler, task, model, valid_loader, test_loader, device,
                                              config.amp)
        curve.append({"epoch": epoch, "train_loss": loss, **scores, "time_s": round(time.time() - t0, 3),
                      "test_per_task": test_per_task})
        bar.set_postfix(loss=f"{loss:.4f}", valid=f"{scores['valid_score']:.4f}", test=f"{scores['test_score']:.4f}")
    bar.close()
    num_params = sum(p.numel() for p in model.parameters())
    return make_record(task, seed, config, curve, num_params, round(time.time() - t0, 3), device, objective, scaler)


def make_record(task: Task, seed: int, config: FinetuneConfig, curve: list[dict], num_params: int,
                wall_time_s: float, device: torch.device, objective: Objective, scaler: TargetScaler) -> dict:
    """The seed record written to ``seed<k>.json`` from a finished training curve (shared by separate
    runs and fused sweeps, so their files are interchangeable); ``curve`` rows as :func:`finetune_seed`'s."""
    best = _best_epoch(curve, objective)
    last = curve[-1]

    def pick(r: dict) -> dict:
        # per-task ROC-AUC is nan for single-class tasks; null keeps the file strict JSON
        per_task = [None if math.isnan(v) else v for v in r["test_per_task"]]
        kept = {k: v for k, v in r.items() if k not in ("train_loss", "time_s", "test_per_task")}
        return {**kept, "test_per_task": per_task}

    return {
        "format": RESULT_FORMAT,
        "finished": True,
        "domain": task.domain,
        "dataset": task.name,
        "seed": int(seed),
        "metric": objective.metric,
        "task_type": task.task_type,
        "higher_is_better": objective.higher_is_better,
        **({"target_scaling": scaler.to_dict()} if task.task_type == "regression" else {}),
        **({"test_subsets": {k: int(v.sum()) for k, v in task.test_subsets.items()}} if task.test_subsets else {}),
        "config": _recorded_config(config),
        "split": {"method": task.split, "split_seed": config.split_seed, **task.sizes},
        "num_tasks": task.num_tasks,
        "num_params": num_params,
        "task_info": task.info,
        "curve": [{k: v for k, v in r.items() if k != "test_per_task"} for r in curve],
        "last": pick(last),
        "best_valid": pick(best),
        "wall_time_s": wall_time_s,
        "device": str(device),
        "torch_version": torch.__version__,
        "runtime": runtime_info(device),
    }


def _mismatch(recorded: dict, current: dict) -> list[str]:
    return [
        f"{k}: file has {recorded.get(k, RESULT_KEY_DEFAULTS.get(k))!r}, now {current.get(k)!r}"
        for k in RESULT_KEYS
        if recorded.get(k, RESULT_KEY_DEFAULTS.get(k)) != current.get(k)
    ]


def load_finished(config: FinetuneConfig, seed: int, current: dict | None = None) -> dict | None:
    """The finished record of ``seed`` if its file exists and matches ``config``; ``None`` if absent.

    Raises :class:`ConfigMismatchError` on a mismatch unless ``config.overwrite`` (then warns and
    returns ``None`` so the seed is recomputed). An unreadable or unfinished file is recomputed.
    """
    path = seed_path(config, seed)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        warnings.warn(f"{path} is not valid JSON; recomputing seed {seed}", stacklevel=2)
        return None
    if not record.get("finished"):
        return None
    current = current if current is not None else _recorded_config(config)
    diffs = _mismatch(record.get("config", {}), current)
    if not diffs:
        return record
    if config.overwrite:
        warnings.warn(
            f"{path} was computed with another configuration ({'; '.join(diffs)}); recomputing it (--overwrite)",
            stacklevel=2,
        )
        return None
    raise ConfigMismatchError(
        f"{path} holds a finished seed computed with a different configuration ("
        + "; ".join(diffs)
        + "); use another --output/--name for the new experiment, or pass --overwrite to recompute these seeds"
    )


def run_seed(config: FinetuneConfig, seed: int, task: Task | None = None, check: bool = True) -> dict:
    """Fine-tune one seed unless a matching finished file exists; write the record atomically.

    The returned record has ``"skipped": True`` when it was read back instead of computed (not saved).
    ``check=False`` skips the resume check (the caller has done it) and always computes.
    """
    if check:
        done = load_finished(config, seed)
        if done is not None:
            done["skipped"] = True
            return done
    if task is None:
        task = load_task(config)
    record = finetune_seed(task, seed, config, config.device)
    atomic_write_json(seed_path(config, seed), record)
    record["skipped"] = False
    return record


def load_task(config: FinetuneConfig) -> Task:
    return get_task(
        config.domain, config.dataset, data_root=config.data_root, cache=config.cache,
        split=config.split, featurizer=config.featurizer, split_seed=config.split_seed,
        smiles_column=config.smiles_column, target_columns=config.target_columns, task_type=config.task_type,
    )


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def summarize(config: FinetuneConfig, records: list[dict] | None = None) -> dict:
    """Mean ± std (population std, ``ddof=0``) over seeds for both report modes; writes ``summary.json``."""
    if records is None:
        records = []
        for seed in config.seeds:
            rec = load_finished(config, seed)
            if rec is None:
                raise FileNotFoundError(f"seed {seed} has no finished result in {output_dir(config)}")
            records.append(rec)
    if not records:
        raise ValueError("summarize: no seed records given")
    records = sorted(records, key=lambda r: r["seed"])
    metric = records[0].get("metric", "roc_auc")

    def score(rec: dict, mode: str, part: str = "test") -> float:
        r = rec[mode]
        return r[f"{part}_score"] if f"{part}_score" in r else r[f"{part}_auc"]  # older files: *_auc only

    scores = {
        part: {"best-valid": _stats([score(r, "best_valid", part) for r in records]),
               "last": _stats([score(r, "last", part) for r in records])}
        for part in ("test", "valid")
    }
    subsets = sorted({k[len("test_score_"):] for r in records for k in r["last"] if k.startswith("test_score_")})
    summary = {
        "format": RESULT_FORMAT,
        "domain": config.domain,
        "dataset": config.dataset,
        "metric": metric,
        "task_type": records[0].get("task_type", "classification"),
        "higher_is_better": records[0].get("higher_is_better", True),
        "report": config.report,
        "seeds": [r["seed"] for r in records],
        "config": _recorded_config(config),
        "split": records[0].get("split"),
        "std": "population (ddof=0)",
        "test_score": scores["test"],
        "valid_score": scores["valid"],
        **({"test_auc": scores["test"], "valid_auc": scores["valid"]} if metric == "roc_auc" else {}),
        **({"test_subsets": {
            s: {"best-valid": _stats([r["best_valid"].get(f"test_score_{s}", math.nan) for r in records]),
                "last": _stats([r["last"].get(f"test_score_{s}", math.nan) for r in records])}
            for s in subsets}} if subsets else {}),
        "per_seed": [
            {"seed": r["seed"], "test_score_best_valid": score(r, "best_valid"), "best_valid_epoch": r["best_valid"]["epoch"],
             "test_score_last": score(r, "last"), "wall_time_s": r["wall_time_s"],
             **({"test_auc_best_valid": score(r, "best_valid"), "test_auc_last": score(r, "last")}
                if metric == "roc_auc" else {})}
            for r in records
        ],
        "wall_time_s_total": round(sum(r["wall_time_s"] for r in records), 3),
        # every distinct runtime (versions, threads, device) the seeds were computed under
        "runtimes": [json.loads(u) for u in dict.fromkeys(json.dumps(r.get("runtime"), sort_keys=True) for r in records)],
    }
    atomic_write_json(output_dir(config) / "summary.json", summary)
    return summary


def summary_line(summary: dict) -> str:
    """One human-readable line: the chosen report mode first, the other in brackets."""
    from gnnpretrain.train.tasks import dataset_display  # a CSV path as given, not chem//path (issue 21)
    mode = summary["report"]
    other = "last" if mode == "best-valid" else "best-valid"
    table = summary.get("test_score") or summary["test_auc"]
    a, b = table[mode], table[other]
    if summary.get("metric", "roc_auc") == "roc_auc":
        label, fmt = "ROC-AUC", (lambda v: f"{100 * v:.2f}")
    else:
        label, fmt = summary["metric"].upper(), (lambda v: f"{v:.4f}")
    subsets = "".join(
        f", {name} {fmt(t[mode]['mean'])} ± {fmt(t[mode]['std'])}" for name, t in summary.get("test_subsets", {}).items()
    )
    return (
        f"{dataset_display(summary['domain'], summary['dataset'])}: test {label} ({mode}) {fmt(a['mean'])} ± "
        f"{fmt(a['std'])} over {a['n']} seeds [{other}: {fmt(b['mean'])} ± {fmt(b['std'])}]{subsets}"
        f" | epochs {summary['config']['epochs']}, split {(summary.get('split') or {}).get('method', summary['config']['split'])}, "
        f"{summary['wall_time_s_total']:.0f} s"
    )


def run_finetune(config: FinetuneConfig) -> dict:
    """Run (or resume) every seed of ``config`` and return the summary (also in ``summary.json``).

    Resuming checks every seed file first, so a configuration mismatch fails before any training.
    With ``config.jobs > 1`` the unfinished seeds run in that many parallel processes with one torch
    thread each (on a small CPU that beats sequential seeds with several threads; see
    ``benchmarks/RESULTS.md``); every seed computes exactly what it computes alone.
    """
    from gnnpretrain.outputs import output_lock

    # before any data loading or training: the output can be written and is ours alone (lock), and
    # the checkpoint is safe to read and whole — each failure is one line (gnnpretrain.errors)
    with output_lock(output_dir(config), what="fine-tuning output folder"):
        if config.input_model_file:  # every format (.pth/.pt/.safetensors): unsafe or damaged is one line now
            from gnnpretrain.nn.checkpoint import check_weights_file

            check_weights_file(config.input_model_file, trust_pickle=config.trust_pickle, what="--input-model-file checkpoint")
        return _run_finetune_locked(config)


def _run_finetune_locked(config: FinetuneConfig) -> dict:
    from tqdm.auto import tqdm

    current = _recorded_config(config)
    done = {s: load_finished(config, s, current) for s in config.seeds}
    todo = [s for s in config.seeds if done[s] is None]
    task = load_task(config) if todo else None
    records = {s: {**r, "skipped": True} for s, r in done.items() if r is not None}
    bar = tqdm(total=len(config.seeds), desc=f"{config.dataset} seeds", disable=not config.progress,
               dynamic_ncols=True)
    bar.update(len(records))

    def finished(rec: dict) -> None:
        records[rec["seed"]] = rec
        bar.update(1)
        key = "test_score" if "test_score" in rec["best_valid"] else "test_auc"
        bar.set_postfix(seed=rec["seed"], test_bv=f"{rec['best_valid'][key]:.4f}",
                        test_last=f"{rec['last'][key]:.4f}")

    def note() -> str:
        n_done = sum(1 for s in config.seeds if s in records)
        return (f"{n_done} of {len(config.seeds)} fine-tuning seeds are finished and saved in {output_dir(config)}; "
                "the same command continues with the others")

    from gnnpretrain.runtime import interrupt_note

    jobs = min(int(config.jobs), len(todo))
    with interrupt_note(note):
        if config.fused and todo:
            # one stacked computation per group of seeds (gnnpretrain.train.sweep); with jobs > 1 the
            # seeds are dealt to that many processes, each training its share as fused groups
            if jobs > 1:
                for recs in _run_seeds_parallel(config, task, [todo[i::jobs] for i in range(jobs)], jobs):
                    for rec in recs:
                        finished(rec)
            else:
                from gnnpretrain.train.sweep import run_members

                for rec in run_members([(config, s) for s in todo], fuse_max=config.fuse_max, task=task):
                    finished(rec)
        elif jobs > 1:
            for rec in _run_seeds_parallel(config, task, todo, jobs):
                finished(rec)
        else:
            for seed in todo:
                finished(run_seed(config, seed, task, check=False))
    bar.close()
    return summarize(config, [records[s] for s in config.seeds])


# Parallel seeds: the task is handed to forked workers through this global (no pickling of graphs).
_PARALLEL_TASK: Task | None = None


def _parallel_init(threads: int) -> None:
    from gnnpretrain.runtime import ignore_interrupts_in_worker

    ignore_interrupts_in_worker()  # Ctrl-C: the parent prints one line and terminates the pool
    torch.set_num_threads(threads)


def _parallel_seed(args: tuple[FinetuneConfig, int | list[int]]) -> dict | list[dict]:
    config, seed = args
    if isinstance(seed, list):  # a fused share: its seeds as fused groups, records in seed order
        from gnnpretrain.train.sweep import run_members

        return run_members([(config, s) for s in seed], fuse_max=config.fuse_max, task=_PARALLEL_TASK)
    return run_seed(config, seed, _PARALLEL_TASK, check=False)


def _run_seeds_parallel(config: FinetuneConfig, task: Task, seeds: list, jobs: int):
    """Yield the records of ``seeds`` as ``jobs`` worker processes (one thread each) finish them
    (an item that is a list of seeds is one fused share; its worker yields the list of records).

    Each worker writes its seed file atomically, so an interruption keeps every finished seed.
    """
    global _PARALLEL_TASK
    import multiprocessing as mp

    worker_config = dataclasses.replace(config, progress=False, jobs=1)
    try:
        ctx = mp.get_context("fork")  # workers inherit the loaded task
    except ValueError:
        ctx = mp.get_context("spawn")  # they load it from the cache instead
    _PARALLEL_TASK = task
    try:
        with ctx.Pool(jobs, initializer=_parallel_init, initargs=(config.num_threads or 1,)) as pool:
            # leaving the block (normally, on an error or on Ctrl-C) terminates the workers
            yield from pool.imap_unordered(_parallel_seed, [(worker_config, s) for s in seeds])
    finally:
        _PARALLEL_TASK = None
