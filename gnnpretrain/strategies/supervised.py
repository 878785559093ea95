"""Graph-level supervised pre-training (Hu et al. 2020, section 3.2): multi-task binary
classification on a large labelled set (ChEMBL in the paper), usually started from a node-level
checkpoint. Missing labels (``nan``) do not enter the loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import global_mean_pool

from .base import Strategy, encoder_out_dim, make_encoder, register_strategy

__all__ = ["Supervised"]


@register_strategy("supervised", domain="chem")
class Supervised(Strategy):
    """GNN + mean pooling + ``Linear(d, num_tasks)``, BCE over the labelled entries.

    Args:
        encoder_kwargs: keyword arguments of :class:`gnnpretrain.nn.GNN`.
        num_tasks: number of binary tasks (columns of ``batch.y``); the script takes it from the data.
        batch_auc: also log the batch's mean ROC-AUC (costs a host sync and sklearn per step).
    """

    needs_labels = True
    default_dataset = "chembl"

    def __init__(self, encoder_kwargs: dict, num_tasks: int = 1, batch_auc: bool = False) -> None:
        if int(num_tasks) < 1:
            raise ValueError(f"supervised: num_tasks must be >= 1, got {num_tasks}")
        super().__init__(encoder_kwargs, num_tasks=int(num_tasks), batch_auc=bool(batch_auc))
        self.num_tasks = int(num_tasks)
        self.batch_auc = bool(batch_auc)
        self.gnn = make_encoder(encoder_kwargs)
        self.graph_pred_linear = torch.nn.Linear(encoder_out_dim(self.gnn), self.num_tasks)

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        y = getattr(batch, "y", None)
        if y is None:
            raise ValueError("supervised pre-training needs labels: the batch has no 'y' (use a labelled dataset such as chembl)")
        node_rep = self.gnn(batch.x, batch.edge_index, batch.edge_attr)
        logits = self.graph_pred_linear(global_mean_pool(node_rep, batch.batch, size=int(batch.num_graphs))).float()
        y = y.view(logits.shape).float()
        valid = ~torch.isnan(y)
        if valid.any():
            loss = F.binary_cross_entropy_with_logits(logits[valid], y[valid])
            acc = float(((logits[valid] > 0).float() == y[valid]).float().mean())
        else:  # no labelled entry in this batch
            loss = logits.sum() * 0.0
            acc = float("nan")
        metrics = {"loss": float(loss.detach()), "acc": acc, "num_labels": float(valid.sum())}
        if self.batch_auc:
            from gnnpretrain.metrics import NoValidTaskError, roc_auc_multitask

            try:
                metrics["auc"] = roc_auc_multitask(y.detach().cpu(), logits.detach().cpu())[0]
            except NoValidTaskError:
                metrics["auc"] = math.nan
        return loss, metrics
