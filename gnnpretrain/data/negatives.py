"""Positive and negative node pairs for edge-prediction pre-training, for a whole batch at once.

Reference semantics (``NegativeEdge`` in the paper's code): positives are one direction of every bond
(``edge_index[:, ::2]``); negatives are ``E_g / 2`` node pairs of each graph ``g`` (``E_g`` = directed
edges, so one negative per bond) that are not bonds, not self-pairs and not repeated. The reference draws
``5 E_g`` random ordered pairs and keeps the valid ones in draw order, so it may return fewer (and may
return both ``(a, b)`` and ``(b, a)``).

Here, for batches of small graphs (molecules), every unordered non-bonded pair ``a < b`` of every graph is
enumerated and ``min(E_g / 2, available)`` of them are drawn uniformly without replacement — exactly
``E_g / 2`` whenever the graph has that many non-bonds, never a duplicate. When the batch's total number
of node pairs ``sum n_g^2`` exceeds ``max_pairs`` (large graphs), the reference's rejection scheme is used
instead (``5 E_g`` draws per graph), deduplicated on unordered pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .context import graph_ptr, node_graph
from .masking import sample_per_graph


def _edge_layout(edge_index: Tensor, ngraph: Tensor, num_graphs: int):
    src = edge_index[0]
    egraph = ngraph[src]
    ecounts = torch.bincount(egraph, minlength=num_graphs)
    eptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=src.device)
    torch.cumsum(ecounts, 0, out=eptr[1:])
    local = torch.arange(src.numel(), device=src.device) - eptr[egraph]
    return ecounts, local


def sample_negative_edges(
    batch, generator: torch.Generator | None = None, max_pairs: int = 4_000_000
) -> tuple[Tensor, Tensor]:
    """Return ``(pos_edge_index [2, E/2], neg_edge_index [2, ≈E/2])`` in the batch's node numbering."""
    edge_index = batch.edge_index
    device = edge_index.device
    ptr = graph_ptr(batch).to(device)
    ngraph = node_graph(batch, ptr).to(device)
    num_graphs = ptr.numel() - 1
    counts = ptr[1:] - ptr[:-1]

    ecounts, local = _edge_layout(edge_index, ngraph, num_graphs)
    pos = edge_index[:, local % 2 == 0]
    want = ecounts // 2

    pairs_per = counts * counts
    if int(pairs_per.sum()) <= max_pairs:
        a, b, pg = _non_bonded_pairs(edge_index, ptr, counts, pairs_per, ngraph)
    else:
        a, b, pg = _random_non_bonded_pairs(edge_index, ptr, counts, 5 * ecounts, generator)

    ccounts = torch.bincount(pg, minlength=num_graphs)
    cptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=device)
    torch.cumsum(ccounts, 0, out=cptr[1:])
    chosen = sample_per_graph(cptr, torch.minimum(want, ccounts), generator, pg)
    return pos, torch.stack([a[chosen], b[chosen]])


def _non_bonded_pairs(edge_index: Tensor, ptr: Tensor, counts: Tensor, pairs_per: Tensor, ngraph: Tensor):
    """Every unordered non-bonded pair (a, b), a < b, of every graph, grouped by graph (global numbers).

    Graph g's ordered pairs occupy a block of ``n_g * n_g`` slots (slot ``a * n_g + b``); bonds are marked
    in that layout directly, so no sorting or hashing is needed.
    """
    device = ptr.device
    total = int(pairs_per.sum())
    start = torch.cumsum(pairs_per, 0) - pairs_per
    bonded = torch.zeros(total, dtype=torch.bool, device=device)
    src, dst = edge_index
    g = ngraph[src]
    base = ptr[:-1][g]
    bonded[start[g] + (src - base) * counts[g] + (dst - base)] = True
    pg = torch.repeat_interleave(torch.arange(counts.numel(), device=device), pairs_per, output_size=total)
    q = torch.arange(total, device=device) - start[pg]
    n = counts[pg]
    a, b = q // n, q % n
    keep = ((a < b) & ~bonded).nonzero().view(-1)
    pg = pg[keep]
    base = ptr[:-1][pg]
    return a[keep] + base, b[keep] + base, pg


def _random_non_bonded_pairs(edge_index: Tensor, ptr: Tensor, counts: Tensor, draws: Tensor, generator):
    """The reference's rejection scheme: ``draws[g]`` random pairs per graph, minus self-pairs, bonds and
    repeats (unordered), in draw order, grouped by graph."""
    device = ptr.device
    n_total = int(ptr[-1])
    a, b, pg = _random_pairs(ptr, counts, draws, generator)
    src, dst = edge_index
    bond_keys = torch.unique(torch.minimum(src, dst) * n_total + torch.maximum(src, dst))
    ok = a != b
    a, b, pg = a[ok], b[ok], pg[ok]
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    keys = lo * n_total + hi
    ok = ~torch.isin(keys, bond_keys)
    lo, hi, pg, keys = lo[ok], hi[ok], pg[ok], keys[ok]
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((uniq.numel(),), keys.numel(), dtype=torch.long, device=device)
    first.scatter_reduce_(0, inverse, torch.arange(keys.numel(), device=device), reduce="amin")
    first = torch.sort(first).values  # back to draw order, still grouped by graph
    return lo[first], hi[first], pg[first]


def _random_pairs(ptr: Tensor, counts: Tensor, draws: Tensor, generator: torch.Generator | None):
    """``draws[g]`` uniformly random ordered node pairs of each graph, grouped by graph."""
    device = ptr.device
    total = int(draws.sum())
    pg = torch.repeat_interleave(torch.arange(counts.numel(), device=device), draws, output_size=total)
    gen_device = generator.device if generator is not None else device
    u = torch.rand(2, total, generator=generator, device=gen_device, dtype=torch.float64).to(device)
    n = counts[pg]
    a = torch.minimum((u[0] * n).long(), n - 1) + ptr[:-1][pg]
    b = torch.minimum((u[1] * n).long(), n - 1) + ptr[:-1][pg]
    return a, b, pg
