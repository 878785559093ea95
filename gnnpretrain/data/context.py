"""Batched substructure / context extraction for context prediction (Hu et al. 2020), on any device.

The reference builds a networkx graph per molecule and runs a shortest-path search from a random root
(``ExtractSubstructureContextPair`` in its ``chem/util.py``), which caps data loading at a few hundred
graphs per second. Here the whole batch is processed at once:

1. one root per graph, uniform over its atoms (``torch.Generator`` for reproducibility);
2. breadth-first search over the batch's edge list: a boolean frontier is pushed through ``edge_index``
   ``max(k, r2)`` times, recording each node's hop distance to its own graph's root (graphs in a batch
   are disconnected from each other, so one search serves all of them; nodes in another fragment of the
   molecule are never reached);
3. masks ``d <= k`` (substructure), ``r1 < d <= r2`` (context) and their intersection (anchors);
4. node-induced subgraphs of both masks, renumbered with a cumulative sum.

Semantics follow the reference: the substructure and the context are *node-induced* subgraphs (every bond
between two selected atoms is kept, including ring-closing bonds between two atoms at distance k); the
root's position is stored in the substructure numbering; the anchor indices are positions in the context
numbering; graphs without context are left out (counted in ``num_dropped``). Node order inside each
subgraph is ascending original node order and edge order is the original edge order (the reference's
networkx round trip may permute both, which changes no node set and no result of a permutation-invariant
GNN). Differences, on purpose: ``sub_center`` is already offset into the batched substructure numbering
(as the reference's collate does); a graph whose context is non-empty but has no anchor (only possible
when ``r1 >= k``) is also dropped, because the reference would crash on it; ``k = 0`` means "the root
alone" rather than the reference's networkx-quirk workaround.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class ContextPair:
    """Substructures and contexts of the kept graphs of one batch (see module docstring).

    ``sub_center[i]`` is the root of kept graph ``i`` as an index into ``sub_x``; ``anchor`` indexes
    ``ctx_x`` and ``anchor_batch`` gives each anchor's kept-graph id; ``kept`` are the original graph ids
    (positions in the input batch) that were kept, in order; ``roots`` the root of every input graph in
    its own local numbering.
    """

    sub_x: Tensor
    sub_edge_index: Tensor
    sub_edge_attr: Tensor | None
    sub_batch: Tensor
    sub_center: Tensor
    ctx_x: Tensor
    ctx_edge_index: Tensor
    ctx_edge_attr: Tensor | None
    ctx_batch: Tensor
    anchor: Tensor
    anchor_batch: Tensor
    kept: Tensor
    num_dropped: int
    roots: Tensor | None = None

    @property
    def num_graphs(self) -> int:
        """Number of kept graphs (substructure/context pairs)."""
        return int(self.kept.numel())

    def to(self, device: torch.device | str) -> "ContextPair":
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v.to(device) if isinstance(v, Tensor) else v
        return ContextPair(**kw)


def graph_ptr(batch) -> Tensor:
    """``batch.ptr`` if present, else offsets computed from the (sorted) ``batch.batch`` vector."""
    ptr = getattr(batch, "ptr", None)
    if ptr is not None:
        return ptr
    b = getattr(batch, "batch", None)
    n = batch.x.size(0)
    if b is None:  # a single Data object
        return torch.tensor([0, n], device=batch.x.device)
    num_graphs = int(getattr(batch, "num_graphs", None) or (int(b.max()) + 1 if n else 0))
    counts = torch.bincount(b, minlength=num_graphs)
    out = torch.zeros(num_graphs + 1, dtype=torch.long, device=b.device)
    torch.cumsum(counts, 0, out=out[1:])
    return out


def node_graph(batch, ptr: Tensor) -> Tensor:
    """Graph id of every node (``batch.batch``, or built from ``ptr`` for a single ``Data``)."""
    b = getattr(batch, "batch", None)
    if b is not None:
        return b
    counts = ptr[1:] - ptr[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=ptr.device), counts)


def sample_roots(ptr: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One node per graph, uniformly at random, as a *local* index (0 for empty graphs)."""
    counts = ptr[1:] - ptr[:-1]
    gen_device = generator.device if generator is not None else counts.device
    u = torch.rand(counts.numel(), generator=generator, device=gen_device, dtype=torch.float64).to(counts.device)
    return torch.minimum((u * counts).long(), (counts - 1).clamp(min=0))


def bfs_distances(
    edge_index: Tensor, num_nodes: int, sources: Tensor, max_dist: int, source_mask: Tensor | None = None
) -> Tensor:
    """Hop distance (int32) from the nearest of ``sources`` for every node; ``max_dist + 1`` if farther.

    Frontier expansion written as ``max_dist`` rounds of ``dist[dst] = min(dist[dst], dist[src] + 1)``
    over the whole edge list (messages flow ``src → dst``; molecular edge lists hold both directions):
    round ``t`` settles exactly the nodes at distance ``t``, so the result equals a breadth-first search
    truncated at ``max_dist``. Two tensor operations per round and no host synchronisation, so it runs
    asynchronously on GPU. ``source_mask`` (same length as ``sources``) disables some sources without a
    boolean-indexing sync (used for empty graphs, whose nominal root is not one of their nodes).
    """
    device = edge_index.device
    unreached = max_dist + 1
    dist = torch.full((num_nodes,), unreached, dtype=torch.int32, device=device)
    if source_mask is None:
        dist[sources] = 0
    elif sources.numel() and num_nodes:
        start = torch.where(source_mask, 0, unreached).to(torch.int32)
        dist.scatter_reduce_(0, sources.clamp(max=num_nodes - 1), start, reduce="amin")
    src, dst = edge_index[0], edge_index[1]
    for _ in range(max_dist):
        dist.scatter_reduce_(0, dst, dist.index_select(0, src) + 1, reduce="amin")
    return dist.clamp_(max=max_dist + 1)


