"""The bio downstream task for ``scripts/finetune.py --domain bio`` (registered on import).

Dataset names:

* ``string_human`` (or ``string_human:key=value,...`` with :class:`~gnnpretrain.bio.dataset.BioConfig`
  fields; ``$GNNPRETRAIN_BIO_OPTIONS`` too) — :class:`gnnpretrain.bio.dataset.BioEgoNetworks` built
  from the data root; 40 GO biological-process tasks; split = the dataset's recorded protein-disjoint split
  (``--split default``; the CLI's chem default ``scaffold`` is taken to mean the same), or
  ``--split random`` (labelled graphs shuffled with ``--split-seed``, 80/10/10).
* ``paper:<folder>`` — the paper's processed supervised bio dataset (``<folder>/processed/
  geometric_data_processed.pt``), with the reference's species split (test = held-out human half).

Model options: ``input="bio"``, ``center_pool=True`` (the reference's bio head).
"""

from __future__ import annotations

import os

import torch

from gnnpretrain.train.tasks import Task, register_task_loader

NAMES = ("string_human",)
DEFAULT_SPLITS = ("default", "scaffold", "protein", "species")


def _random_split(labelled_idx: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(int(seed))
    perm = labelled_idx[torch.randperm(len(labelled_idx), generator=g)]
    n_tr, n_va = int(0.8 * len(perm)), int(0.1 * len(perm))
    return perm[:n_tr].sort().values, perm[n_tr:n_tr + n_va].sort().values, perm[n_tr + n_va:].sort().values


def load_bio_task(name: str, *, data_root: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                  split: str = "default", featurizer: str = "reference", split_seed: int = 0) -> Task:
    """Build the :class:`Task` for a bio dataset name (see module docstring)."""
    if name.startswith("paper:"):
        from gnnpretrain.bio.paper import PaperBioDataset

        ds = PaperBioDataset(name.split(":", 1)[1], split_seed=split_seed if split_seed else 42)
        if not ds.split:
            raise ValueError(f"{name}: this processed file has no GO targets/species ids, so it cannot be fine-tuned on "
                             "(use the reference's 'supervised' folder)")
        method = "species"
        sp = ds.split
    elif name.partition(":")[0] in NAMES:
        from gnnpretrain.bio.dataset import load_named

        ds = load_named(name, data_root, cache)
        sp = ds.split
        method = ds.meta["split"]["method"]
    else:
        raise ValueError(f"unknown bio dataset {name!r}: expected one of {NAMES} (optionally ':key=value,...') "
                         "or 'paper:<folder>'")
    if split in DEFAULT_SPLITS:
        train, valid, test = sp["train"], sp["valid"], sp["test"]
    elif split == "random":
        labelled = torch.sort(torch.cat([sp["train"], sp["valid"], sp["test"], sp.get("test_pretrain", torch.zeros(0, dtype=torch.long))])).values
        train, valid, test = _random_split(labelled, split_seed)
        method = "random"
    else:
        raise ValueError(f"bio split must be one of {DEFAULT_SPLITS + ('random',)}; got {split!r}")
    return Task(
        domain="bio", name=name, dataset=ds, train_idx=train, valid_idx=valid, test_idx=test,
        num_tasks=int(ds.num_tasks), model_kwargs={"input": "bio", "center_pool": True}, metric="roc_auc",
        split=method,
        info={"num_graphs": len(ds), "task_names": list(ds.task_names), "dataset_meta_split": ds.meta.get("split"),
              "dataset_config": ds.meta.get("config"), "dataset_summary": {k: v for k, v in ds.meta.get("summary", {}).items() if k != "positives_per_task"}},
    )


register_task_loader("bio", load_bio_task, names=None)
