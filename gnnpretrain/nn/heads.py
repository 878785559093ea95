"""Graph-level prediction: ``GNNGraphPred`` = ``GNN`` → graph pooling (→ centre node) → Linear."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from torch_geometric.nn import AttentionalAggregation, Set2Set, global_add_pool, global_max_pool, global_mean_pool

from gnnpretrain.nn.gnn import GNN

POOLINGS = ("sum", "mean", "max", "attention", "set2set<steps>")
_SIMPLE_POOLS: dict[str, Callable[..., Tensor]] = {
    "sum": global_add_pool,
    "mean": global_mean_pool,
    "max": global_max_pool,
}


def build_pooling(graph_pooling: str, dim: int) -> tuple[nn.Module | Callable[..., Tensor], int]:
    """Return ``(pool, output_width)`` for a pooling name; ``dim`` is the node-representation width.

    ``"set2setN"`` (e.g. ``"set2set2"`` as in the reference) is Set2Set with N processing steps and
    doubles the width.
    """
    if graph_pooling in _SIMPLE_POOLS:
        return _SIMPLE_POOLS[graph_pooling], dim
    if graph_pooling == "attention":
        return AttentionalAggregation(gate_nn=nn.Linear(dim, 1)), dim
    match = re.fullmatch(r"set2set(\d+)", graph_pooling)
    if match and int(match.group(1)) >= 1:
        return Set2Set(dim, processing_steps=int(match.group(1))), 2 * dim
    raise ValueError(f"unknown graph_pooling {graph_pooling!r}; expected one of {POOLINGS} (e.g. 'set2set2')")


class GNNGraphPred(nn.Module):
    """Graph-level multi-task model: encoder ``.gnn``, pooling ``.pool``, linear ``.graph_pred_linear``.

    ``forward(batch)`` takes a PyG ``Batch`` (``x``, ``edge_index``, ``edge_attr``, ``batch``) and
    returns logits ``[B, num_tasks]``. With ``center_pool=True`` (the reference's bio head) the
    graph vector is ``concat(pool(nodes), node[center_node_idx])``; ``batch.center_node_idx`` must
    hold one *global* node index per graph (already offset into the batch's node numbering, which
    PyG does when the dataset's ``Data.__inc__`` declares it; otherwise add ``batch.ptr[:-1]``).
    """

    def __init__(
        self,
        num_layer: int = 5,
        emb_dim: int = 300,
        num_tasks: int = 1,
        JK: str = "last",
        drop_ratio: float = 0.0,
        graph_pooling: str = "mean",
        gnn_type: str = "gin",
        input: str = "reference",
        center_pool: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
        self.num_layer = num_layer
        self.emb_dim = emb_dim
        self.num_tasks = num_tasks
        self.JK = JK
        self.drop_ratio = drop_ratio
        self.graph_pooling = graph_pooling
        self.center_pool = bool(center_pool)

        self.gnn = GNN(num_layer, emb_dim, JK=JK, drop_ratio=drop_ratio, gnn_type=gnn_type, input=input)
        self.pool, pooled_dim = build_pooling(graph_pooling, self.gnn.out_dim)
        self.graph_dim = pooled_dim + (self.gnn.out_dim if self.center_pool else 0)
        self.graph_pred_linear = nn.Linear(self.graph_dim, num_tasks)
        self.encoder_frozen = False

    # -- training mode -------------------------------------------------------------------------
    def freeze_encoder(self, frozen: bool = True) -> "GNNGraphPred":
        """Freeze (or unfreeze) the encoder: ``.gnn`` gets no gradients and stays in eval mode when the
        model is put in training mode, so its BatchNorm statistics and dropout are fixed and only the
        pooling and the linear head learn (a linear probe of the encoder's graph vectors). Returns ``self``."""
        self.encoder_frozen = bool(frozen)
        self.gnn.requires_grad_(not frozen)
        self.gnn.train(self.training and not frozen)
        return self

    def train(self, mode: bool = True) -> "GNNGraphPred":
        super().train(mode)
        if getattr(self, "encoder_frozen", False):
            self.gnn.eval()
        return self

    # -- forward -----------------------------------------------------------------------------
    def graph_embedding(self, batch: Any) -> Tensor:
        """The vector fed to the final linear layer, ``[B, graph_dim]`` (useful for probing)."""
        node_rep = self.gnn(batch.x, batch.edge_index, batch.edge_attr)
        index = getattr(batch, "batch", None)
        if index is None:
            index = torch.zeros(node_rep.size(0), dtype=torch.long, device=node_rep.device)
        num_graphs = getattr(batch, "num_graphs", None) or (int(index.max()) + 1 if index.numel() else 1)
        if isinstance(self.pool, nn.Module):  # AttentionalAggregation / Set2Set
            pooled = self.pool(node_rep, index, dim_size=num_graphs)
        else:
            pooled = self.pool(node_rep, index, size=num_graphs)
        if not self.center_pool:
            return pooled
        center = _global_center_index(batch, index, num_graphs)
        return torch.cat([pooled, node_rep[center]], dim=1)

    def forward(self, batch: Any) -> Tensor:
        return self.graph_pred_linear(self.graph_embedding(batch))

    # -- loading -------------------------------------------------------------------------------
    def load_encoder(self, state_dict_or_path: Mapping[str, Any] | str | Path, strict: bool = True) -> dict[str, Any]:
        """Load pre-trained encoder weights into ``.gnn`` (see :func:`gnnpretrain.nn.load_encoder_state`);
        raises one clear ``ValueError`` for a checkpoint of another architecture or size."""
        from gnnpretrain.nn.checkpoint import load_encoder_state

        return load_encoder_state(self.gnn, state_dict_or_path, strict=strict)

    def from_pretrained(self, model_file: Mapping[str, Any] | str | Path, strict: bool = True) -> "GNNGraphPred":
        """The reference's name for :meth:`load_encoder`; returns ``self`` for chaining."""
        self.load_encoder(model_file, strict=strict)
        return self


def _global_center_index(batch: Any, index: Tensor, num_graphs: int) -> Tensor:
    center = getattr(batch, "center_node_idx", None)
    if center is None:
        raise ValueError("center_pool=True needs batch.center_node_idx (one centre node index per graph)")
    center = center.reshape(-1).long()
    if center.numel() != num_graphs:
        raise ValueError(f"batch.center_node_idx has {center.numel()} entries for {num_graphs} graphs; expected one per graph")
    if center.numel() and (int(center.min()) < 0 or int(center.max()) >= index.numel()):
        raise ValueError("batch.center_node_idx points outside the batch's nodes")
    if not torch.equal(index[center], torch.arange(num_graphs, device=index.device)):
        raise ValueError(
            "batch.center_node_idx is not in batch node numbering (centre k must be a node of graph k); "
            "declare it in the dataset's Data.__inc__ so PyG offsets it, or add batch.ptr[:-1]"
        )
    return center
