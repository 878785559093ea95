"""Task packs: featurized, split downstream tasks as plain tensors, for machines without RDKit.

Why: a GPU machine lent for a few minutes has torch and PyG but no RDKit (nor the raw CSVs), and what
travels to it is capped at 64 MiB. A pack holds each task exactly as :func:`gnnpretrain.train.tasks.get_task`
built it here — the graphs of the reference featurizer, the scaffold split's indices, the task's
head width and model options — in compact dtypes (labels as int8 with -1 for missing; atom and bond
features as uint8; edge endpoints as graph-local uint8/int16), one ``<name>.pt`` per task, readable
with ``weights_only=True``. :func:`use_pack` registers a ``chem`` task loader that serves the packed
tasks, so fine-tuning there computes from the same graphs, split and config hash as here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from gnnpretrain.errors import UserError
from gnnpretrain.safeload import load_torch
from gnnpretrain.train.tasks import Task, register_task_loader
from gnnpretrain.utils import atomic_torch_save

__all__ = ["pack_task", "load_packed_task", "use_pack", "PackedGraphs", "TaskPackError"]

PACK_FORMAT = 1


class TaskPackError(UserError, ValueError):
    """A task asked of a pack is not in it, or the pack file is not a task pack."""


def _small_int(t: torch.Tensor) -> torch.Tensor:
    """The narrowest unsigned/signed integer dtype that holds ``t`` exactly."""
    lo, hi = (int(t.min()), int(t.max())) if t.numel() else (0, 0)
    for dtype in (torch.uint8, torch.int16, torch.int32):
        info = torch.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return t.to(dtype)
    return t.long()


def pack_task(task: Task, path: str | os.PathLike) -> int:
    """Write ``task`` (graphs, split, head width, model options) to ``path``; returns its size in bytes."""
    graphs = [task.dataset[i] for i in range(len(task.dataset))]
    nodes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
    edges = torch.tensor([g.edge_index.size(1) for g in graphs], dtype=torch.long)
    y = torch.cat([g.y.reshape(1, -1).float() for g in graphs])
    if not bool(((y == 0) | (y == 1) | torch.isnan(y)).all()):
        raise TaskPackError(f"task {task.name}: only 0/1/missing labels can be packed (classification tasks)")
    labels = torch.where(torch.isnan(y), torch.full_like(y, -1), y).to(torch.int8)
    state = {
        "format": PACK_FORMAT,
        "meta": json.dumps({
            "domain": task.domain, "name": task.name, "num_tasks": int(task.num_tasks), "metric": task.metric,
            "split": task.split, "task_type": task.task_type, "model_kwargs": task.model_kwargs, "info": task.info,
        }, sort_keys=True),
        "x": _small_int(torch.cat([g.x for g in graphs])),
        "edge_index": _small_int(torch.cat([g.edge_index for g in graphs], dim=1)),  # graph-local endpoints
        "edge_attr": _small_int(torch.cat([g.edge_attr for g in graphs])),
        "num_nodes": _small_int(nodes), "num_edges": _small_int(edges), "y": labels,
        "train_idx": task.train_idx.int(), "valid_idx": task.valid_idx.int(), "test_idx": task.test_idx.int(),
    }
    atomic_torch_save(state, path)
    return Path(path).stat().st_size


class PackedGraphs:
    """The packed graphs as an indexable dataset (``[i] -> Data``, as a PyG dataset)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self._x, self._ei, self._ea = state["x"].long(), state["edge_index"].long(), state["edge_attr"].long()
        y = state["y"].float()
        self._y = torch.where(y < 0, torch.full_like(y, float("nan")), y)
        n, e = state["num_nodes"].long(), state["num_edges"].long()
        self._nptr = torch.cat([torch.zeros(1, dtype=torch.long), n.cumsum(0)])
        self._eptr = torch.cat([torch.zeros(1, dtype=torch.long), e.cumsum(0)])

    def __len__(self) -> int:
        return int(self._y.size(0))

    def __getitem__(self, i: int):
        from torch_geometric.data import Data

        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"graph {i} out of range [0, {len(self)})")
        n0, n1 = int(self._nptr[i]), int(self._nptr[i + 1])
        e0, e1 = int(self._eptr[i]), int(self._eptr[i + 1])
        return Data(x=self._x[n0:n1], edge_index=self._ei[:, e0:e1], edge_attr=self._ea[e0:e1],
                    y=self._y[i:i + 1], num_nodes=n1 - n0)


def load_packed_task(path: str | os.PathLike) -> Task:
    """The :class:`Task` stored by :func:`pack_task`."""
    state = load_torch(path, what="task pack")
    if not isinstance(state, dict) or state.get("format") != PACK_FORMAT:
        raise TaskPackError(f"{path} is not a task pack of format {PACK_FORMAT}; recreate it with "
                            "scripts/campaign.py --pack")
    meta: dict[str, Any] = json.loads(state["meta"])
    return Task(
        domain=meta["domain"], name=meta["name"], dataset=PackedGraphs(state),
        train_idx=state["train_idx"].long(), valid_idx=state["valid_idx"].long(), test_idx=state["test_idx"].long(),
        num_tasks=meta["num_tasks"], model_kwargs=meta["model_kwargs"], metric=meta["metric"], split=meta["split"],
        info={**meta["info"], "task_pack": Path(path).name}, task_type=meta["task_type"],
    )


def pack_name(name: str, split: str = "scaffold", featurizer: str = "reference", split_seed: int = 0) -> str:
    """File name of a packed task (everything that changes the graphs or the split is in it)."""
    return f"{name}-{split}-{split_seed}-{featurizer}.pt"


def use_pack(folder: str | os.PathLike, domain: str = "chem") -> list[str]:
    """Serve ``domain``'s tasks from the packs in ``folder`` (replacing its loader); returns their names.

    A task that is not packed is a :class:`TaskPackError` naming the pack folder, never a silent
    fallback to featurizing (which needs RDKit and the raw data)."""
    folder = Path(folder)
    names = sorted({p.name.split("-", 1)[0] for p in folder.glob("*.pt")})
    if not names:
        raise TaskPackError(f"{folder} holds no task packs (*.pt); make them with scripts/campaign.py --pack")

    def load(name: str, *, data_root: Any = None, cache: Any = None, split: str = "scaffold",
             featurizer: str = "reference", split_seed: int = 0, **options: Any) -> Task:
        path = folder / pack_name(name, split, featurizer, split_seed)
        if options or not path.is_file():
            raise TaskPackError(f"task {domain}/{name} (split {split}, seed {split_seed}, featurizer {featurizer}) "
                                f"is not in the task pack {folder}: packed are {', '.join(names)}")
        return load_packed_task(path)

    register_task_loader(domain, load, names=tuple(names))
    return names


def pack_tasks(names: Sequence[str], folder: str | os.PathLike, *, data_root: str | None = None,
               cache: str | None = None, max_bytes: int | None = None) -> dict[str, int]:
    """Pack the chem tasks ``names`` (in order, scaffold split, reference featurizer) into ``folder``,
    stopping before the total would pass ``max_bytes``; returns ``{name: bytes}`` of those packed."""
    from gnnpretrain.train.tasks import get_task

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    for name in names:
        path = folder / pack_name(name)
        size = pack_task(get_task("chem", name, data_root=data_root, cache=cache), path)
        if max_bytes is not None and sum(sizes.values()) + size > max_bytes:
            path.unlink()
            break
        sizes[name] = size
    return sizes
