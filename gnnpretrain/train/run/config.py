"""Fine-tuning configuration: every option, which of them change results, and the mismatch rule.

:class:`FinetuneConfig` defaults reproduce the paper's chem protocol (reference notes, "Fine-tuning
protocol": batch 32, 100 epochs, Adam lr 1e-3, weight decay 0, dropout 0.5, JK last, mean pooling,
5 layers x 300, seeds 0-9, scaffold split). :data:`RESULT_KEYS` are the options that change what a
seed computes; :func:`recorded_config` is the configuration as a seed file records it (checkpoint
and CSV compared by content hash) and :func:`config_mismatch` lists how two recorded configurations
differ. Both engines (:mod:`gnnpretrain.train.separate`, :mod:`gnnpretrain.train.fused`) and the
comparison layer read these; nothing here knows which engine runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gnnpretrain.errors import UserError
from gnnpretrain.utils import parse_seeds, sha256_file

__all__ = ["FinetuneConfig", "RESULT_KEYS", "RESULT_KEY_DEFAULTS", "REPORT_MODES", "RESULT_FORMAT",
           "ConfigMismatchError", "sha256_file", "recorded_config", "config_mismatch"]

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
    # bf16 (changes results: a RESULT_KEY). True (--amp): bf16 where the device multiplies bf16 natively,
    # else fp32 with a one-line warning; "force" (--amp-dtype bf16): bf16 or a UserError. Resolved on
    # construction (gnnpretrain.hardware.resolve_amp), so the field always says what is computed.
    amp: bool = False
    fused: bool = False  # train the seeds as one stacked computation (gnnpretrain.train.fused); bookkeeping
    fuse_max: int | None = None  # cap on models per fused group (None: automatic)
    # kernels of a fused group (gnnpretrain.nn.stacked.KERNELS): "auto" = "sparse" on CPU (fast,
    # rounding-equal), "batched" on CUDA; "exact" = CPU, bit-equal to separate runs. Bookkeeping
    fused_kernels: str = "auto"
    # train only the pooling and the linear head; the encoder keeps its (pre-trained) weights, BatchNorm
    # statistics and no dropout (eval mode). A RESULT_KEY; files without it count as False. Fused groups
    # do not stack it (fused.members.fallback_reason): such seeds run separately.
    freeze: bool = False

    def __post_init__(self) -> None:
        self.seeds = parse_seeds(self.seeds)
        self._resolve_amp()
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
        self.freeze = bool(self.freeze)
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    def _resolve_amp(self) -> None:
        """``amp`` becomes the dtype actually computed: never bf16 through a scalar fallback (issue 18)."""
        if self.amp is False or self.amp is None:
            self.amp = False
            return
        import warnings

        import torch

        from gnnpretrain.hardware import resolve_amp
        from gnnpretrain.utils import resolve_device

        try:
            device = resolve_device(self.device)
        except ValueError:  # a bad device is reported where it is used
            device = torch.device("cpu")
        decision = resolve_amp("force" if self.amp == "force" else True, device)  # "force": UserError if not native
        if decision.fell_back:
            warnings.warn(decision.reason, stacklevel=3)
        self.amp = decision.enabled

    @property
    def compute_dtype(self) -> str:
        """``"bfloat16"`` or ``"float32"``: what the model's products run in (recorded in every seed file)."""
        return "bfloat16" if self.amp else "float32"

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
    # bf16 autocast and a frozen encoder; absent in older files = False (see RESULT_KEY_DEFAULTS)
    "amp", "freeze",
)
#: Value of a result key in files written before the key existed (so old files stay valid);
#: keys not listed here default to ``None``.
RESULT_KEY_DEFAULTS: dict[str, Any] = {"amp": False, "freeze": False}


class ConfigMismatchError(UserError, RuntimeError):
    """A finished seed file exists for a different configuration (see the module docstring)."""


def recorded_config(config: FinetuneConfig) -> dict[str, Any]:
    """The configuration as a seed file records it: every option plus the content hashes of the
    checkpoint (``input_model_sha256``) and of a CSV data set (``dataset_sha256``)."""
    d = config.to_dict()
    d["input_model_sha256"] = sha256_file(config.input_model_file)
    # a CSV dataset is compared by content, like the checkpoint (editing the file invalidates old seeds)
    d["dataset_sha256"] = sha256_file(config.dataset) if Path(config.dataset).suffix and Path(config.dataset).is_file() else None
    return d


def config_mismatch(recorded: dict, current: dict) -> list[str]:
    """``"key: file has X, now Y"`` for every result key on which two recorded configurations differ
    (a key absent from an older file counts as its :data:`RESULT_KEY_DEFAULTS` value)."""
    return [
        f"{k}: file has {recorded.get(k, RESULT_KEY_DEFAULTS.get(k))!r}, now {current.get(k)!r}"
        for k in RESULT_KEYS
        if recorded.get(k, RESULT_KEY_DEFAULTS.get(k)) != current.get(k)
    ]
