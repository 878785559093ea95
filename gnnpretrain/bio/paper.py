"""Reading the paper's processed bio dataset (snap-stanford/pretrain-gnns ``bio/dataset/...``).

What is supported (documented in bio/README.md): a folder ``<root>`` holding
``processed/geometric_data_processed.pt`` (or the ``.pt`` file itself) as written by the reference's
``BioDataset`` — a pickled ``(data, slices)`` pair of PyG 1.x, where ``data`` is an old
``torch_geometric.data.Data`` (attributes in its ``__dict__``) or, if re-saved by PyG 2.x, a ``Data``
or a plain dict. The old class cannot be unpickled by today's PyG, so a restricted unpickler maps it
to a plain attribute holder (no code from the file runs) and the tensors are re-packed into :class:`~gnnpretrain.bio.dataset.EgoData`.

Field mapping: ``x`` (float ones) → long ones ``[N, 1]``; ``edge_index``, ``edge_attr`` (``[E, 9]``,
same column layout as ours), ``center_node_idx`` and ``species_id`` kept; ``go_target_downstream``
(``[40]`` per graph, 0 = negative *or* no data, as the reference) → ``y`` float ``[1, 40]``;
``go_target_pretrain`` (``[5000]``) → ``y_pretrain`` uint8 ``[1, 5000]`` with ``labelled`` = True.
The unsupervised file has no GO targets; its graphs get ``labelled`` = False and no ``y``.
Splits: :func:`paper_species_split` reproduces the reference's species split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

from gnnpretrain.bio.dataset import EgoData
from gnnpretrain.safeload import LegacyObject, load_legacy_pyg

#: The reference's species split: train+valid species and the test species (human).
PAPER_TRAIN_VALID_SPECIES = (3702, 6239, 511145, 7227, 10090, 4932, 7955)
PAPER_TEST_SPECIES = (9606,)


def _fields(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        d = dict(obj)
    elif isinstance(obj, Data):
        d = obj.to_dict()
    elif isinstance(obj, LegacyObject):
        d = dict(obj.__dict__)
        if "_store" in d:  # a PyG 2.x Data object: its fields live in the storage
            d = dict(d["_store"])
    else:
        raise ValueError(f"unrecognised processed bio data object of type {type(obj).__name__}")
    return {k: v for k, v in d.items() if not k.startswith("_") and v is not None}


def read_paper_file(path: str | Path, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(fields, slices)`` from a reference ``geometric_data_processed.pt``.

    Read with ``weights_only=True`` and a fixed list of stand-in classes for PyG's old ``Data`` /
    ``Batch`` (:func:`gnnpretrain.safeload.load_legacy_pyg`): nothing in the file runs; a file that
    names other classes is refused unless ``trust_pickle=True`` (only for files you trust)."""
    path = Path(path)
    if path.is_dir():
        path = path / "processed" / "geometric_data_processed.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"paper bio dataset not found at {path}: expected the reference's processed file "
            f"(<root>/processed/geometric_data_processed.pt from the pretrain-gnns bio download)"
        )
    out = load_legacy_pyg(path, trust_pickle=trust_pickle, what="paper bio dataset file")
    if not (isinstance(out, (tuple, list)) and len(out) >= 2):
        raise ValueError(f"{path}: expected a (data, slices) pair as written by InMemoryDataset; got {type(out).__name__}")
    data, slices = out[0], out[1]
    fields, slices = _fields(data), dict(slices)
    for key in ("edge_index", "edge_attr", "center_node_idx"):
        if key not in fields or key not in slices:
            raise ValueError(f"{path}: the processed bio data lacks '{key}' (found {sorted(fields)})")
    return fields, slices


def _node_counts(fields: dict, slices: dict) -> torch.Tensor:
    if "x" in slices:
        return slices["x"][1:] - slices["x"][:-1]
    raise ValueError("processed bio data has no 'x' slices; cannot recover node counts")


