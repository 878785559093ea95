"""Batched bio pre-training transforms: edge-attribute masking and centre-rooted context extraction.

Both work on a collated ``Batch`` on its own device, with tensor operations only, and reuse the
shared machinery of :mod:`gnnpretrain.data` (per-graph uniform sampling, hop distances, induced
subgraphs) instead of a second implementation.

* :func:`mask_edges` — the reference's bio ``MaskEdge``: per graph, ``int(m × rate + 1)`` distinct
  *undirected* edges (``m`` = number of undirected edges) are drawn uniformly; both directions get the
  mask vector ``[0]*8 + [1]`` (mask flag); the labels are the original 9-column rows of the first
  direction. Graphs without edges mask nothing. Requires the bio edge layout: every undirected edge
  stored as ``i→j`` immediately followed by ``j→i`` (checked).
* :func:`center_context` — the reference's bio ``ExtractSubstructureContextPair(l1=r1, center=True)``:
  the substructure is the whole ego-network rooted at its centre; the context is the subgraph induced
  by the nodes farther than ``r1`` hops from the centre; all context nodes are anchors. Graphs with an
  empty context (every node within ``r1`` hops) are dropped and counted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from gnnpretrain.bio.egonet import MASK_COL, NUM_EDGE_FEATURES
from gnnpretrain.data.context import ContextPair, extract_context, graph_ptr, node_graph
from gnnpretrain.data.masking import num_to_mask, sample_per_graph

NUM_CHANNELS = 7


@dataclass
class MaskedEdges:
    """A masked copy of the batch; ``masked_edge_indices`` index ``batch.edge_index`` columns (the
    first direction of each masked pair, sorted); ``masked_edge_labels`` are their original ``[M, 9]`` rows."""

    batch: object
    masked_edge_indices: Tensor
    masked_edge_labels: Tensor

    def channel_labels(self) -> Tensor:
        """Class per masked edge as the reference trains it: the first set channel among the 7
        (argmax of the multi-hot row; an edge with no channel set maps to class 0)."""
        return torch.argmax(self.masked_edge_labels[:, :NUM_CHANNELS], dim=1)


def check_paired_edges(edge_index: Tensor) -> None:
    """Raise unless edges come in ``(i→j, j→i)`` pairs at positions ``(2p, 2p+1)``."""
    e = edge_index.size(1)
    if e % 2:
        raise ValueError(f"bio edge masking expects each undirected edge stored twice (i→j then j→i); found an odd number of edges ({e})")
    if e and not torch.equal(edge_index[:, 0::2], edge_index[:, 1::2].flip(0)):
        raise ValueError(
            "bio edge masking expects edge k+1 to be the reverse of edge k for every even k (the layout "
            "gnnpretrain.bio builds and the reference's BioDataset uses); this batch's edges are not paired"
        )


def mask_edges(batch, mask_rate: float = 0.15, generator: torch.Generator | None = None) -> MaskedEdges:
    """Mask ``int(m × mask_rate + 1)`` undirected edges per graph (see module docstring)."""
    if not 0.0 <= mask_rate <= 1.0:
        raise ValueError(f"mask_rate must be in [0, 1]; got {mask_rate}")
    edge_index, edge_attr = batch.edge_index, batch.edge_attr
    if edge_attr is None or edge_attr.dim() != 2 or edge_attr.size(1) != NUM_EDGE_FEATURES:
        raise ValueError(f"bio edge masking expects edge_attr of shape [E, {NUM_EDGE_FEATURES}]; got "
                         f"{None if edge_attr is None else tuple(edge_attr.shape)}")
    check_paired_edges(edge_index)
    device = edge_index.device
    ptr = graph_ptr(batch).to(device)
    ngraph = node_graph(batch, ptr).to(device)
    num_graphs = ptr.numel() - 1
    pair_graph = ngraph[edge_index[0, 0::2]]
    pairs = torch.bincount(pair_graph, minlength=num_graphs)
    if pair_graph.numel() and not bool((pair_graph[1:] >= pair_graph[:-1]).all()):
        raise ValueError("bio edge masking expects each graph's edges to be contiguous (a collated batch)")
    pair_ptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=device)
    torch.cumsum(pairs, 0, out=pair_ptr[1:])
    chosen_pairs = sample_per_graph(pair_ptr, num_to_mask(pairs, mask_rate), generator, ngraph=pair_graph)
    first = 2 * chosen_pairs
    labels = edge_attr[first].clone()
    masked = copy.copy(batch)
    new_attr = edge_attr.clone()
    mask_row = torch.zeros(NUM_EDGE_FEATURES, dtype=edge_attr.dtype, device=device)
    mask_row[MASK_COL] = 1
    both = torch.cat([first, first + 1])
    new_attr[both] = mask_row
    masked.edge_attr = new_attr
    return MaskedEdges(batch=masked, masked_edge_indices=first, masked_edge_labels=labels)


def center_roots(batch) -> Tensor:
    """Each graph's centre as a *local* node index (from ``center_node_idx``, global when batched)."""
    center = getattr(batch, "center_node_idx", None)
    if center is None:
        raise ValueError("bio context prediction needs batch.center_node_idx (the centre protein of each ego-network)")
    ptr = graph_ptr(batch).to(center.device)
    center = center.view(-1).long()
    if center.numel() != ptr.numel() - 1:
        raise ValueError(f"center_node_idx has {center.numel()} entries for {ptr.numel() - 1} graphs")
    local = center - ptr[:-1] if getattr(batch, "ptr", None) is not None else center
    return local


def center_context(batch, r1: int = 1) -> ContextPair:
    """Whole ego-network as substructure, nodes beyond ``r1`` hops from the centre as context."""
    if r1 < 0:
        raise ValueError(f"r1 must be >= 0 hops; got {r1}")
    ptr = graph_ptr(batch)
    counts = ptr[1:] - ptr[:-1]
    # Any node of a connected n-node graph is within n-1 hops; this bound makes "whole graph" exact.
    far = max(int(counts.max()) - 1, r1 + 1) if counts.numel() else r1 + 1
    return extract_context(batch, k=far, r1=r1, r2=far, roots=center_roots(batch))
