"""Downstream-task registry: one place that turns ``(domain, name)`` into data + split + model options.

Fine-tuning code never needs to know where a dataset comes from or how it is split: it asks
:func:`get_task` for a :class:`Task` and gets the dataset, the three index tensors, the number of
binary tasks, the extra model options the domain needs (``input=...``, ``center_pool=...``) and the
metric name. A domain is a loader function registered with :func:`register_task_loader`; a family
of further dataset names within a domain (file paths, ``prefix:NAME``) is a loader registered with
:func:`register_task_family`. This module knows no domain: each registers itself on import, as
pre-training strategies do (:func:`gnnpretrain.strategies.register_strategy`).

* ``"chem"``: :mod:`gnnpretrain.chem.tasks` (the MoleculeNet classification sets, scaffold split by
  default, the paper's protocol) and the family :mod:`gnnpretrain.chem.csvtask` (a user's CSV, a path
  ending in ``.csv``, and the MoleculeACE regression targets, ``moleculeace:NAME``).
* ``"bio"``: :mod:`gnnpretrain.bio.tasks`.
* a domain not registered yet is looked up by importing ``gnnpretrain.<domain>`` and then
  ``gnnpretrain.<domain>.tasks``, so that their import-time registration runs; nothing here has to
  change to add one.

Every task :func:`get_task` returns has learnable targets on its training split
(:func:`check_task_targets`), so a constant or overflowing regression column, or a classification
task without both classes to learn from, is one line before any training.
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
    "register_task_family",
    "check_task_targets",
    "dataset_display",
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
_FAMILIES: dict[str, dict[str, tuple[Callable[[str], bool], TaskLoader, str]]] = {}


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


def register_task_family(
    domain: str,
    family: str,
    accepts: Callable[[str], bool],
    fn: TaskLoader,
    describe: str = "",
) -> None:
    """Register (or replace) a family of dataset names within ``domain``, with a loader of its own.

    Why: a domain's datasets need not all come from one module. The chem CSV and MoleculeACE tasks
    (:mod:`gnnpretrain.chem.csvtask`) build on this module's :class:`Task`; registering themselves here,
    rather than being imported by the chem loader, keeps the import arrows pointing one way.

    Args:
        domain: the domain the names belong to (``"chem"``).
        family: a key for the family (``"csv"``); registering it again replaces it.
        accepts: ``accepts(name) -> bool`` for the names the family loads (``"x.csv"``,
            ``"moleculeace:CHEMBL1862_Ki"``); they pass :func:`get_task`'s name check.
        fn: the loader, called like a domain loader (``fn(name, data_root=..., ...)`` -> :class:`Task`),
            with the extra keyword options given to :func:`get_task`.
        describe: a few words for the "unknown dataset" message (``"a CSV file path"``).
    """
    if not callable(fn) or not callable(accepts):
        raise TypeError(f"register_task_family({domain!r}, {family!r}, accepts, fn): both must be callable")
    _FAMILIES.setdefault(domain, {})[family] = (accepts, fn, describe)


def _family_of(domain: str, name: str) -> TaskLoader | None:
    for accepts, fn, _ in _FAMILIES.get(domain, {}).values():
        if accepts(name):
            return fn
    return None


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
    if _family_of(domain, name) is not None:
        return True
    return (not names and accepts is None and not _FAMILIES.get(domain)) or name in names or bool(accepts and accepts(name))


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
        described = [d for _, _, d in _FAMILIES.get(domain, {}).values() if d]
        extra = f" (or {', or '.join(described)})" if described else ""
        raise ValueError(f"unknown {domain} dataset {name!r}: expected one of {', '.join(task_names(domain))}{extra}")
    options = {k: v for k, v in options.items() if v is not None}
    family = _family_of(domain, name)
    task = (family or loader)(name, data_root=data_root, cache=cache, split=split, featurizer=featurizer,
                              split_seed=split_seed, **options)
    if not isinstance(task, Task):
        raise TypeError(f"the {domain!r} task loader returned {type(task).__name__}, expected a Task")
    check_task_targets(task)
    return task


def dataset_display(domain: str, name: str) -> str:
    """How a dataset is named in one-line summaries: ``chem/bbbp`` for a registered name, a file path as
    the user gave it (``/data/mols.csv``, not ``chem//data/mols.csv``)."""
    name = str(name)
    if "/" in name or os.sep in name or name.lower().endswith((".csv", ".csv.gz")):
        return name
    return f"{domain}/{name}"


def check_task_targets(task: Task, every_column: bool = False) -> None:
    """Refuse, before any training, a task whose training split leaves nothing to learn.

    Regression (every domain): each target column must be finite in float32 on every split, stay
    finite once standardised with the training split's mean and std, and take at least
    :data:`~gnnpretrain.train.objectives.MIN_DISTINCT_REGRESSION_VALUES` distinct values on the
    training split (a constant column would otherwise train and report an RMSE as if something had been
    learned). Classification: with ``every_column`` (columns a user chose, e.g. a CSV's
    ``--target-columns``) each column needs both classes among its training labels; otherwise at least
    one task must (single-class tasks of a many-task benchmark such as ToxCast are kept: the paper trains
    on them, and ROC-AUC skips them). Raises :class:`~gnnpretrain.train.objectives.UnlearnableTargetError`,
    one line naming the column, the file (when the task has one) and what to do.
    """
    from gnnpretrain.train.objectives import UnlearnableTargetError, target_problems

    labels = {part: _labels(task, part) for part in ("train", "valid", "test")}
    problems = target_problems(labels, task.task_type)
    if not problems:
        return
    if task.task_type == "classification" and not every_column and len(problems) < task.num_tasks:
        return
    names = list(task.info.get("task_names") or [])
    j, what = problems[0]
    label = names[j] if j < len(names) else f"task {j}"
    more = f" (and {len(problems) - 1} more column(s): {', '.join(repr(names[k]) if k < len(names) else str(k) for k, _ in problems[1:4])})" \
        if len(problems) > 1 else ""
    source = task.info.get("source") or f"{task.domain}/{task.name}"
    raise UnlearnableTargetError(f"{source}: target column {label!r} {what}{more}")


def _labels(task: Task, part: str) -> torch.Tensor:
    """The ``[n, num_tasks]`` labels of one split (the split's graphs are built once and kept for training)."""
    graphs = task.graphs(part)
    if not graphs:
        return torch.empty(0, task.num_tasks)
    return torch.cat([g.y.reshape(1, -1).double() for g in graphs], dim=0)
