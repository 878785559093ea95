"""Downstream-task registry: one place that turns ``(domain, name)`` into data + split + model options.

Fine-tuning code never needs to know where a dataset comes from or how it is split: it asks
:func:`get_task` for a :class:`Task` and gets the dataset, the three index tensors, the number of
binary tasks, the extra model options the domain needs (``input=...``, ``center_pool=...``) and the
metric name. A domain is a loader function registered with :func:`register_task_loader`.

* ``"chem"`` (built in): the MoleculeNet classification sets via
  :class:`gnnpretrain.chem.moleculenet.MoleculeNet` and :func:`gnnpretrain.splits.split_dataset`
  (scaffold split by default, the paper's protocol); also a user's CSV (a path ending in ``.csv``) and
  the MoleculeACE regression targets (``moleculeace:NAME``), see :mod:`gnnpretrain.chem.csvtask`.
* other domains (``"bio"``): registered by their own package. If a domain is not registered yet,
  :func:`get_task` imports ``gnnpretrain.<domain>`` and then ``gnnpretrain.<domain>.tasks`` so that
  their import-time ``register_task_loader(...)`` call runs; nothing here has to change to add one.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch

__all__ = [
    "Task",
    "TaskLoader",
    "get_task",
    "register_task_loader",
    "task_names",
    "registered_domains",
    "accepts_dataset",
]


@dataclass
class Task:
    """Everything fine-tuning needs about one downstream dataset and its split.

    Attributes:
        domain, name: registry keys (``"chem"``, ``"bbbp"``).
        dataset: an indexable graph dataset (``dataset[i] -> Data`` with ``y`` ``[1, num_tasks]``,
            values 0/1/nan), typically a PyG ``InMemoryDataset`` supporting ``dataset[index_tensor]``.
        train_idx, valid_idx, test_idx: long tensors of indices into ``dataset``.
        num_tasks: number of binary labels per graph (the width of the prediction head).
        model_kwargs: extra ``GNNGraphPred`` keyword arguments the domain needs, e.g.
            ``{"input": "reference", "center_pool": False}`` for chem.
        metric: name of the evaluation metric (``"roc_auc"``: mean ROC-AUC over tasks; ``"rmse"``).
        task_type: ``"classification"`` (labels 0/1/nan, BCE) or ``"regression"`` (real values/nan,
            standardised MSE); see :mod:`gnnpretrain.train.objectives`.
        test_subsets: named boolean masks over ``test_idx`` scored separately as well (MoleculeACE's
            ``{"cliff": ...}``: the activity-cliff molecules of the test set).
        split: how the indices were made (``"scaffold"``, ``"random"``, ...), recorded in results.
        info: free-form provenance (dataset size, skipped molecules, ...), copied into result files.
    """

    domain: str
    name: str
    dataset: Any
    train_idx: torch.Tensor
    valid_idx: torch.Tensor
    test_idx: torch.Tensor
    num_tasks: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    metric: str = "roc_auc"
    split: str = "scaffold"
    info: dict[str, Any] = field(default_factory=dict)
    task_type: str = "classification"
    test_subsets: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in ("classification", "regression"):
            raise ValueError(f"task {self.domain}/{self.name}: task_type must be 'classification' or 'regression', got {self.task_type!r}")
        for key, mask in list(self.test_subsets.items()):
            mask = torch.as_tensor(mask, dtype=torch.bool).reshape(-1)
            if mask.numel() != len(torch.as_tensor(self.test_idx).reshape(-1)):
                raise ValueError(f"task {self.domain}/{self.name}: test subset {key!r} has {mask.numel()} entries, "
                                 f"the test split {len(self.test_idx)}")
            self.test_subsets[key] = mask
        for part in ("train", "valid", "test"):
            idx = torch.as_tensor(getattr(self, f"{part}_idx"), dtype=torch.long).reshape(-1)
            setattr(self, f"{part}_idx", idx)
            if idx.numel() == 0:
                raise ValueError(
                    f"task {self.domain}/{self.name}: the {part} split is empty (split={self.split!r}, "
                    f"{len(self.dataset)} graphs). Fine-tuning needs non-empty train, valid and test "
                    "splits; use a larger dataset or another split method."
                )
            if int(idx.min()) < 0 or int(idx.max()) >= len(self.dataset):
                raise ValueError(
                    f"task {self.domain}/{self.name}: {part} indices must lie in [0, {len(self.dataset)}), "
                    f"found [{int(idx.min())}, {int(idx.max())}]"
                )
        if int(self.num_tasks) < 1:
            raise ValueError(f"task {self.domain}/{self.name}: num_tasks must be >= 1, got {self.num_tasks}")

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_idx), "valid": len(self.valid_idx), "test": len(self.test_idx)}

    def graphs(self, part: str) -> list:
        """The ``Data`` objects of split ``part`` (``"train"``, ``"valid"``, ``"test"``), built once.

        Indexing an ``InMemoryDataset`` re-slices its flat storage on every access, which costs as
        much as a small model's forward pass; fine-tuning reads every graph once per epoch and per
        seed, so the split's graphs are materialised once and shared by all seeds of this task.
        """
        if part not in ("train", "valid", "test"):
            raise ValueError(f"part must be 'train', 'valid' or 'test', got {part!r}")
        cache = self.__dict__.setdefault("_graphs", {})
        if part not in cache:
            cache[part] = [self.dataset[int(i)] for i in getattr(self, f"{part}_idx")]
        return cache[part]


class TaskLoader(Protocol):
    def __call__(
        self,
        name: str,
        *,
        data_root: str | os.PathLike | None,
        cache: str | os.PathLike | None,
        split: str,
        featurizer: str,
        split_seed: int,
    ) -> Task: ...


_LOADERS: dict[str, TaskLoader] = {}
_NAMES: dict[str, tuple[str, ...] | Callable[[], Sequence[str]]] = {}
_ACCEPTS: dict[str, Callable[[str], bool]] = {}


def register_task_loader(
    domain: str,
    fn: TaskLoader,
    names: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    accepts: Callable[[str], bool] | None = None,
) -> None:
    """Register (or replace) the loader of a domain.

    Args:
        domain: the ``--domain`` value (``"bio"``).
        fn: called as ``fn(name, data_root=..., cache=..., split=..., featurizer=..., split_seed=...)``
            and must return a :class:`Task` (raise ``ValueError`` for an unknown name or split).
        names: the dataset names it accepts (or a zero-argument callable returning them), used for
            command-line choices and error messages.
        accepts: a predicate for further dataset names that are not in a fixed list (file paths,
            ``prefix:NAME`` families); such names pass :func:`get_task`'s name check.
        The loader may take extra keyword options (``get_task(..., **options)``), e.g. the CSV columns.
    """
    if not callable(fn):
        raise TypeError(f"register_task_loader({domain!r}, fn): fn must be callable, got {type(fn).__name__}")
    _LOADERS[domain] = fn
    if names is not None:
        _NAMES[domain] = names if callable(names) else tuple(names)
    if accepts is not None:
        _ACCEPTS[domain] = accepts
    else:
        _ACCEPTS.pop(domain, None)


def _ensure_domain(domain: str) -> TaskLoader:
    if domain not in _LOADERS:
        for mod in (f"gnnpretrain.{domain}", f"gnnpretrain.{domain}.tasks"):
            if domain in _LOADERS:
                break
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as err:
                # the module (or its package) does not exist: fine, the domain is just unknown. Any
                # other missing module is a broken import inside an existing package: let it surface.
                if not (err.name and mod.startswith(err.name)):
                    raise
                break
    if domain not in _LOADERS:
        raise ValueError(
            f"unknown task domain {domain!r}: registered domains are {sorted(_LOADERS)}. A domain package "
            f"registers itself with gnnpretrain.train.tasks.register_task_loader({domain!r}, fn)."
        )
    return _LOADERS[domain]


def registered_domains() -> list[str]:
    """Domains available now (importing ``gnnpretrain.bio`` may add ``"bio"``)."""
    return sorted(_LOADERS)


def task_names(domain: str = "chem") -> tuple[str, ...]:
    """Dataset names accepted by ``get_task(domain, ...)`` (empty if the domain did not declare them)."""
    _ensure_domain(domain)
    names = _NAMES.get(domain, ())
    return tuple(names() if callable(names) else names)


def accepts_dataset(domain: str, name: str) -> bool:
    """Whether ``get_task(domain, name)`` accepts ``name`` (a listed name or one the domain's predicate takes)."""
    _ensure_domain(domain)
    names = task_names(domain)
    accepts = _ACCEPTS.get(domain)
    return (not names and accepts is None) or name in names or bool(accepts and accepts(name))


def get_task(
    domain: str,
    name: str,
    data_root: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    split: str = "scaffold",
    featurizer: str = "reference",
    split_seed: int = 0,
    **options: Any,
) -> Task:
    """Load a downstream task: its dataset, split indices, head width and model options.

    ``split_seed`` only matters for randomised splits (``"random"``, ``"random_scaffold"``); the
    scaffold split is deterministic, as in the paper, so fine-tuning seeds never change the split.
    """
    loader = _ensure_domain(domain)
    if not accepts_dataset(domain, name):
        extra = " (or a CSV file path, or moleculeace:NAME)" if domain == "chem" else ""
        raise ValueError(f"unknown {domain} dataset {name!r}: expected one of {', '.join(task_names(domain))}{extra}")
    options = {k: v for k, v in options.items() if v is not None}
    task = loader(name, data_root=data_root, cache=cache, split=split, featurizer=featurizer, split_seed=split_seed,
                  **options)
    if not isinstance(task, Task):
        raise TypeError(f"the {domain!r} task loader returned {type(task).__name__}, expected a Task")
    return task


# ----------------------------------------------------------------------------------------------- chem
def _chem_names() -> tuple[str, ...]:
    from gnnpretrain.chem.moleculenet import MOLECULENET_NAMES

    return tuple(MOLECULENET_NAMES)


def _chem_input(featurizer: str) -> str:
    if featurizer not in ("reference", "ogb"):
        raise ValueError(f"chem featurizer must be 'reference' or 'ogb', got {featurizer!r}")
    return featurizer  # GNN(input=...) has an input encoder of the same name for each featurizer


def _load_chem_task(
    name: str,
    *,
    data_root: str | os.PathLike | None,
    cache: str | os.PathLike | None,
    split: str,
    featurizer: str,
    split_seed: int,
    **options: Any,
) -> Task:
    from gnnpretrain.chem import csvtask

    if csvtask.is_custom_dataset(name):
        return csvtask.load_task(name, data_root=data_root, cache=cache, split=split, featurizer=featurizer,
                                 split_seed=split_seed, **options)
    if options:
        raise ValueError(f"options {sorted(options)} only apply to a CSV dataset (a .csv path), not to {name!r}")
    from gnnpretrain.chem.moleculenet import MoleculeNet
    from gnnpretrain.splits import split_dataset

    model_input = _chem_input(featurizer)
    dataset = MoleculeNet(root=data_root, name=name, featurizer=featurizer, cache=cache)
    train_idx, valid_idx, test_idx = split_dataset(dataset, name=name, method=split, seed=split_seed)
    return Task(
        domain="chem",
        name=name,
        dataset=dataset,
        train_idx=train_idx,
        valid_idx=valid_idx,
        test_idx=test_idx,
        num_tasks=int(dataset.num_tasks),
        model_kwargs={"input": model_input, "center_pool": False},
        metric="roc_auc",
        split=split,
        info={"num_graphs": len(dataset), "featurizer": featurizer, "task_names": list(dataset.task_names)},
    )


def _chem_accepts(name: str) -> bool:
    from gnnpretrain.chem.csvtask import is_custom_dataset

    return is_custom_dataset(name)


register_task_loader("chem", _load_chem_task, names=_chem_names, accepts=_chem_accepts)
