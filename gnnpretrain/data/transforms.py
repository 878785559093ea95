"""Per-graph transforms with the reference's attribute names, for users porting the paper's code.

These are deliberately independent implementations (a plain-Python breadth-first search, Python
sampling) of the batched functions in :mod:`.context` and :mod:`.masking`, so that the test suite can
check the fast batched path against them. They are slow (one Python loop per graph); for training use
:func:`gnnpretrain.data.extract_context` / :func:`gnnpretrain.data.mask_atoms` on whole batches.

Attributes written (reference names):

* :class:`ExtractSubstructureContext`: ``x_substruct``, ``edge_index_substruct``,
  ``edge_attr_substruct``, ``center_substruct_idx`` (``[1]``); and, only when the context is non-empty,
  ``x_context``, ``edge_index_context``, ``edge_attr_context``, ``overlap_context_substruct_idx``
  (anchor positions in the context numbering).
* :class:`MaskAtom`: ``masked_atom_indices``, ``mask_node_label`` (original rows of ``x``), and with
  ``mask_edge`` ``connected_edge_indices`` (one direction per bond) and ``mask_edge_label`` (original
  rows of ``edge_attr``).

Batching their outputs needs a collate that offsets ``edge_index_substruct`` / ``center_substruct_idx``
by the substructure sizes and ``edge_index_context`` / ``overlap_context_substruct_idx`` by the context
sizes (the reference's ``BatchSubstructContext``); PyG's default collate would offset them by the whole
molecule's node count.
"""

from __future__ import annotations

import copy
import random
from collections import deque

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from .masking import MASK_ATOM_TYPE, MASK_BOND_TYPE


def bfs_hops(num_nodes: int, edge_index: torch.Tensor, root: int, cutoff: int) -> dict[int, int]:
    """Hop distance from ``root`` of every node within ``cutoff`` hops (plain-Python BFS)."""
    adj: list[list[int]] = [[] for _ in range(num_nodes)]
    for u, v in edge_index.t().tolist():
        adj[u].append(v)
    dist = {root: 0}
    todo = deque([root])
    while todo:
        u = todo.popleft()
        if dist[u] == cutoff:
            continue
        for v in adj[u]:
            if v not in dist:
                dist[v] = dist[u] + 1
                todo.append(v)
    return dist


def induced_subgraph(data: Data, nodes: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Node-induced subgraph on ``nodes`` (kept in ascending order), edges in original order."""
    nodes = sorted(nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    keep, new_edges = [], []
    for e, (u, v) in enumerate(data.edge_index.t().tolist()):
        if u in pos and v in pos:
            keep.append(e)
            new_edges.append((pos[u], pos[v]))
    x = data.x[nodes]
    ei = torch.tensor(new_edges, dtype=torch.long).t().reshape(2, -1)
    ea = data.edge_attr[keep] if getattr(data, "edge_attr", None) is not None else None
    return x, ei, ea


class ExtractSubstructureContext(BaseTransform):
    """Per-graph twin of :func:`gnnpretrain.data.extract_context` (same node sets for the same root)."""

    def __init__(self, k: int = 5, r1: int = 4, r2: int = 7, seed: int | None = None) -> None:
        if k < 0 or r2 < 0 or r1 < -1 or r1 >= r2:
            raise ValueError(f"need k >= 0 and -1 <= r1 < r2; got k={k}, r1={r1}, r2={r2}")
        self.k, self.r1, self.r2 = k, r1, r2
        self.rng = random.Random(seed)

    def forward(self, data: Data, root: int | None = None) -> Data:  # type: ignore[override]
        data = copy.copy(data)
        n = data.num_nodes
        if root is None:
            root = self.rng.randrange(n)
        dist = bfs_hops(n, data.edge_index, root, max(self.k, self.r2))
        sub = [v for v, d in dist.items() if d <= self.k]
        ctx = [v for v, d in dist.items() if self.r1 < d <= self.r2]
        data.x_substruct, data.edge_index_substruct, data.edge_attr_substruct = induced_subgraph(data, sub)
        data.center_substruct_idx = torch.tensor([sorted(sub).index(root)])
        anchors = sorted(set(ctx) & set(sub))
        if ctx and anchors:
            data.x_context, data.edge_index_context, data.edge_attr_context = induced_subgraph(data, ctx)
            ctx_pos = {v: i for i, v in enumerate(sorted(ctx))}
            data.overlap_context_substruct_idx = torch.tensor([ctx_pos[v] for v in anchors], dtype=torch.long)
        return data

    def __call__(self, data: Data, root: int | None = None) -> Data:  # reference call signature
        return self.forward(data, root)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(k={self.k}, r1={self.r1}, r2={self.r2})"


class MaskAtom(BaseTransform):
    """Per-graph twin of :func:`gnnpretrain.data.mask_atoms` (reference ``MaskAtom`` semantics)."""

    def __init__(
        self,
        num_atom_type: int = MASK_ATOM_TYPE,
        num_edge_type: int = MASK_BOND_TYPE,
        mask_rate: float = 0.15,
        mask_edge: bool = False,
        seed: int | None = None,
    ) -> None:
        self.num_atom_type, self.num_edge_type = num_atom_type, num_edge_type
        self.mask_rate, self.mask_edge = mask_rate, mask_edge
        self.rng = random.Random(seed)

    def forward(self, data: Data, masked_atom_indices: list[int] | None = None) -> Data:  # type: ignore[override]
        data = copy.copy(data)
        n = data.x.size(0)
        if masked_atom_indices is None:
            masked_atom_indices = self.rng.sample(range(n), min(n, int(n * self.mask_rate + 1)))
        masked = [int(i) for i in masked_atom_indices]
        data.mask_node_label = data.x[masked].clone()
        data.masked_atom_indices = torch.tensor(masked, dtype=torch.long)
        x = data.x.clone()
        for i in masked:
            x[i, 0] = self.num_atom_type
            x[i, 1:] = 0
        data.x = x
        if self.mask_edge:
            mset = set(masked)
            touched = [e for e, (u, v) in enumerate(data.edge_index.t().tolist()) if u in mset or v in mset]
            one_dir = [e for e in touched if e % 2 == 0]
            data.connected_edge_indices = torch.tensor(one_dir, dtype=torch.long)
            data.mask_edge_label = data.edge_attr[one_dir].clone().view(-1, data.edge_attr.size(1))
            ea = data.edge_attr.clone()
            for e in touched:
                ea[e, 0] = self.num_edge_type
                ea[e, 1:] = 0
            data.edge_attr = ea
        return data

    def __call__(self, data: Data, masked_atom_indices: list[int] | None = None) -> Data:
        return self.forward(data, masked_atom_indices)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_atom_type={self.num_atom_type}, num_edge_type={self.num_edge_type}, "
            f"mask_rate={self.mask_rate}, mask_edge={self.mask_edge})"
        )
