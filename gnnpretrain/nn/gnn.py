"""The node encoder ``GNN``: input encoder → ``num_layer`` convs → jumping-knowledge combination."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnpretrain.nn.conv import GNN_TYPES, build_conv
from gnnpretrain.nn.input import check_input_kind, encode_nodes, init_node_encoder

JK_MODES = ("last", "concat", "max", "sum")


class GNN(nn.Module):
    """Multi-layer GNN producing node embeddings, functionally identical to the reference encoder.

    Per layer: conv → BatchNorm1d → ReLU (except after the last layer) → dropout. The bio variant
    (``input="bio"``) has no BatchNorm between layers, as the reference's bio encoder (its
    checkpoints hold none).

    Args:
        num_layer: number of message-passing layers (≥ 1).
        emb_dim: embedding size of nodes (and edges).
        JK: how layer outputs are combined into the node representation, over
            ``[input embedding, layer 1, ..., layer L]`` as the reference does:
            ``"last"`` (layer L), ``"concat"`` (``(L+1)*emb_dim`` wide), ``"max"`` and ``"sum"``
            (element-wise). Note: the reference's ``"sum"`` returned only node 0's vector (it indexed
            the summed tensor with ``[0]``); here it is the proper per-node sum. For ``input="bio"``
            the "input embedding" is the 2-row node embedding's output (the reference's bio encoder
            offered only "last" and the broken "sum", over the layer outputs); all modes are
            defined the same way for every input kind, so ``out_dim`` never depends on it.
        drop_ratio: dropout after every layer (only active in training mode).
        gnn_type: ``"gin"``, ``"gcn"``, ``"graphsage"`` or ``"gat"``.
        input: ``"reference"``, ``"ogb"`` or ``"bio"`` — see :mod:`gnnpretrain.nn.input`.

    ``forward(x, edge_index, edge_attr)`` returns ``[N, out_dim]``; a ``Data``/``Batch`` may also be
    passed as the single argument.
    """

    def __init__(
        self,
        num_layer: int = 5,
        emb_dim: int = 300,
        JK: str = "last",
        drop_ratio: float = 0.0,
        gnn_type: str = "gin",
        input: str = "reference",
    ) -> None:
        super().__init__()
        if not isinstance(num_layer, int) or num_layer < 1:
            raise ValueError(f"num_layer must be a positive integer, got {num_layer!r}")
        if not isinstance(emb_dim, int) or emb_dim < 1:
            raise ValueError(f"emb_dim must be a positive integer, got {emb_dim!r}")
        if JK not in JK_MODES:
            raise ValueError(f"unknown JK {JK!r}; expected one of {JK_MODES}")
        if gnn_type not in GNN_TYPES:
            raise ValueError(f"unknown gnn_type {gnn_type!r}; expected one of {GNN_TYPES}")
        if not 0.0 <= float(drop_ratio) < 1.0:
            raise ValueError(f"drop_ratio must be in [0, 1), got {drop_ratio!r}")
        check_input_kind(input)

        self.num_layer = num_layer
        self.emb_dim = emb_dim
        self.JK = JK
        self.drop_ratio = float(drop_ratio)
        self.gnn_type = gnn_type
        self.input = input

        init_node_encoder(self, input, emb_dim)
        self.gnns = nn.ModuleList(build_conv(gnn_type, emb_dim, input, first_layer=(i == 0)) for i in range(num_layer))
        if input != "bio":
            self.batch_norms = nn.ModuleList(nn.BatchNorm1d(emb_dim) for _ in range(num_layer))
        else:
            self.batch_norms = None

    @property
    def out_dim(self) -> int:
        """Width of the node representation: ``(num_layer + 1) * emb_dim`` for JK="concat", else ``emb_dim``."""
        return (self.num_layer + 1) * self.emb_dim if self.JK == "concat" else self.emb_dim

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments that fix the parameter layout (used by checkpoint checks)."""
        return {
            "gnn_type": self.gnn_type,
            "num_layer": self.num_layer,
            "emb_dim": self.emb_dim,
            "input": self.input,
        }

    def forward(self, x: Any, edge_index: Tensor | None = None, edge_attr: Tensor | None = None) -> Tensor:
        if edge_index is None and edge_attr is None and hasattr(x, "edge_index"):
            x, edge_index, edge_attr = x.x, x.edge_index, x.edge_attr
        if edge_index is None or edge_attr is None:
            raise ValueError("GNN.forward needs (x, edge_index, edge_attr) or a single Data/Batch")

        h = encode_nodes(self, self.input, x, self.gnns[0])
        h_list = [h]
        for layer, conv in enumerate(self.gnns):
            h = conv(h, edge_index, edge_attr)
            if self.batch_norms is not None:
                h = self.batch_norms[layer](h)
            if layer < self.num_layer - 1:
                h = F.relu(h)
            h = F.dropout(h, self.drop_ratio, training=self.training)
            h_list.append(h)

        if self.JK == "last":
            return h_list[-1]
        if self.JK == "concat":
            return torch.cat(h_list, dim=1)
        stacked = torch.stack(h_list, dim=0)
        if self.JK == "max":
            return stacked.max(dim=0).values
        return stacked.sum(dim=0)

    def extra_repr(self) -> str:
        return f"gnn_type={self.gnn_type}, input={self.input}, num_layer={self.num_layer}, emb_dim={self.emb_dim}, JK={self.JK}"
