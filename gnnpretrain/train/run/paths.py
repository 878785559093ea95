"""Where fine-tuning results live: run folders, per-data-set folders and seed files.

``<output>/<dataset label>/seed<k>.json``; the output defaults to ``<domain>/runs/finetune/<name>``
in the checkout, with a name from the architecture and the checkpoint's label (stem + content hash),
so two checkpoints both called ``model.pth`` never share a folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gnnpretrain.paths import REPO_ROOT
from gnnpretrain.train.run.config import FinetuneConfig, sha256_file

__all__ = ["safe_name", "checkpoint_label", "default_output", "dataset_dirname", "output_dir", "seed_path"]

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
    return safe_name(f"{stem}-{sha256_file(str(p))[:8]}")


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
    if ":" not in dataset and not dataset.lower().endswith((".csv", ".csv.gz")):
        return dataset  # a registered data set's name: no need for the CSV module (nor for RDKit)
    from gnnpretrain.chem.csvtask import dataset_label

    return dataset_label(dataset)


def output_dir(config: FinetuneConfig) -> Path:
    """``<output>/<dataset label>``, filesystem-safe (``string_human:max_centres=3000`` has no ``:``/``=``)."""
    return (Path(config.output) if config.output else default_output(config)) / safe_name(
        dataset_dirname(config.dataset))


def seed_path(config: FinetuneConfig, seed: int) -> Path:
    return output_dir(config) / f"seed{seed}.json"
