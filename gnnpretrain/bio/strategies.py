"""Bio pre-training strategies, registered with ``domain="bio"`` so that
``scripts/pretrain.py --domain bio --strategy {attrmasking,contextpred,supervised}`` trains them with
the shared loop. Encoders are the shared :class:`gnnpretrain.nn.GNN` with ``input="bio"``.

* ``attrmasking``: :func:`gnnpretrain.bio.transforms.mask_edges`, then ``Linear(d, 7)`` on the sum
  of the two end-node embeddings of each masked edge, cross-entropy against the edge's first set
  channel (the reference converts the multi-hot channels to a class with ``argmax``).
* ``contextpred``: the shared chemistry :class:`~gnnpretrain.strategies.ContextPred` scoring
  (cbow/skipgram, cycled negatives) with the bio pair extraction
  (:func:`gnnpretrain.bio.transforms.center_context`): the whole ego-network is the substructure
  rooted at its centre, nodes beyond ``r1`` = 1 hop are the context, every context node is an anchor,
  and the context GNN has ``csize`` = 3 layers.
* ``supervised``: the reference's bio head (``concat(mean pool, centre embedding) → Linear(2d, C)``)
  trained with BCE on the coarse GO labels ``y_pretrain`` of labelled graphs only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import global_mean_pool

from gnnpretrain.bio.transforms import NUM_CHANNELS, center_context, mask_edges
from gnnpretrain.strategies import ContextPred, Strategy, register_strategy
from gnnpretrain.strategies.base import encoder_out_dim, make_encoder, zero_loss

DEFAULT_DATASET = "string_human"


def _bio_encoder_kwargs(encoder_kwargs: dict) -> dict:
    kw = dict(encoder_kwargs)
    if kw.get("input", "bio") != "bio":
        raise ValueError(f"bio strategies need the bio input encoder (input='bio'); got input={kw['input']!r}")
    kw["input"] = "bio"
    return kw


@register_strategy("attrmasking", domain="bio")
class BioAttrMasking(Strategy):
    """Edge-attribute masking on PPI ego-networks (see module docstring)."""

    default_dataset = DEFAULT_DATASET

    def __init__(self, encoder_kwargs: dict, mask_rate: float = 0.15) -> None:
        if not 0.0 <= float(mask_rate) <= 1.0:
            raise ValueError(f"attrmasking (bio): mask_rate must be in [0, 1], got {mask_rate}")
        encoder_kwargs = _bio_encoder_kwargs(encoder_kwargs)
        super().__init__(encoder_kwargs, mask_rate=float(mask_rate))
        self.mask_rate = float(mask_rate)
        self.gnn = make_encoder(encoder_kwargs)
        self.linear_pred_edges = torch.nn.Linear(encoder_out_dim(self.gnn), NUM_CHANNELS)

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        masked = mask_edges(batch, self.mask_rate, generator)
        if masked.masked_edge_indices.numel() == 0:
            return zero_loss(self), {"loss": 0.0, "acc": float("nan"), "num_masked": 0.0}
        mb = masked.batch
        node_rep = self.gnn(mb.x, mb.edge_index, mb.edge_attr)
        ends = mb.edge_index[:, masked.masked_edge_indices]
        logits = self.linear_pred_edges(node_rep[ends[0]] + node_rep[ends[1]]).float()
        labels = masked.channel_labels()
        loss = F.cross_entropy(logits, labels)
        acc = float((logits.detach().argmax(1) == labels).float().mean())
        return loss, {"loss": float(loss.detach()), "acc": acc, "num_masked": float(labels.numel())}


@register_strategy("contextpred", domain="bio")
class BioContextPred(ContextPred):
    """Context prediction rooted at the ego-network centre (see module docstring).

    Args: as :class:`gnnpretrain.strategies.ContextPred` (``csize`` = context GNN layers, default 3),
    plus ``r1``: nodes farther than ``r1`` hops from the centre form the context (default 1).
    """

    default_dataset = DEFAULT_DATASET

    def __init__(self, encoder_kwargs: dict, csize: int = 3, mode: str = "cbow", neg_samples: int = 1,
                 context_pooling: str = "mean", r1: int = 1) -> None:
        encoder_kwargs = _bio_encoder_kwargs(encoder_kwargs)
        if int(r1) < 0:
            raise ValueError(f"contextpred (bio): r1 must be >= 0 hops, got {r1}")
        super().__init__(encoder_kwargs, csize=csize, mode=mode, neg_samples=neg_samples,
                         context_pooling=context_pooling)
        self.options["r1"] = int(r1)
        self.r1 = int(r1)

    def extract_pair(self, batch, generator: torch.Generator | None = None):
        return center_context(batch, self.r1)


@register_strategy("supervised", domain="bio")
class BioSupervised(Strategy):
    """Multi-task GO supervised pre-training with the centre-pooled head (see module docstring)."""

    needs_labels = True
    default_dataset = "string_human_supervised"

    def __init__(self, encoder_kwargs: dict, num_tasks: int = 1) -> None:
        if int(num_tasks) < 1:
            raise ValueError(f"supervised (bio): num_tasks must be >= 1, got {num_tasks}")
        encoder_kwargs = _bio_encoder_kwargs(encoder_kwargs)
        super().__init__(encoder_kwargs, num_tasks=int(num_tasks))
        self.num_tasks = int(num_tasks)
        self.gnn = make_encoder(encoder_kwargs)
        self.graph_pred_linear = torch.nn.Linear(2 * encoder_out_dim(self.gnn), self.num_tasks)

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        y = getattr(batch, "y_pretrain", None)
        if y is None:
            raise ValueError("bio supervised pre-training needs batch.y_pretrain (coarse GO labels); use the "
                             "'string_human_supervised' dataset (gnnpretrain.bio)")
        from gnnpretrain.bio.transforms import center_roots
        from gnnpretrain.data.context import graph_ptr

        node_rep = self.gnn(batch.x, batch.edge_index, batch.edge_attr)
        ptr = graph_ptr(batch).to(node_rep.device)
        center = center_roots(batch) + ptr[:-1]
        pooled = global_mean_pool(node_rep, batch.batch, size=int(batch.num_graphs))
        logits = self.graph_pred_linear(torch.cat([pooled, node_rep[center]], dim=1)).float()
        y = y.view(logits.shape).float()
        labelled = getattr(batch, "labelled", None)
        rows = labelled.view(-1).bool() if labelled is not None else torch.ones(len(y), dtype=torch.bool, device=y.device)
        if not bool(rows.any()):
            return zero_loss(self), {"loss": 0.0, "acc": float("nan"), "num_labels": 0.0}
        loss = F.binary_cross_entropy_with_logits(logits[rows], y[rows])
        acc = float(((logits[rows].detach() > 0).float() == y[rows]).float().mean())
        return loss, {"loss": float(loss.detach()), "acc": acc, "num_labels": float(rows.sum() * y.size(1))}
