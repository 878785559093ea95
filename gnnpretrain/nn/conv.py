"""Message-passing layers with edge features: GIN, GCN, GraphSAGE, GAT (reference variants).

All four reproduce snap-stanford/pretrain-gnns exactly, including the convention of the old PyG
version it ran on: messages are gathered as ``x_i = x[edge_index[0]]``, ``x_j = x[edge_index[1]]``
and aggregated at ``edge_index[0]``. Today's PyG expresses that as ``flow="target_to_source"``,
which every layer here uses. For the symmetric graphs of this project (every bond stored in both
directions with the same features) it gives the same sums and means as the modern convention; for
GAT it fixes which edges share one softmax: those of the aggregating node ``edge_index[0]``.
Because we use the flag rather than re-deriving the convention, outputs also match the reference on
non-symmetric inputs.

Each conv adds one self loop per node and embeds edges itself (per-layer edge encoders, see
:mod:`gnnpretrain.nn.input`), so parameter names match the reference's state dicts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.inits import glorot, zeros
from torch_geometric.utils import scatter, softmax

from gnnpretrain.nn.input import add_self_loops_and_encode_edges, init_edge_encoder

GNN_TYPES = ("gin", "gcn", "graphsage", "gat")


class EdgeConv(MessagePassing):
    """Base class: owns the per-layer edge encoder and the self-loop handling.

    Args:
        emb_dim: node embedding size (input and output).
        edge_dim: size of the edge embeddings (``heads * emb_dim`` for GAT, else ``emb_dim``).
        input: ``"reference"``, ``"ogb"`` or ``"bio"`` (see :mod:`gnnpretrain.nn.input`).
        first_layer: for ``input="bio"``, the first layer stores the node-input embedding.
        aggr: ``"add"`` or ``"mean"``.
    """

    def __init__(self, emb_dim: int, edge_dim: int, input: str, first_layer: bool, aggr: str) -> None:
        super().__init__(aggr=aggr, flow="target_to_source", node_dim=0)
        self.emb_dim = emb_dim
        self.input = input
        init_edge_encoder(self, input, edge_dim, emb_dim, first_layer)

    def _edges(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
        return add_self_loops_and_encode_edges(self, self.input, edge_index, edge_attr, x.size(0))


class GINConv(EdgeConv):
    """GIN with edge features. Chem: ``MLP(sum_j (x_j + e_ij))`` with MLP Linear(d,2d)-ReLU-Linear(2d,d)
    (keys ``mlp.0``, ``mlp.2``). Bio: ``MLP(sum_j [x_j, e_ij])`` with
    Linear(2d,2d)-BatchNorm-ReLU-Linear(2d,d) (keys ``mlp.0``, ``mlp.1``, ``mlp.3``)."""

    def __init__(self, emb_dim: int, input: str = "reference", first_layer: bool = False) -> None:
        super().__init__(emb_dim, emb_dim, input, first_layer, aggr="add")
        if input == "bio":
            self.mlp = nn.Sequential(
                nn.Linear(2 * emb_dim, 2 * emb_dim),
                nn.BatchNorm1d(2 * emb_dim),
                nn.ReLU(),
                nn.Linear(2 * emb_dim, emb_dim),
            )
        else:
            self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.ReLU(), nn.Linear(2 * emb_dim, emb_dim))

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        edge_index, edge_emb = self._edges(x, edge_index, edge_attr)
        return self.mlp(self.propagate(edge_index, x=x, edge_emb=edge_emb))

    def message(self, x_j: Tensor, edge_emb: Tensor) -> Tensor:
        if self.input == "bio":
            return torch.cat([x_j, edge_emb], dim=1)
        return x_j + edge_emb


class GCNConv(EdgeConv):
    """GCN with edge features: ``sum_j n_ij (W x_j + e_ij)``, ``n_ij = deg_i^-1/2 deg_j^-1/2`` with
    degrees counted at ``edge_index[0]`` including the self loop (key ``linear``)."""

    def __init__(self, emb_dim: int, input: str = "reference", first_layer: bool = False) -> None:
        super().__init__(emb_dim, emb_dim, input, first_layer, aggr="add")
        self.linear = nn.Linear(emb_dim, emb_dim)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        edge_index, edge_emb = self._edges(x, edge_index, edge_attr)
        row, col = edge_index
        deg = scatter(torch.ones_like(row, dtype=x.dtype), row, dim=0, dim_size=x.size(0), reduce="sum")
        deg_inv_sqrt = deg.pow(-0.5)
        deg_inv_sqrt[torch.isinf(deg_inv_sqrt)] = 0.0
        norm = deg_inv_sqrt[row] * deg_inv_sqrt[col]
        return self.propagate(edge_index, x=self.linear(x), edge_emb=edge_emb, norm=norm)

    def message(self, x_j: Tensor, edge_emb: Tensor, norm: Tensor) -> Tensor:
        return norm.view(-1, 1) * (x_j + edge_emb)


class GraphSAGEConv(EdgeConv):
    """GraphSAGE (mean) with edge features: ``normalize(mean_j (W x_j + e_ij))`` (key ``linear``)."""

    def __init__(self, emb_dim: int, input: str = "reference", first_layer: bool = False) -> None:
        super().__init__(emb_dim, emb_dim, input, first_layer, aggr="mean")
        self.linear = nn.Linear(emb_dim, emb_dim)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        edge_index, edge_emb = self._edges(x, edge_index, edge_attr)
        out = self.propagate(edge_index, x=self.linear(x), edge_emb=edge_emb)
        return F.normalize(out, p=2, dim=-1)

    def message(self, x_j: Tensor, edge_emb: Tensor) -> Tensor:
        return x_j + edge_emb


class GATConv(EdgeConv):
    """GAT with edge features, as the reference: ``heads`` copies of ``W x`` (key ``weight_linear``),
    ``x_j' = (W x)_j + e_ij`` (edge embeddings of size ``heads * d``),
    ``a_ij = softmax_{edges of i}(LeakyReLU_0.2(<[(W x)_i, x_j'], att>))``, output
    ``mean_heads(sum_j a_ij x_j') + bias`` (keys ``att`` ``[1, heads, 2d]``, ``bias`` ``[d]``)."""

    def __init__(
        self,
        emb_dim: int,
        input: str = "reference",
        first_layer: bool = False,
        heads: int = 2,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__(emb_dim, heads * emb_dim, input, first_layer, aggr="add")
        self.heads = heads
        self.negative_slope = negative_slope
        self.weight_linear = nn.Linear(emb_dim, heads * emb_dim)
        self.att = nn.Parameter(torch.empty(1, heads, 2 * emb_dim))
        self.bias = nn.Parameter(torch.empty(emb_dim))
        glorot(self.att)
        zeros(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        edge_index, edge_emb = self._edges(x, edge_index, edge_attr)
        h = self.weight_linear(x).view(-1, self.heads, self.emb_dim)
        out = self.propagate(edge_index, x=h, edge_emb=edge_emb)
        return out.mean(dim=1) + self.bias

    def message(
        self, x_i: Tensor, x_j: Tensor, edge_emb: Tensor, index: Tensor, ptr: Tensor | None, size_i: int | None
    ) -> Tensor:
        # with flow="target_to_source", i = edge_index[0] is the aggregating node and `index` is it
        x_j = x_j + edge_emb.view(-1, self.heads, self.emb_dim)
        alpha = (torch.cat([x_i, x_j], dim=-1) * self.att).sum(dim=-1)
        alpha = F.leaky_relu(alpha, self.negative_slope)
        alpha = softmax(alpha, index, ptr, size_i)
        return x_j * alpha.unsqueeze(-1)


CONVS: dict[str, type[EdgeConv]] = {
    "gin": GINConv,
    "gcn": GCNConv,
    "graphsage": GraphSAGEConv,
    "gat": GATConv,
}


def build_conv(gnn_type: str, emb_dim: int, input: str, first_layer: bool) -> EdgeConv:
    """Instantiate one layer of the named type."""
    if gnn_type not in CONVS:
        raise ValueError(f"unknown gnn_type {gnn_type!r}; expected one of {GNN_TYPES}")
    return CONVS[gnn_type](emb_dim, input=input, first_layer=first_layer)
