"""The chem downstream tasks for ``scripts/finetune.py`` (registered on import, like the bio ones).

* the MoleculeNet classification sets by name (``bbbp``, ``tox21``, ... :data:`MOLECULENET_NAMES`):
  :class:`gnnpretrain.chem.moleculenet.MoleculeNet` split by
  :func:`gnnpretrain.splits.split_dataset` (scaffold split by default, the paper's protocol);
* a user's CSV and the MoleculeACE targets: the family registered by :mod:`gnnpretrain.chem.csvtask`,
  imported here so that loading the chem domain brings it along.

Why here and not in :mod:`gnnpretrain.train.tasks`: the registry is generic and imports no domain;
each domain's modules build on its :class:`~gnnpretrain.train.tasks.Task` and register themselves.
"""

from __future__ import annotations

import os
from typing import Any

from gnnpretrain.chem import csvtask  # noqa: F401  (registers the CSV / MoleculeACE family)
from gnnpretrain.train.tasks import Task, register_task_loader

__all__ = ["load_moleculenet_task", "chem_input"]


def _names() -> tuple[str, ...]:
    from gnnpretrain.chem.moleculenet import MOLECULENET_NAMES

    return tuple(MOLECULENET_NAMES)


def chem_input(featurizer: str) -> str:
    """The ``GNN(input=...)`` of a chem featurizer (the input encoder has the featurizer's name)."""
    if featurizer not in ("reference", "ogb"):
        raise ValueError(f"chem featurizer must be 'reference' or 'ogb', got {featurizer!r}")
    return featurizer


def load_moleculenet_task(
    name: str,
    *,
    data_root: str | os.PathLike | None,
    cache: str | os.PathLike | None,
    split: str,
    featurizer: str,
    split_seed: int,
    **options: Any,
) -> Task:
    """A MoleculeNet benchmark as a :class:`Task` (the chem domain's loader)."""
    if options:
        raise ValueError(f"options {sorted(options)} only apply to a CSV dataset (a .csv path), not to {name!r}")
    from gnnpretrain.chem.moleculenet import MoleculeNet
    from gnnpretrain.splits import split_dataset

    model_input = chem_input(featurizer)
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


register_task_loader("chem", load_moleculenet_task, names=_names)
