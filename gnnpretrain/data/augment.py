"""Batched graph augmentations for contrastive pre-training (GraphCL, You et al. 2020).

GraphCL's molecular recipe (Shen-Lab/GraphCL, ``transferLearning_MoleculeNet_PPI/chem``, run with
``--aug1 random --aug2 random``, ``aug_ratio`` 0.2) makes each view of a molecule by *node dropping* or
*subgraph* sampling, chosen per molecule and per view with probability 1/2. The official code does this
molecule by molecule in numpy inside the dataset's ``get``; here one call augments a whole batch with
tensor operations on the batch's device. The node sets are drawn with the official distributions:

``dropN`` (:func:`drop_nodes_keep`)
    drops exactly ``int(n * ratio)`` nodes of every molecule, uniformly (the official draws a
    permutation and drops its first ``int(n * ratio)`` entries).
``subgraph`` (:func:`subgraph_keep`)
    keeps a uniformly drawn root plus up to ``int(n * ratio)`` of the root's *direct* neighbours: up to
    ``n`` draws, uniform with replacement among the root's neighbours, each new neighbour kept until
    ``int(n * ratio)`` are kept. That is what the official loop computes: it means to grow a connected
    subgraph, but ``idx_neigh.union(...)`` returns a new set that is thrown away, so the candidate set
    never grows beyond the root's neighbours, and its ``count > node_num`` guard caps the draws at ``n``.
    We reproduce the distribution as published (the released checkpoints were trained with it).
    Note that for ``subgraph`` the ratio is the fraction *kept* (plus the root), for ``dropN`` the
    fraction *dropped*.

Both then take the node-induced subgraph (:func:`induced_view`): kept nodes in ascending order, every
edge whose two ends are kept, in its original order, with its own ``edge_attr`` row — so both directions
of a bond stay together and edge attributes stay those of the kept edges. One more official rule: when
the kept nodes induce no edge (a lone root, a one-atom ion, all bonds cut), the official code's
``torch.tensor([]).transpose_(0, 1)`` raises, its ``except`` keeps the molecule unchanged, and so do we
(``AugmentedView.whole``). Hence no view is ever empty.

The official subgraph view orders its nodes root first, then neighbours in the order drawn; ours keeps
ascending node order. GIN with mean pooling does not depend on node order (only float rounding does).
The official augmentations ``permE`` and ``maskN`` are not offered: on the chem data ``permE`` adds edges
without adding their ``edge_attr`` rows (inconsistent graphs) and ``maskN`` takes the mean of integer
features (an error), which is why the chem recipe uses only ``dropN`` and ``subgraph``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .context import graph_ptr, node_graph, sample_roots
from .masking import sample_per_graph

__all__ = [
    "AUGMENTATIONS",
    "AugmentedView",
    "augment",
    "augment_keep",
    "drop_nodes_keep",
    "induced_view",
    "num_for_ratio",
    "subgraph_keep",
]

#: Augmentation names, as the official ``--aug1`` / ``--aug2`` spell them.
AUGMENTATIONS = ("dropN", "subgraph", "random", "none")


@dataclass
class AugmentedView:
    """One augmented view of a batch: a batch-shaped graph plus where it came from.

    ``x``, ``edge_index``, ``edge_attr`` and ``batch`` (graph id of every node) describe the view, graphs
    in the order of the source batch (``num_graphs`` of them, none empty). ``node_index`` holds the source
    batch's index of every view node and ``edge_index_src`` the source column of every view edge
    (so ``edge_attr == source.edge_attr[edge_index_src]``). ``whole[g]`` is True where graph ``g`` was kept
    unchanged because its sampled nodes induced no edge (the official fallback).
    """

    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor | None
    batch: Tensor
    num_graphs: int
    node_index: Tensor
    edge_index_src: Tensor
    whole: Tensor

    @property
    def ptr(self) -> Tensor:
        counts = torch.bincount(self.batch, minlength=self.num_graphs)
        out = torch.zeros(self.num_graphs + 1, dtype=torch.long, device=self.batch.device)
        torch.cumsum(counts, 0, out=out[1:])
        return out


def num_for_ratio(counts: Tensor, ratio: float) -> Tensor:
    """``int(n * ratio)`` per graph, as the official code computes it (a float64 product, truncated)."""
    return torch.floor(counts.to(torch.float64) * float(ratio)).long().clamp(min=0)


def _check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"augmentation ratio must lie in [0, 1], got {ratio}")
    return ratio


def drop_nodes_keep(batch, ratio: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Boolean mask of the nodes kept by node dropping: ``int(n_g * ratio)`` nodes of every graph ``g``
    dropped uniformly at random (before the no-edge fallback of :func:`induced_view`)."""
    ratio = _check_ratio(ratio)
    ptr = graph_ptr(batch).to(batch.x.device)
    ngraph = node_graph(batch, ptr)
    dropped = sample_per_graph(ptr, num_for_ratio(ptr[1:] - ptr[:-1], ratio), generator, ngraph)
    keep = torch.ones(batch.x.size(0), dtype=torch.bool, device=batch.x.device)
    keep[dropped] = False
    return keep


