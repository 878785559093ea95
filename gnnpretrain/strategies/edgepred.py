"""Edge prediction (the paper's baseline after Hamilton et al. 2017).

Node embeddings should tell bonded atom pairs from random non-bonded pairs of the same molecule: the
score of a pair is the dot product of its two embeddings; positives are the bonds (one direction
each), negatives are sampled by :func:`gnnpretrain.data.sample_negative_edges`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Strategy, make_encoder, register_strategy, signed_accuracy, zero_loss

__all__ = ["EdgePred"]


def _pair_scores(node_rep: Tensor, edge_index: Tensor) -> Tensor:
    return (node_rep[edge_index[0]] * node_rep[edge_index[1]]).sum(-1).float()


@register_strategy("edgepred", domain="chem")
class EdgePred(Strategy):
    """Binary classification of bonded vs sampled non-bonded atom pairs (dot-product scores)."""

    def __init__(self, encoder_kwargs: dict) -> None:
        super().__init__(encoder_kwargs)
        self.gnn = make_encoder(encoder_kwargs)

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        from gnnpretrain.data import sample_negative_edges

        pos_index, neg_index = sample_negative_edges(batch, generator=generator)
        node_rep = self.gnn(batch.x, batch.edge_index, batch.edge_attr)
        pos = _pair_scores(node_rep, pos_index)
        neg = _pair_scores(node_rep, neg_index)
        if pos.numel() == 0 and neg.numel() == 0:
            return zero_loss(self), {"loss": 0.0, "acc": float("nan")}
        loss = node_rep.sum() * 0.0
        if pos.numel():
            loss = loss + F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
        if neg.numel():
            loss = loss + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        return loss, {
            "loss": float(loss.detach()),
            "acc": signed_accuracy(pos.detach(), neg.detach()),
            "num_neg_edges": float(neg.numel()),
            "num_pos_edges": float(pos.numel()),
        }