def paper_data_list(path: str | Path, trust_pickle: bool = False) -> list[EgoData]:
    """Convert the reference's processed file into a list of :class:`EgoData` (our field layout)."""
    fields, slices = read_paper_file(path, trust_pickle=trust_pickle)
    n_graphs = len(slices["edge_index"]) - 1
    counts = _node_counts(fields, slices)
    has_go = "go_target_downstream" in fields
    out = []
    for g in range(n_graphs):
        def part(key: str) -> torch.Tensor:
            s = slices[key]
            return fields[key].narrow(-1 if key == "edge_index" else 0, int(s[g]), int(s[g + 1] - s[g]))

        n = int(counts[g])
        d = EgoData(
            x=torch.ones(n, 1, dtype=torch.long),
            edge_index=part("edge_index").long(),
            edge_attr=part("edge_attr").to(torch.uint8),
            center_node_idx=part("center_node_idx").long().view(1),
            labelled=torch.tensor([has_go]),
            num_nodes=n,
        )
        if "species_id" in fields:
            d.species_id = part("species_id").long().view(1)
        if has_go:
            d.y = part("go_target_downstream").float().view(1, -1)
            d.y_pretrain = part("go_target_pretrain").to(torch.uint8).view(1, -1)
        out.append(d)
    return out


class PaperBioDataset(InMemoryDataset):
    """The paper's processed bio dataset in our layout (``root`` = the reference's dataset folder,
    e.g. ``dataset/supervised``); nothing is written. ``split`` holds the species split when the
    data has species ids and GO targets (see :func:`paper_species_split`)."""

    def __init__(self, root: str | Path, transform=None, split_seed: int = 42, trust_pickle: bool = False):
        self.source = Path(root)
        super().__init__(None, transform=transform)
        data_list = paper_data_list(self.source, trust_pickle=trust_pickle)
        self.data, self.slices = self.collate(data_list)
        first = data_list[0] if data_list else None
        self.num_tasks = int(first.y.size(1)) if first is not None and hasattr(first, "y") else 0
        self.num_pretrain_tasks = int(first.y_pretrain.size(1)) if first is not None and hasattr(first, "y_pretrain") else 0
        self.task_names = [f"go_downstream_{i}" for i in range(self.num_tasks)]
        species = torch.cat([d.species_id for d in data_list]).numpy() if data_list and hasattr(first, "species_id") else None
        self.split = paper_species_split(species, split_seed) if species is not None and self.num_tasks else {}
        self.meta = {"source": str(self.source), "format": "pretrain-gnns processed BioDataset",
                     "split": "species" if self.split else None}

    def get(self, idx: int) -> Data:
        data = super().get(idx)
        data.edge_attr = data.edge_attr.float()
        return data


def paper_species_split(species: np.ndarray, seed: int = 42) -> dict[str, torch.Tensor]:
    """The reference's split: graphs of the 7 train/valid species shuffled (Python ``random`` with
    ``seed``, as its ``random_split``) into 85 % train / 15 % valid; human graphs shuffled the same way
    and halved into ``test_pretrain`` (its "test_easy") and ``test`` (its "test_hard", reported)."""
    import random

    species = np.asarray(species)
    tv = np.flatnonzero(np.isin(species, PAPER_TRAIN_VALID_SPECIES))
    te = np.flatnonzero(np.isin(species, PAPER_TEST_SPECIES))
    if len(tv) + len(te) != len(species):
        raise ValueError("paper species split: some graphs belong to neither the train/valid nor the test species")

    def shuffle_split(idx: np.ndarray, frac_a: float, frac_b: float) -> tuple[np.ndarray, np.ndarray]:
        order_list = list(range(len(idx)))
        random.seed(seed)
        random.shuffle(order_list)
        order = np.asarray(order_list, dtype=np.int64)
        cut = int(frac_a * len(idx))
        return idx[order[:cut]], idx[order[cut: cut + int(frac_b * len(idx))]]

    train, valid = shuffle_split(tv, 0.85, 0.15)
    test_pre, test = shuffle_split(te, 0.5, 0.5)
    out = {"train": train, "valid": valid, "test_pretrain": test_pre, "test": test}
    out = {k: torch.as_tensor(np.sort(v), dtype=torch.long) for k, v in out.items()}
    out["supervised_pretrain"] = torch.sort(torch.cat([out["train"], out["valid"], out["test_pretrain"]])).values
    out["unlabelled"] = torch.zeros(0, dtype=torch.long)
    return out
