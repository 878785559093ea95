"""Attribute masking (Hu et al. 2020, section 3.1.2).

A fraction of the atoms of each molecule (``int(n * mask_rate + 1)``, so at least one) get the mask
token as their features; the encoder must recover each masked atom's type from its embedding with a
linear head (119 classes; chirality is not predicted, as in the reference). With ``mask_edge`` the
bonds touching masked atoms are masked too and their bond type (4 classes) is predicted from the sum
of the two end-atom embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Strategy, encoder_out_dim, make_encoder, register_strategy

__all__ = ["AttrMasking", "NUM_ATOM_TYPES", "NUM_BOND_TYPES"]

NUM_ATOM_TYPES = 119
NUM_BOND_TYPES = 4


def _first_column(labels: Tensor) -> Tensor:
    """Labels may come as the full original feature rows; the class is column 0."""
    return labels[:, 0] if labels.dim() == 2 else labels


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    if labels.numel() == 0:
        return float("nan")
    return float((logits.argmax(-1) == labels).float().mean())


@register_strategy("attrmasking", domain="chem")
class AttrMasking(Strategy):
    """Masked atom-type (and optionally bond-type) prediction.

    Args:
        encoder_kwargs: keyword arguments of :class:`gnnpretrain.nn.GNN`.
        mask_rate: fraction of atoms masked per molecule (the paper: 0.15).
        mask_edge: also mask and predict the bonds that touch masked atoms.
    """

    def __init__(self, encoder_kwargs: dict, mask_rate: float = 0.15, mask_edge: bool = False) -> None:
        if not 0.0 <= float(mask_rate) <= 1.0:
            raise ValueError(f"attrmasking: mask_rate must be in [0, 1], got {mask_rate}")
        super().__init__(encoder_kwargs, mask_rate=float(mask_rate), mask_edge=bool(mask_edge))
        self.mask_rate = float(mask_rate)
        self.mask_edge = bool(mask_edge)
        self.gnn = make_encoder(encoder_kwargs)
        d = encoder_out_dim(self.gnn)
        # Names as in the reference (pretrain_masking.py) so heads can be compared if ever needed.
        self.linear_pred_atoms = torch.nn.Linear(d, NUM_ATOM_TYPES)
        # Only built when used: an unused head would leave parameters without gradients under DDP.
        self.linear_pred_bonds = torch.nn.Linear(d, NUM_BOND_TYPES) if self.mask_edge else None

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        from gnnpretrain.data import mask_atoms

        masked = mask_atoms(batch, mask_rate=self.mask_rate, mask_edge=self.mask_edge, generator=generator)
        b = masked.batch
        node_rep = self.gnn(b.x, b.edge_index, b.edge_attr)

        atom_labels = _first_column(masked.masked_atom_labels).long()
        atom_logits = self.linear_pred_atoms(node_rep[masked.masked_atom_indices]).float()
        loss_atom = F.cross_entropy(atom_logits, atom_labels)
        loss = loss_atom
        metrics = {"loss_atom": float(loss_atom.detach()), "acc_atom": _accuracy(atom_logits.detach(), atom_labels)}
        metrics["acc"] = metrics["acc_atom"]

        if self.mask_edge:
            edge_index = b.edge_index[:, masked.masked_edge_indices]
            edge_rep = node_rep[edge_index[0]] + node_rep[edge_index[1]]
            bond_labels = _first_column(masked.masked_edge_labels).long()
            bond_logits = self.linear_pred_bonds(edge_rep).float()
            if bond_labels.numel():
                loss_bond = F.cross_entropy(bond_logits, bond_labels)
            else:  # masked atoms without bonds (single-atom fragments): keep the head in the graph
                loss_bond = bond_logits.sum() * 0.0
            loss = loss + loss_bond
            metrics["loss_bond"] = float(loss_bond.detach())
            metrics["acc_bond"] = _accuracy(bond_logits.detach(), bond_labels)
        metrics["loss"] = float(loss.detach())
        return loss, metrics
