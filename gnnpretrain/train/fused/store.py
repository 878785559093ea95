"""The training split as flat tensors, and the batch-index sampler of the separate loop.

Why: a fused group needs G batches per step; gathering them from flat tensors with a few index
operations is far cheaper than G ``Batch.from_data_list`` calls.
"""

from __future__ import annotations

from typing import Sequence

import torch

from gnnpretrain.nn.stacked import FusedBatch

__all__ = ["TrainStore", "index_loader"]

Tensor = torch.Tensor


class TrainStore:
    """The training split as flat tensors, so G batches are gathered into one :class:`FusedBatch`
    with a few index operations instead of G ``Batch.from_data_list`` calls."""

    def __init__(self, graphs: Sequence) -> None:
        self.x = torch.cat([g.x for g in graphs])
        self.edge_index = torch.cat([g.edge_index for g in graphs], dim=1)
        self.edge_attr = torch.cat([g.edge_attr for g in graphs])
        self.num_nodes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
        self.num_edges = torch.tensor([g.edge_index.size(1) for g in graphs], dtype=torch.long)
        self.node_ptr = torch.cat([torch.zeros(1, dtype=torch.long), self.num_nodes.cumsum(0)])
        self.edge_ptr = torch.cat([torch.zeros(1, dtype=torch.long), self.num_edges.cumsum(0)])
        self.y = torch.cat([g.y.reshape(1, -1) for g in graphs]).float()

    def __len__(self) -> int:
        return int(self.num_nodes.numel())

    @staticmethod
    def _ranges(starts: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """Concatenated ``arange(s, s + c)`` for each pair, and the position inside each range."""
        total = int(counts.sum())
        seg_start = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        within = torch.arange(total) - seg_start
        return torch.repeat_interleave(starts, counts) + within, within

    def collate(self, idx: "Tensor", padded: bool = False) -> FusedBatch:
        """``idx [G, B]`` graph indices (model g's batch in row g, in its sampled order).

        Unpadded (the CPU layout): model after model, like one PyG batch of all G*B graphs.
        ``padded=True`` (the GPU layout): model g's nodes in rows ``g*Nmax ...``, for batched matmuls.
        """
        G, B = idx.shape
        flat = idx.reshape(-1)
        nc, ec = self.num_nodes[flat], self.num_edges[flat]
        counts = nc.view(G, B).sum(1)
        nmax = int(counts.max())
        src, within = self._ranges(self.node_ptr[flat], nc)
        if padded:
            local_off = nc.view(G, B).cumsum(1) - nc.view(G, B)
            goff = (torch.arange(G).view(G, 1) * nmax + local_off).reshape(-1)  # first node of each graph
            dst = torch.repeat_interleave(goff, nc) + within
            x = torch.zeros(G * nmax, self.x.size(1), dtype=self.x.dtype)
            x[dst] = self.x[src]
            graph_index = torch.full((G * nmax,), G * B, dtype=torch.long)
            graph_index[dst] = torch.repeat_interleave(torch.arange(G * B), nc)
        else:
            goff = nc.cumsum(0) - nc
            x = self.x[src]
            graph_index = torch.repeat_interleave(torch.arange(G * B), nc)
        esrc, _ = self._ranges(self.edge_ptr[flat], ec)
        edge_index = self.edge_index[:, esrc] + torch.repeat_interleave(goff, ec)
        edge_model = torch.repeat_interleave(torch.arange(G), ec.view(G, B).sum(1))
        return FusedBatch(
            x=x, edge_index=edge_index, edge_attr=self.edge_attr[esrc], edge_model=edge_model, counts=counts,
            graph_index=graph_index, num_models=G, nmax=nmax, num_graphs=B, y=self.y[flat].view(G, B, -1),
            padded=padded,
        )


def index_loader(n: int, batch_size: int, generator: torch.Generator):
    """Batches of training-graph *indices* drawn exactly as :func:`gnnpretrain.train.run.data.train_loader` draws its
    graphs: the same ``DataLoader`` sampler and per-epoch generator use, over ``range(n)``."""
    from torch.utils.data import DataLoader

    return DataLoader(range(n), batch_size=batch_size, shuffle=True, generator=generator)
