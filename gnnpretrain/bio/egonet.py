"""Ego-network extraction from a PPI network.

Why capped: human STRING has hub proteins with hundreds of partners; a plain radius-2 ego-network
of a hub would hold thousands of proteins, while the paper's ego-networks are small. The rule here
(documented in bio/README.md):

* start from the centre protein; for ``radius`` hops, every node of the current frontier contributes
  its ``max_neighbors`` highest-scoring partners (STRING combined score, ties by lower node index;
  partners already in the ego-network count towards the ``max_neighbors``); new partners form the
  next frontier. Optionally stop adding nodes once ``max_nodes`` are in.
* the ego-network is the subgraph *induced* by the chosen proteins (every PPI edge between two chosen
  proteins is kept, not only the edges used to reach them).
* node 0 is the centre; the other nodes follow in the order they were reached.
* each undirected edge is stored twice, ``i→j`` immediately followed by ``j→i`` (the reference's
  layout, which its edge masking relies on), pairs sorted by ``(i, j)`` with ``i < j``.
* edge features are the 9 columns ``[7 binary channels, self-loop flag = 0, mask flag = 0]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from gnnpretrain.bio.ppi import PPINetwork

NUM_EDGE_FEATURES = 9
SELF_LOOP_COL = 7
MASK_COL = 8


@dataclass
class EgoNetwork:
    nodes: np.ndarray  # [n] global protein indices, centre first
    edge_index: torch.Tensor  # [2, 2m] local indices, pairs (i→j, j→i)
    edge_attr: torch.Tensor  # [2m, 9] float


class EgoNetworkExtractor:
    """Precomputes adjacency and neighbour rankings once, then extracts ego-networks fast."""

    def __init__(self, net: PPINetwork, radius: int = 2, max_neighbors: int | None = 10, max_nodes: int | None = None):
        if radius < 1:
            raise ValueError(f"radius must be >= 1 (hops from the centre protein); got {radius}")
        if max_neighbors is not None and max_neighbors < 1:
            raise ValueError(f"max_neighbors must be >= 1 or None (no cap); got {max_neighbors}")
        if max_nodes is not None and max_nodes < 2:
            raise ValueError(f"max_nodes must be >= 2 or None (no cap); got {max_nodes}")
        self.net = net
        self.radius = radius
        self.max_neighbors = max_neighbors
        self.max_nodes = max_nodes
        n, m = net.num_proteins, net.num_edges
        a, b = net.edges[:, 0], net.edges[:, 1]
        rows = np.concatenate([a, b])
        cols = np.concatenate([b, a])
        eid = np.concatenate([np.arange(m), np.arange(m)]) + 1  # +1: 0 is "no edge" in sparse storage
        self.adj = sp.csr_matrix((eid.astype(np.int64), (rows, cols)), shape=(n, n))
        self.adj.sort_indices()
        # Neighbour ranking: by score descending, then neighbour index ascending.
        score = np.concatenate([net.score, net.score])
        order = np.lexsort((cols, -score, rows))
        ranked = cols[order]
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.add.at(ptr, rows + 1, 1)
        ptr = np.cumsum(ptr)
        self._ranked, self._ptr = ranked, ptr
        # 9-column feature row per undirected edge (self-loop and mask flags zero).
        feats = np.zeros((m, NUM_EDGE_FEATURES), dtype=np.float32)
        feats[:, :7] = net.channels
        self._feats = feats

    def top_neighbors(self, u: int) -> np.ndarray:
        lo, hi = self._ptr[u], self._ptr[u + 1]
        if self.max_neighbors is not None:
            hi = min(hi, lo + self.max_neighbors)
        return self._ranked[lo:hi]

    def nodes_of(self, center: int) -> np.ndarray:
        """The chosen proteins (global indices), centre first, in the order reached."""
        nodes = [int(center)]
        seen = {int(center)}
        frontier = [int(center)]
        cap = self.max_nodes
        for _ in range(self.radius):
            nxt: list[int] = []
            for u in frontier:
                for v in self.top_neighbors(u).tolist():
                    if v not in seen:
                        seen.add(v)
                        nodes.append(v)
                        nxt.append(v)
                        if cap is not None and len(nodes) >= cap:
                            return np.asarray(nodes, dtype=np.int64)
            frontier = nxt
            if not frontier:
                break
        return np.asarray(nodes, dtype=np.int64)

    def __call__(self, center: int) -> EgoNetwork:
        nodes = self.nodes_of(center)
        sub = self.adj[nodes][:, nodes].tocoo()
        upper = sub.row < sub.col
        r, c, e = sub.row[upper], sub.col[upper], sub.data[upper] - 1
        order = np.lexsort((c, r))
        r, c, e = r[order], c[order], e[order]
        src = np.stack([r, c], axis=1).reshape(-1)
        dst = np.stack([c, r], axis=1).reshape(-1)
        edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
        edge_attr = torch.from_numpy(np.repeat(self._feats[e], 2, axis=0))
        return EgoNetwork(nodes=nodes, edge_index=edge_index, edge_attr=edge_attr)
