"""What ``--dataset`` means for pre-training, per domain, and the loader that feeds the loop.

Datasets are registered per domain (``PRETRAIN_DATASETS[domain][name]``) so that the bio domain can
add its own (``@register_pretrain_dataset("...", domain="bio")``). A registered builder is called as
``builder(name, data_root=..., cache=..., max_molecules=..., smiles_column=..., featurizer=...,
num_workers=..., **options)`` and returns a :class:`gnnpretrain.data.GraphStore` or a PyG dataset.
For chem, any name that is a file path (``*.csv``, ``*.csv.gz``, ``*.smi``...) is a SMILES corpus.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = [
    "PRETRAIN_DATASETS",
    "register_pretrain_dataset",
    "load_pretrain_dataset",
    "make_pretrain_loader",
    "dataset_num_tasks",
    "PATH_KEY",
]

#: ``PRETRAIN_DATASETS[domain][name] -> builder``; the entry ``PATH_KEY`` handles file paths.
PRETRAIN_DATASETS: dict[str, dict[str, Callable[..., Any]]] = {}
PATH_KEY = "<path>"


def register_pretrain_dataset(name: str, domain: str = "chem") -> Callable[[Callable], Callable]:
    """Decorator registering a pre-training dataset builder under ``(domain, name)``.

    Use ``name=PATH_KEY`` for the builder that handles a file path given as ``--dataset``.
    """

    def deco(fn: Callable) -> Callable:
        PRETRAIN_DATASETS.setdefault(domain, {})[name] = fn
        return fn

    return deco


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or Path(name).suffix != "" or Path(name).exists()


def _corpus(name, *, data_root=None, cache=None, max_molecules=None, smiles_column=None, featurizer="reference",
            num_workers=None, **options):
    from gnnpretrain.chem.corpus import load_corpus

    if options:
        raise TypeError(f"dataset {name!r} takes no options {sorted(options)} (those are for chembl)")
    return load_corpus(
        name, data_root=data_root, cache=cache, max_molecules=max_molecules, smiles_column=smiles_column,
        featurizer=featurizer, num_workers=num_workers,
    )


register_pretrain_dataset("zinc", "chem")(_corpus)
register_pretrain_dataset("zinc_standard_agent", "chem")(_corpus)
register_pretrain_dataset(PATH_KEY, "chem")(_corpus)


@register_pretrain_dataset("chembl", "chem")
def _chembl(name, *, data_root=None, cache=None, max_molecules=None, smiles_column=None, featurizer="reference",
            num_workers=None, **options):
    from gnnpretrain.chem.chembl import ChEMBL

    if smiles_column is not None:
        raise ValueError("--smiles-column applies to a CSV corpus, not to the chembl dataset")
    ds = ChEMBL(root=data_root, cache=cache, featurizer=featurizer, **options)
    if max_molecules is not None and max_molecules < len(ds):
        ds = ds[: int(max_molecules)]
    return ds


def load_pretrain_dataset(
    name: str,
    domain: str = "chem",
    *,
    data_root: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    max_molecules: int | None = None,
    smiles_column: str | None = None,
    featurizer: str = "reference",
    num_workers: int | None = None,
    **options: Any,
):
    """Resolve ``--dataset`` for ``domain`` and build it; an empty result is an error."""
    if domain not in PRETRAIN_DATASETS:
        raise ValueError(f"no pre-training datasets registered for domain {domain!r}; known domains: {sorted(PRETRAIN_DATASETS)}")
    if max_molecules is not None and int(max_molecules) < 1:
        raise ValueError(f"--max-molecules must be a positive integer, got {max_molecules}")
    table = PRETRAIN_DATASETS[domain]
    if name in table:
        builder = table[name]
    elif PATH_KEY in table and _looks_like_path(str(name)):
        if not Path(name).expanduser().exists():
            raise FileNotFoundError(f"--dataset {name!r}: no such file; give a corpus file or one of {sorted(k for k in table if k != PATH_KEY)}")
        builder = table[PATH_KEY]
        name = str(Path(name).expanduser())
    else:
        names = sorted(k for k in table if k != PATH_KEY)
        extra = " or a corpus file path" if PATH_KEY in table else ""
        raise ValueError(f"unknown pre-training dataset {name!r} for domain {domain!r}; choose one of {names}{extra}")
    ds = builder(
        name, data_root=data_root, cache=cache, max_molecules=max_molecules, smiles_column=smiles_column,
        featurizer=featurizer, num_workers=num_workers, **options,
    )
    if len(ds) == 0:
        raise ValueError(f"pre-training dataset {name!r} is empty (after parsing and filtering); nothing to train on")
    return ds


def dataset_num_tasks(ds) -> int:
    """Number of label columns of a labelled dataset (``num_tasks`` attribute, else ``y``'s width)."""
    n = getattr(ds, "num_tasks", None)
    if isinstance(n, int) and n > 0:
        return n
    y = getattr(ds, "y", None)
    if y is None:
        y = getattr(ds[0], "y", None)
    if y is None:
        raise ValueError("this dataset has no labels (y); supervised pre-training needs a labelled dataset such as chembl")
    return int(y.view(y.shape[0], -1).shape[-1]) if y.dim() > 1 else 1


class _EpochDataLoader:
    """A PyG DataLoader over a map-style dataset with a (distributed) sampler and ``set_epoch``.

    Shuffling is seeded by ``(seed, epoch)`` through ``DistributedSampler`` (also with one process),
    so an epoch's order is the same after a resume.
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool, seed: int, rank: int, world_size: int,
                 num_workers: int, drop_last: bool) -> None:
        from torch.utils.data.distributed import DistributedSampler
        from torch_geometric.loader import DataLoader

        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.loader = DataLoader(
            dataset, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers, drop_last=drop_last,
            persistent_workers=False,
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


def make_pretrain_loader(
    dataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    drop_last: bool = False,
):
    """A loader with ``set_epoch`` over a GraphStore (vectorised collation, DDP shards) or a PyG dataset."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer, got {batch_size}")
    if hasattr(dataset, "collate") and hasattr(dataset, "node_ptr"):
        from gnnpretrain.data import GraphStoreLoader

        return GraphStoreLoader(
            dataset, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, rank=rank, world_size=world_size,
            prefetch=1 if num_workers and num_workers > 0 else 0,
        )
    return _EpochDataLoader(dataset, batch_size, shuffle, seed, rank, world_size, int(num_workers or 0), drop_last)