def _induced(mask: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None, new_graph_of_node: Tensor):
    """Node-induced subgraph of ``mask``: (x, edge_index renumbered, edge_attr, batch, old→new map)."""
    nodes = mask.nonzero().view(-1)
    remap = torch.cumsum(mask, 0) - 1
    edges = (mask.index_select(0, edge_index[0]) & mask.index_select(0, edge_index[1])).nonzero().view(-1)
    ei = remap[edge_index.index_select(1, edges)]
    ea = edge_attr.index_select(0, edges) if edge_attr is not None else None
    return x.index_select(0, nodes), ei, ea, new_graph_of_node.index_select(0, nodes), remap, nodes


def extract_context(
    batch,
    k: int = 5,
    r1: int = 4,
    r2: int = 7,
    roots: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> ContextPair:
    """Split every graph of ``batch`` into a k-hop substructure and an (r1, r2] context ring.

    Args:
        batch: a ``torch_geometric`` ``Batch`` (or a single ``Data``) with ``x``, ``edge_index``,
            optional ``edge_attr``; processed on its own device.
        k: substructure radius (the reference uses ``num_layer`` = 5).
        r1, r2: the context holds nodes at distance ``r1 < d <= r2`` (reference: ``k - 1`` and
            ``k - 1 + csize`` with csize = 3). ``r1 = -1`` includes the root.
        roots: optional fixed roots, one *local* node index per graph (``[num_graphs]``); by default
            sampled uniformly with ``generator``.
    """
    if k < 0 or r2 < 0 or r1 < -1 or r1 >= r2:
        raise ValueError(f"need k >= 0 and -1 <= r1 < r2; got k={k}, r1={r1}, r2={r2}")
    x, edge_index = batch.x, batch.edge_index
    edge_attr = getattr(batch, "edge_attr", None)
    device = x.device
    ptr = graph_ptr(batch).to(device)
    ngraph = node_graph(batch, ptr).to(device)
    num_graphs = ptr.numel() - 1
    counts = ptr[1:] - ptr[:-1]
    num_nodes = x.size(0)

    if roots is None:
        roots = sample_roots(ptr, generator)
    else:
        roots = torch.as_tensor(roots, dtype=torch.long, device=device).view(-1)
        if roots.numel() != num_graphs:
            raise ValueError(f"roots must hold one local node index per graph ({num_graphs}); got {roots.numel()}")
        bad = (roots < 0) | ((roots >= counts) & (counts > 0))  # empty graphs: any root, dropped anyway
        if bool(bad.any()):
            g = int(bad.nonzero()[0])
            raise ValueError(f"root {int(roots[g])} of graph {g} is outside its {int(counts[g])} nodes")
    nonempty = counts > 0
    root_global = ptr[:-1] + roots

    dist = bfs_distances(edge_index, num_nodes, root_global, max(k, r2), source_mask=nonempty)
    sub_mask = dist <= k
    ctx_mask = (dist > r1) & (dist <= r2)
    anc_mask = sub_mask & ctx_mask

    ctx_count = torch.zeros(num_graphs, dtype=torch.long, device=device).index_add_(0, ngraph, ctx_mask.long())
    anc_count = torch.zeros(num_graphs, dtype=torch.long, device=device).index_add_(0, ngraph, anc_mask.long())
    keep_graph = (ctx_count > 0) & (anc_count > 0) & nonempty
    kept = keep_graph.nonzero().view(-1)
    new_gid = torch.cumsum(keep_graph, 0) - 1
    node_keep = keep_graph[ngraph]
    sub_mask &= node_keep
    ctx_mask &= node_keep
    anc_mask &= node_keep
    new_graph_of_node = new_gid[ngraph]

    sub_x, sub_ei, sub_ea, sub_batch, sub_remap, _ = _induced(sub_mask, x, edge_index, edge_attr, new_graph_of_node)
    ctx_x, ctx_ei, ctx_ea, ctx_batch, ctx_remap, _ = _induced(ctx_mask, x, edge_index, edge_attr, new_graph_of_node)
    anchor_nodes = anc_mask.nonzero().view(-1)
    return ContextPair(
        sub_x=sub_x, sub_edge_index=sub_ei, sub_edge_attr=sub_ea, sub_batch=sub_batch,
        sub_center=sub_remap[root_global.index_select(0, kept)],
        ctx_x=ctx_x, ctx_edge_index=ctx_ei, ctx_edge_attr=ctx_ea, ctx_batch=ctx_batch,
        anchor=ctx_remap[anchor_nodes], anchor_batch=new_graph_of_node[anchor_nodes],
        kept=kept, num_dropped=int(num_graphs - kept.numel()), roots=roots,
    )
