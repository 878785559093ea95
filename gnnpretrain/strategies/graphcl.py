"""GraphCL: graph contrastive learning with augmentations (You et al., NeurIPS 2020).

The recipe of the official molecular code (Shen-Lab/GraphCL, ``transferLearning_MoleculeNet_PPI/chem``,
``pretrain_graphcl.py --aug1 random --aug2 random``), which produced the published
``models_graphcl/graphcl_80.pth``:

* every molecule of a batch gets two augmented views, each independently ``dropN`` or ``subgraph``
  (probability 1/2) with ``aug_ratio`` 0.2 (:mod:`gnnpretrain.data.augment`, which documents how the
  node sets are drawn);
* each view is encoded separately (so BatchNorm normalises each view's batch on its own, as the two
  official ``forward_cl`` calls do), mean-pooled, and passed through the projection head
  ``Linear(d, d) - ReLU - Linear(d, d)``;
* the loss is the official NT-Xent with in-batch negatives, temperature 0.1: for molecule ``i``,
  ``-log(exp(s_ii / T) / sum_{j != i} exp(s_ij / T))`` with ``s_ij`` the cosine similarity between view 1
  of ``i`` and view 2 of ``j``, averaged over ``i``. This is GraphCL's one-directional variant: view 2
  is never the anchor, negatives come only from the other view, and the positive is *not* in the
  denominator (SimCLR's NT-Xent differs in all three). We compute it as
  ``logsumexp_{j != i}(s_ij / T) - s_ii / T``, which is the same number without forming ``exp``.

Training defaults (``training_defaults``): batch 256, Adam lr 1e-3, no weight decay, as the official
script; **80 epochs**: the official ``--epochs 100`` loop runs epochs 1-99 and saves every 20th, and the
checkpoint it published and fine-tuned (``finetune.sh``) is the 80th-epoch one. The official script
pre-trains on the paper's ``zinc_standard_agent`` (2M molecules); our default corpus is MOSES ZINC
(``--dataset zinc_standard_agent`` selects the paper's). Fresh augmentations are drawn every epoch from
the loop's seeded generator (the official numpy draws inside DataLoader workers are not reproducible).
Under DistributedDataParallel the negatives are the molecules of each rank's own batch.
A batch of fewer than 2 molecules has no negative; it contributes a zero loss (counted as
``num_skipped_batches``) instead of the official code's ``log(x / 0)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import global_mean_pool

from .base import Strategy, full_precision, encoder_out_dim, make_encoder, register_strategy, zero_loss

__all__ = ["GraphCL", "nt_xent"]


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.1) -> Tensor:
    """GraphCL's contrastive loss between row-aligned projections ``z1``, ``z2`` (``[B, d]``, ``B >= 2``).

    Row ``i`` of ``z1`` is the anchor, row ``i`` of ``z2`` its positive and the other rows of ``z2`` its
    negatives; the positive is left out of the denominator (module docstring).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"nt_xent: expected two [B, d] tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).t() / float(temperature)
    pos = logits.diagonal()
    eye = torch.eye(logits.size(0), dtype=torch.bool, device=logits.device)
    return (torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=1) - pos).mean()


@register_strategy("graphcl", domain="chem")
class GraphCL(Strategy):
    """Two augmented views per molecule, projection head, NT-Xent with in-batch negatives.

    Args:
        encoder_kwargs: keyword arguments of :class:`gnnpretrain.nn.GNN`.
        aug1, aug2: augmentation of view 1 / view 2: ``random`` (official recipe: ``dropN`` or
            ``subgraph`` per molecule), ``dropN``, ``subgraph`` or ``none``.
        aug_ratio1, aug_ratio2: fraction of atoms dropped (``dropN``) / kept besides the root
            (``subgraph``); official 0.2.
        temperature: NT-Xent temperature; official 0.1.
    """

    #: the published checkpoint's training length (module docstring); batch / lr / decay as the script
    training_defaults = {"epochs": 80, "batch_size": 256, "lr": 1e-3, "decay": 0.0}

    def __init__(
        self,
        encoder_kwargs: dict,
        aug1: str = "random",
        aug2: str = "random",
        aug_ratio1: float = 0.2,
        aug_ratio2: float = 0.2,
        temperature: float = 0.1,
    ) -> None:
        from gnnpretrain.data.augment import AUGMENTATIONS

        for name, aug in (("aug1", aug1), ("aug2", aug2)):
            if aug not in AUGMENTATIONS:
                raise ValueError(f"graphcl: {name} must be one of {AUGMENTATIONS}, got {aug!r}")
        for name, r in (("aug_ratio1", aug_ratio1), ("aug_ratio2", aug_ratio2)):
            if not 0.0 <= float(r) <= 1.0:
                raise ValueError(f"graphcl: {name} must lie in [0, 1], got {r}")
        if not float(temperature) > 0.0:
            raise ValueError(f"graphcl: temperature must be positive, got {temperature}")
        super().__init__(
            encoder_kwargs, aug1=aug1, aug2=aug2, aug_ratio1=float(aug_ratio1), aug_ratio2=float(aug_ratio2),
            temperature=float(temperature),
        )
        self.augs = ((aug1, float(aug_ratio1)), (aug2, float(aug_ratio2)))
        self.temperature = float(temperature)
        self.gnn = make_encoder(encoder_kwargs)
        d = encoder_out_dim(self.gnn)
        # the official head is Linear(300, 300) - ReLU - Linear(300, 300); its width follows the encoder here
        self.projection_head = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Linear(d, d))

    def views(self, batch, generator: torch.Generator | None = None):
        """The two augmented views of ``batch`` (:class:`gnnpretrain.data.augment.AugmentedView`)."""
        from gnnpretrain.data.augment import augment

        return tuple(augment(batch, aug, ratio, generator) for aug, ratio in self.augs)

    def project(self, view) -> Tensor:
        """Encoder → mean pool → projection head: ``[num_graphs, d]`` (the official ``forward_cl``)."""
        nodes = self.gnn(view.x, view.edge_index, view.edge_attr)
        return self.projection_head(global_mean_pool(nodes, view.batch, size=view.num_graphs))

    def contrast(self, view1, view2) -> tuple[Tensor, dict[str, float]]:
        """Loss and metrics of two row-aligned views (the part after augmentation; tests fix the views)."""
        z1, z2 = full_precision(self.project(view1)), full_precision(self.project(view2))
        loss = nt_xent(z1, z2, self.temperature)
        with torch.no_grad():
            # top-1 retrieval: is view 2 of the same molecule the closest of the batch? (chance 1/B)
            sim = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).t()
            acc = float((sim.argmax(dim=1) == torch.arange(sim.size(0), device=sim.device)).float().mean())
        return loss, {"loss": float(loss.detach()), "acc": acc}

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        num_graphs = int(batch.num_graphs)
        metrics: dict[str, float] = {"num_graphs": float(num_graphs)}
        if num_graphs < 2:  # no negative to contrast with; keep every parameter in the graph for DDP
            metrics.update(loss=0.0, acc=float("nan"), num_skipped_batches=1.0)
            return zero_loss(self), metrics
        view1, view2 = self.views(batch, generator)
        loss, m = self.contrast(view1, view2)
        metrics.update(m)
        metrics["num_whole_views"] = float(view1.whole.sum() + view2.whole.sum())
        return loss, metrics
