"""Deep graph infomax (Velickovic et al. 2019), the paper's graph-level contrastive baseline.

The summary of a molecule is ``sigmoid(mean of its node embeddings)``. A bilinear discriminator
scores (node, summary) pairs: a node with its own molecule's summary is a positive, the same node
with the summary of the next molecule in the batch (batch cycled by one) a negative.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import global_mean_pool

from .base import Strategy, cycle_index, encoder_out_dim, make_encoder, register_strategy, signed_accuracy

__all__ = ["Infomax", "Discriminator"]


class Discriminator(torch.nn.Module):
    """Bilinear score ``x^T W s`` between node embeddings ``x`` and summaries ``s``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(dim, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.weight.size(0))  # PyG's inits.uniform, as the reference
        torch.nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor, summary: Tensor) -> Tensor:
        return (x * (summary @ self.weight)).sum(-1)


@register_strategy("infomax", domain="chem")
class Infomax(Strategy):
    """Node-vs-graph-summary mutual information maximisation with batch-cycled negatives."""

    def __init__(self, encoder_kwargs: dict) -> None:
        super().__init__(encoder_kwargs)
        self.gnn = make_encoder(encoder_kwargs)
        self.discriminator = Discriminator(encoder_out_dim(self.gnn))

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        node_emb = self.gnn(batch.x, batch.edge_index, batch.edge_attr)
        num_graphs = int(batch.num_graphs)
        summary = torch.sigmoid(global_mean_pool(node_emb, batch.batch, size=num_graphs))
        shifted = summary[cycle_index(num_graphs, 1, summary.device)]
        pos = self.discriminator(node_emb, summary[batch.batch]).float()
        neg = self.discriminator(node_emb, shifted[batch.batch]).float()
        loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(
            neg, torch.zeros_like(neg)
        )
        return loss, {"loss": float(loss.detach()), "acc": signed_accuracy(pos.detach(), neg.detach())}
