"""GraphMAE: masked graph autoencoder (Hou et al., KDD 2022), the molecular recipe of THUDM/GraphMAE ``chem/``.

What the official ``chem/pretraining.py`` does, with its defaults, and what this class does:

1. **Mask**: ``int(n * 0.25 + 1)`` atoms of every molecule drawn uniformly (``random.sample``); their
   features become the [MASK] token, atom type 119 with chirality 0 — a learnable token because row 119
   of the encoder's atom embedding (``x_embedding1``, 120 rows) is trained like any other row. This is
   :func:`gnnpretrain.data.mask_atoms` with ``mask_rate=0.25``. Bonds are not masked (``mask_edge 0``).
2. **Encode** the masked molecule with the GNN (node embeddings of the last layer, no ReLU).
3. **Re-mask and decode**: ``PReLU`` → ``Linear(d, d, bias=False)`` (``enc_to_dec``) → the rows of the
   masked atoms set to 0 → one GIN layer with edge features whose MLP ends in 119 outputs
   (``Linear(d, 2d) - ReLU - Linear(2d, 119)``, the same bond / direction embeddings and self loops as
   the encoder's layers). Parameter names follow the official ``GNNDecoder`` (``activation``,
   ``enc_to_dec``, ``conv.mlp.0``, ``conv.mlp.2``, ``conv.edge_embedding1/2``).
4. **Loss**: the scaled cosine error between the decoder output of each masked atom and the one-hot of
   its original atom type (119 classes, chirality not reconstructed), ``mean((1 - cos)^alpha)`` with
   ``alpha = 1`` (``--alpha_l``).

Training defaults: 100 epochs, batch 256, Adam lr 1e-3 (one optimiser over all parameters; the
official two Adam instances with equal settings compute the same updates), no weight decay, no
scheduler — the official script's. Its corpus is ``zinc_standard_agent``; ours defaults to MOSES ZINC.

Deviations, all outside the default path: the official decoder also holds a ``dec_token`` parameter
that it never uses (re-masking writes zeros), so it is left out here (an unused parameter would have
no gradient under DistributedDataParallel). ``replace_rate`` (default 0, as the chem code, which has no
replacement) follows GraphMAE's main code: ``int(replace_rate * M)`` of the batch's ``M`` masked atoms,
drawn uniformly, get the features of as many distinct atoms drawn uniformly from the batch instead of
the token; the rest get the token (the main code gives the token to ``int((1 - r) * M)`` atoms, which can
leave one masked atom unchanged by rounding). ``decoder="linear"`` is the official linear option
(``Linear(d, 119)`` on the encoder output, no re-masking).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Strategy, full_precision, encoder_out_dim, make_encoder, register_strategy

__all__ = ["GraphMAE", "GNNDecoder", "sce_loss", "DECODERS"]

NUM_ATOM_TYPES = 119
DECODERS = ("gin", "linear")


def sce_loss(pred: Tensor, labels: Tensor, alpha: float = 1.0) -> Tensor:
    """Scaled cosine error ``mean((1 - cos(pred_i, onehot(labels_i)))^alpha)``.

    The cosine with a one-hot vector is the normalised prediction's entry at the label, so no one-hot
    tensor is built (the official ``sce_loss`` normalises both and sums the product: the same number).
    """
    if labels.numel() == 0:
        return pred.sum() * 0.0
    cos = F.normalize(pred, p=2, dim=-1).gather(1, labels.long().view(-1, 1)).squeeze(1)
    return (1.0 - cos).pow(alpha).mean()


class GNNDecoder(torch.nn.Module):
    """GraphMAE's molecular decoder: PReLU → enc_to_dec → re-mask → one GIN layer to ``out_dim`` outputs
    (``kind="gin"``), or ``Linear(hidden, out_dim)`` (``kind="linear"``, no re-masking)."""

    def __init__(self, hidden_dim: int, out_dim: int = NUM_ATOM_TYPES, kind: str = "gin", input: str = "reference") -> None:
        super().__init__()
        if kind not in DECODERS:
            raise ValueError(f"graphmae: decoder must be one of {DECODERS}, got {kind!r}")
        self.kind = kind
        if kind == "linear":
            self.dec = torch.nn.Linear(hidden_dim, out_dim)
            return
        from gnnpretrain.nn.conv import GINConv

        self.activation = torch.nn.PReLU()
        self.enc_to_dec = torch.nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.conv = GINConv(hidden_dim, input=input)
        # the encoder's GIN layer maps d -> d; the decoder's ends in the reconstruction width
        self.conv.mlp = torch.nn.Sequential(
            torch.nn.Linear(hidden_dim, 2 * hidden_dim), torch.nn.ReLU(), torch.nn.Linear(2 * hidden_dim, out_dim)
        )

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor, masked: Tensor) -> Tensor:
        if self.kind == "linear":
            return self.dec(h)
        h = self.enc_to_dec(self.activation(h))
        h = h.index_fill(0, masked, 0.0)  # re-mask: the decoder must rebuild masked atoms from their neighbours
        return self.conv(h, edge_index, edge_attr)


@register_strategy("graphmae", domain="chem")
class GraphMAE(Strategy):
    """Masked atom-type reconstruction with a re-masked GIN decoder and the scaled cosine error.

    Args:
        encoder_kwargs: keyword arguments of :class:`gnnpretrain.nn.GNN` (``input="reference"``: the
            [MASK] token is atom type 119 of that vocabulary).
        mask_rate: fraction of atoms masked per molecule (``int(n * rate + 1)``); official 0.25.
        replace_rate: fraction of the masked atoms given another atom's features instead of the token;
            official chem 0 (module docstring).
        alpha: exponent of the scaled cosine error (``alpha_l``); official 1.
        decoder: ``gin`` (official) or ``linear``.
    """

    training_defaults = {"epochs": 100, "batch_size": 256, "lr": 1e-3, "decay": 0.0}

    def __init__(
        self,
        encoder_kwargs: dict,
        mask_rate: float = 0.25,
        replace_rate: float = 0.0,
        alpha: float = 1.0,
        decoder: str = "gin",
    ) -> None:
        if not 0.0 <= float(mask_rate) <= 1.0:
            raise ValueError(f"graphmae: mask_rate must lie in [0, 1], got {mask_rate}")
        if not 0.0 <= float(replace_rate) <= 1.0:
            raise ValueError(f"graphmae: replace_rate must lie in [0, 1], got {replace_rate}")
        if not float(alpha) >= 1.0:
            raise ValueError(f"graphmae: alpha must be >= 1 (the paper's scaling exponent), got {alpha}")
        if decoder not in DECODERS:
            raise ValueError(f"graphmae: decoder must be one of {DECODERS}, got {decoder!r}")
        if encoder_kwargs.get("input", "reference") != "reference":
            raise ValueError(
                "graphmae: needs the reference featurizer (input='reference'), whose atom type 119 is the [MASK] "
                f"token; got input={encoder_kwargs.get('input')!r}"
            )
        super().__init__(encoder_kwargs, mask_rate=float(mask_rate), replace_rate=float(replace_rate),
                         alpha=float(alpha), decoder=decoder)
        self.mask_rate = float(mask_rate)
        self.replace_rate = float(replace_rate)
        self.alpha = float(alpha)
        self.gnn = make_encoder(encoder_kwargs)
        self.decoder = GNNDecoder(encoder_out_dim(self.gnn), NUM_ATOM_TYPES, kind=decoder)

    def mask(self, batch, generator: torch.Generator | None = None):
        """Masked copy of ``batch`` (:class:`gnnpretrain.data.MaskedBatch`), with replacements if any."""
        from gnnpretrain.data import mask_atoms

        masked = mask_atoms(batch, mask_rate=self.mask_rate, generator=generator)
        m = int(masked.masked_atom_indices.numel())
        num_noise = int(self.replace_rate * m)
        if num_noise > 0:
            x = batch.x
            gen_device = generator.device if generator is not None else x.device
            pick = torch.randperm(m, generator=generator, device=gen_device).to(x.device)[:num_noise]
            donors = torch.randperm(x.size(0), generator=generator, device=gen_device).to(x.device)[:num_noise]
            out = copy.copy(masked.batch)
            out.x = out.x.clone()
            out.x[masked.masked_atom_indices[pick]] = x[donors]
            masked.batch = out
        return masked

    def reconstruct(self, masked) -> tuple[Tensor, dict[str, float]]:
        """Loss and metrics for an already masked batch (the part after the random draws; tests fix the mask)."""
        b = masked.batch
        idx = masked.masked_atom_indices
        node_rep = self.gnn(b.x, b.edge_index, b.edge_attr)
        pred = full_precision(self.decoder(node_rep, b.edge_index, b.edge_attr, idx)[idx])
        labels = masked.masked_atom_labels.long()
        loss = sce_loss(pred, labels, self.alpha)
        acc = float((pred.detach().argmax(-1) == labels).float().mean()) if labels.numel() else float("nan")
        return loss, {"loss": float(loss.detach()), "acc": acc, "num_masked": float(labels.numel())}

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        loss, metrics = self.reconstruct(self.mask(batch, generator))
        metrics["num_graphs"] = float(batch.num_graphs)
        return loss, metrics
