"""Context prediction (Hu et al. 2020, section 3.1.1).

For each molecule a root atom is drawn uniformly. The *substructure* is the K-hop neighbourhood of the
root (K = number of encoder layers), encoded by the main GNN; its root embedding is the substructure
representation. The *context* is the ring of atoms at distance r1 < d <= r2 (r1 = K - 1,
r2 = r1 + csize), encoded by a separate, shallower context GNN (r2 - r1 layers); the context
representation pools the embeddings of the *anchor* atoms (context atoms that are also in the
substructure). The task is to tell a molecule's own (substructure, context) pair from a pair whose
context comes from another molecule of the batch (the batch cycled by one, two, ...).

Graphs whose context is empty (small molecules) cannot form a pair; they are left out and counted
(``num_no_context``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import scatter

from .base import Strategy, cycle_index, encoder_out_dim, make_encoder, register_strategy, signed_accuracy, zero_loss

__all__ = ["ContextPred"]

MODES = ("cbow", "skipgram")
POOLINGS = ("mean", "sum", "max")


@register_strategy("contextpred", domain="chem")
class ContextPred(Strategy):
    """Context prediction with cbow (pooled anchors) or skipgram (each anchor) scoring.

    Args:
        encoder_kwargs: keyword arguments of :class:`gnnpretrain.nn.GNN` for the substructure encoder;
            the context GNN uses the same ones except ``num_layer = csize``.
        csize: width of the context ring (r2 - r1); the paper uses 3.
        mode: ``"cbow"`` (default) or ``"skipgram"``.
        neg_samples: negative contexts per positive (batch cycled by 1..neg_samples).
        context_pooling: how anchors are pooled in cbow mode (``mean``/``sum``/``max``).
    """

    def __init__(
        self,
        encoder_kwargs: dict,
        csize: int = 3,
        mode: str = "cbow",
        neg_samples: int = 1,
        context_pooling: str = "mean",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"contextpred: mode must be one of {MODES}, got {mode!r}")
        if context_pooling not in POOLINGS:
            raise ValueError(f"contextpred: context_pooling must be one of {POOLINGS}, got {context_pooling!r}")
        if int(csize) < 1:
            raise ValueError(f"contextpred: csize must be >= 1 (context GNN layers), got {csize}")
        if int(neg_samples) < 1:
            raise ValueError(f"contextpred: neg_samples must be >= 1, got {neg_samples}")
        super().__init__(
            encoder_kwargs, csize=int(csize), mode=mode, neg_samples=int(neg_samples), context_pooling=context_pooling
        )
        self.gnn = make_encoder(encoder_kwargs)
        self.k = int(getattr(self.gnn, "num_layer", encoder_kwargs.get("num_layer", 5)))
        self.r1 = self.k - 1
        self.r2 = self.r1 + int(csize)
        self.mode = mode
        self.neg_samples = int(neg_samples)
        self.context_pooling = context_pooling
        self.context_gnn = make_encoder(encoder_kwargs, num_layer=self.r2 - self.r1)
        if encoder_out_dim(self.gnn) != encoder_out_dim(self.context_gnn):
            raise ValueError(
                "contextpred: substructure and context embeddings have different widths "
                f"({encoder_out_dim(self.gnn)} vs {encoder_out_dim(self.context_gnn)}), which happens with "
                "JK='concat' because the two GNNs have different depths; use JK last, max or sum"
            )

    def extract_pair(self, batch, generator: torch.Generator | None = None):
        """The batch's (substructure, context) pairs; a domain with another rule (bio: rooted at the
        ego-network centre) overrides only this."""
        from gnnpretrain.data import extract_context

        return extract_context(batch, self.k, self.r1, self.r2, generator=generator)

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        pair = self.extract_pair(batch, generator)
        n = int(pair.kept.numel())
        metrics: dict[str, float] = {"num_graphs": float(batch.num_graphs), "num_no_context": float(pair.num_dropped)}
        if n == 0:
            # Nothing to contrast in this batch; keep every parameter in the graph for DDP.
            metrics.update(loss=0.0, acc=float("nan"))
            return zero_loss(self), metrics

        sub_nodes = self.gnn(pair.sub_x, pair.sub_edge_index, pair.sub_edge_attr)
        sub_rep = sub_nodes[pair.sub_center]  # [n, d]
        ctx_nodes = self.context_gnn(pair.ctx_x, pair.ctx_edge_index, pair.ctx_edge_attr)
        anchor_rep = ctx_nodes[pair.anchor]  # [A, d]
        anchor_batch = pair.anchor_batch

        if self.mode == "cbow":
            ctx_rep = scatter(anchor_rep, anchor_batch, dim=0, dim_size=n, reduce=self.context_pooling)
            pos = (sub_rep * ctx_rep).sum(-1)
            neg = torch.cat(
                [(sub_rep * ctx_rep[cycle_index(n, i + 1, sub_rep.device)]).sum(-1) for i in range(self.neg_samples)]
            )
        else:  # skipgram: every anchor is scored against its own (or a shifted) root
            pos = (sub_rep[anchor_batch] * anchor_rep).sum(-1)
            neg = torch.cat(
                [
                    (sub_rep[cycle_index(n, i + 1, sub_rep.device)][anchor_batch] * anchor_rep).sum(-1)
                    for i in range(self.neg_samples)
                ]
            )

        pos, neg = pos.float(), neg.float()
        loss_pos = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
        loss_neg = F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        loss = loss_pos + self.neg_samples * loss_neg
        metrics.update(
            loss=float(loss.detach()),
            balanced_loss=float((loss_pos + loss_neg).detach()),
            acc=signed_accuracy(pos.detach(), neg.detach()),
        )
        return loss, metrics
