"""What a fine-tune trains on and with: the task, the model, loaders, evaluation batches, split checks.

:func:`build_model` is the one place fine-tuning constructs ``GNNGraphPred`` and loads a pre-trained
encoder, so every engine builds the same model from the same config.
"""

from __future__ import annotations

import torch

from gnnpretrain.errors import UserError
from gnnpretrain.metrics import NoValidTaskError
from gnnpretrain.train.run.config import FinetuneConfig
from gnnpretrain.train.tasks import Task, get_task

__all__ = ["load_task", "build_model", "train_loader", "eval_batches", "check_split_has_classes"]


def load_task(config: FinetuneConfig) -> Task:
    return get_task(
        config.domain, config.dataset, data_root=config.data_root, cache=config.cache,
        split=config.split, featurizer=config.featurizer, split_seed=config.split_seed,
        smiles_column=config.smiles_column, target_columns=config.target_columns, task_type=config.task_type,
    )


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
    if config.freeze:  # only the head trains (GNNGraphPred.freeze_encoder: no gradients, eval mode)
        model.freeze_encoder()
    return model


def train_loader(task: Task, batch_size: int, seed: int, num_workers: int):
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


def eval_batches(task: Task, part: str, batch_size: int) -> list:
    """Pre-collated evaluation batches of ``part`` (fixed order), built once per task and batch size."""
    from torch_geometric.data import Batch

    cache = task.__dict__.setdefault("_eval_batches", {})
    key = (part, batch_size)
    if key not in cache:
        graphs = task.graphs(part)
        cache[key] = [Batch.from_data_list(graphs[i:i + batch_size]) for i in range(0, len(graphs), batch_size)]
    return cache[key]


def check_split_has_classes(task: Task) -> None:
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