def subgraph_keep(batch, ratio: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Boolean mask of the nodes kept by GraphCL's chem ``subgraph`` (module docstring): a uniform root
    and the first ``int(n_g * ratio)`` distinct neighbours of the root to appear in ``n_g`` uniform draws
    (with replacement) among the root's neighbours."""
    ratio = _check_ratio(ratio)
    device = batch.x.device
    ptr = graph_ptr(batch).to(device)
    ngraph = node_graph(batch, ptr)
    counts = ptr[1:] - ptr[:-1]
    num_graphs, n = counts.numel(), batch.x.size(0)
    sub_num = num_for_ratio(counts, ratio)
    root = ptr[:-1] + sample_roots(ptr, generator)  # global index; meaningless for empty graphs
    has_nodes = counts > 0

    # candidates: the distinct neighbours of each root (edge_index[1] of the edges leaving it)
    src, dst = batch.edge_index
    from_root = src == root[ngraph[src]]
    is_cand = torch.zeros(n, dtype=torch.bool, device=device)
    is_cand[dst[from_root]] = True
    cand = is_cand.nonzero().view(-1)  # ascending, hence grouped by graph
    cgraph = ngraph[cand]
    deg = torch.bincount(cgraph, minlength=num_graphs)
    cptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=device)
    torch.cumsum(deg, 0, out=cptr[1:])

    # n_g draws per graph with candidates: draw t picks candidate floor(u_t * deg_g)
    draws_per_graph = torch.where(deg > 0, counts, torch.zeros_like(counts))
    total = int(draws_per_graph.sum())
    dgraph = torch.repeat_interleave(torch.arange(num_graphs, device=device), draws_per_graph, output_size=total)
    dptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=device)
    torch.cumsum(draws_per_graph, 0, out=dptr[1:])
    t = torch.arange(total, device=device) - dptr[dgraph]
    gen_device = generator.device if generator is not None else device
    u = torch.rand(total, generator=generator, device=gen_device, dtype=torch.float64).to(device)
    pick = torch.minimum((u * deg[dgraph]).long(), deg[dgraph] - 1)
    never = n + 1  # later than any draw
    first = torch.full((cand.numel(),), never, dtype=torch.long, device=device)
    first.scatter_reduce_(0, cptr[dgraph] + pick, t, reduce="amin")
    # a root among its own candidates (a self loop) is drawn and rejected: it only uses up draws
    first[cand == root[cgraph]] = never
    # kept: the sub_num earliest first appearances of every graph
    order = torch.sort(cgraph * (never + 1) + first, stable=True).indices
    rank = torch.arange(cand.numel(), device=device) - cptr[cgraph]
    ok = (first[order] < never) & (rank < sub_num[cgraph])
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    keep[root[has_nodes]] = True
    keep[cand[order[ok]]] = True
    return keep


def induced_view(batch, keep: Tensor) -> AugmentedView:
    """The node-induced subgraph of ``keep`` (bool ``[N]``), graph by graph, with the official fallback:
    a graph whose kept nodes induce no edge is kept whole."""
    x, edge_index = batch.x, batch.edge_index
    device = x.device
    keep = keep.to(device=device, dtype=torch.bool).clone()
    if keep.numel() != x.size(0):
        raise ValueError(f"keep mask has {keep.numel()} entries for {x.size(0)} nodes")
    ptr = graph_ptr(batch).to(device)
    ngraph = node_graph(batch, ptr)
    num_graphs = ptr.numel() - 1
    src, dst = edge_index
    kept_edge = keep[src] & keep[dst]
    edges_per_graph = torch.bincount(ngraph[src][kept_edge], minlength=num_graphs)
    whole = edges_per_graph == 0
    keep |= whole[ngraph]
    kept_edge = keep[src] & keep[dst]
    nodes = keep.nonzero().view(-1)
    edges = kept_edge.nonzero().view(-1)
    remap = torch.cumsum(keep, 0) - 1
    edge_attr = getattr(batch, "edge_attr", None)
    return AugmentedView(
        x=x.index_select(0, nodes),
        edge_index=remap[edge_index.index_select(1, edges)],
        edge_attr=edge_attr.index_select(0, edges) if edge_attr is not None else None,
        batch=ngraph.index_select(0, nodes),
        num_graphs=num_graphs,
        node_index=nodes,
        edge_index_src=edges,
        whole=whole,
    )


def augment_keep(batch, aug: str = "random", ratio: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """The kept-node mask of augmentation ``aug`` (:data:`AUGMENTATIONS`). ``random`` picks ``dropN`` or
    ``subgraph`` per graph with probability 1/2 (both masks are drawn for every graph, so the generator
    advances by the same amount whatever the choices)."""
    if aug not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {aug!r}; choose one of {AUGMENTATIONS}")
    if aug == "none":
        return torch.ones(batch.x.size(0), dtype=torch.bool, device=batch.x.device)
    if aug == "dropN":
        return drop_nodes_keep(batch, ratio, generator)
    if aug == "subgraph":
        return subgraph_keep(batch, ratio, generator)
    ptr = graph_ptr(batch).to(batch.x.device)
    ngraph = node_graph(batch, ptr)
    gen_device = generator.device if generator is not None else ptr.device
    use_sub = torch.randint(0, 2, (ptr.numel() - 1,), generator=generator, device=gen_device).to(ptr.device).bool()
    drop = drop_nodes_keep(batch, ratio, generator)
    sub = subgraph_keep(batch, ratio, generator)
    return torch.where(use_sub[ngraph], sub, drop)


def augment(batch, aug: str = "random", ratio: float = 0.2, generator: torch.Generator | None = None) -> AugmentedView:
    """One augmented view of every graph of ``batch`` (see the module docstring)."""
    return induced_view(batch, augment_keep(batch, aug, ratio, generator))
