"""Batched attribute masking (Hu et al. 2020) and a per-graph uniform sampler of distinct nodes.

The reference masks molecule by molecule in Python (``MaskAtom``): ``int(n_atoms * rate + 1)`` distinct
atoms drawn with ``random.sample``, their features replaced by the mask token (atom type 119, chirality
0), and with ``mask_edge`` the bonds touching them set to bond type 5 / direction 0. Here one call masks
a whole batch with tensor operations on the batch's device:

* :func:`sample_per_graph` draws exactly ``m_g`` distinct nodes of every graph ``g`` uniformly: each
  node gets a random 31-bit key, nodes are sorted by (graph, key) (one int64 sort of
  ``graph_id << 31 | key``; graphs are contiguous in a batch) and the first ``m_g`` of every graph are
  taken. (Equal keys, probability ~n²/2³² per batch, fall back to index order: a negligible bias.)
* edges touching masked atoms are found with two gathers; one direction per bond is reported (the edge
  at an even position within its graph's edge list, i.e. the first of each ``i→j, j→i`` pair, as the
  reference's ``connected_edge_indices[::2]``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from .context import graph_ptr, node_graph

MASK_ATOM_TYPE = 119
MASK_BOND_TYPE = 5


@dataclass
class MaskedBatch:
    """A masked copy of a batch plus what was masked.

    ``masked_atom_indices`` index nodes of ``batch`` (sorted); ``masked_atom_labels`` are their original
    atom types (``x[:, 0]``). ``masked_edge_indices`` index ``batch.edge_index`` columns, one direction per
    masked bond, and ``masked_edge_labels`` are the original bond types (``edge_attr[:, 0]``); both are
    empty when ``mask_edge`` is off.
    """

    batch: object
    masked_atom_indices: Tensor
    masked_atom_labels: Tensor
    masked_edge_indices: Tensor
    masked_edge_labels: Tensor


def num_to_mask(counts: Tensor, mask_rate: float) -> Tensor:
    """``int(n * mask_rate + 1)`` per graph as the reference computes it (in float64), capped at ``n``."""
    m = torch.floor(counts.to(torch.float64) * mask_rate + 1).long()
    return torch.minimum(m, counts)


def sample_per_graph(
    ptr: Tensor, num: Tensor, generator: torch.Generator | None = None, ngraph: Tensor | None = None
) -> Tensor:
    """Exactly ``num[g]`` distinct node indices (global, sorted) of every graph ``g``, uniformly at random.

    ``ptr`` are the graph offsets of the batch; ``num`` must satisfy ``0 <= num <= graph size``.
    """
    device = ptr.device
    counts = ptr[1:] - ptr[:-1]
    if bool(((num < 0) | (num > counts)).any()):
        raise ValueError("sample_per_graph: every num[g] must lie in [0, size of graph g]")
    n = int(ptr[-1])
    if ngraph is None:
        ngraph = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts, output_size=n)
    gen_device = generator.device if generator is not None else device
    # sort key = (graph id, 31 random bits) packed in an int64: integer sorts are ~2x faster than float64
    keys = torch.randint(0, 2**31, (n,), generator=generator, device=gen_device, dtype=torch.long).to(device)
    order = torch.sort((ngraph.long() << 31) | keys, stable=True).indices
    # graphs occupy the same contiguous ranges before and after the sort, so the rank of sorted
    # position p inside its graph is p - ptr[graph of p]
    rank = torch.arange(n, device=device) - ptr[ngraph]
    chosen = order[rank < num[ngraph]]
    return torch.sort(chosen).values


def mask_atoms(
    batch,
    mask_rate: float = 0.15,
    mask_edge: bool = False,
    generator: torch.Generator | None = None,
    atom_indices: Tensor | None = None,
    mask_atom_value: tuple[int, ...] = (MASK_ATOM_TYPE, 0),
    mask_bond_value: tuple[int, ...] = (MASK_BOND_TYPE, 0),
) -> MaskedBatch:
    """Mask ``int(n_g * mask_rate + 1)`` atoms of every graph of ``batch`` (see module docstring).

    The input batch is not modified. ``atom_indices`` (global node indices) fixes the masked atoms
    instead of sampling them (tests, debugging). Mask values longer or shorter than the feature width
    are cut or padded with zeros (so ``(119, 0)`` also works for wider integer featurizations).
    """
    if not 0.0 <= mask_rate <= 1.0:
        raise ValueError(f"mask_rate must lie in [0, 1]; got {mask_rate}")
    x = batch.x
    device = x.device
    ptr = graph_ptr(batch).to(device)
    ngraph = node_graph(batch, ptr).to(device)
    if atom_indices is None:
        idx = sample_per_graph(ptr, num_to_mask(ptr[1:] - ptr[:-1], mask_rate), generator, ngraph)
    else:
        idx = torch.sort(torch.as_tensor(atom_indices, dtype=torch.long, device=device).view(-1)).values

    out = copy.copy(batch)  # shallow: the new x / edge_attr below replace the shared tensors
    new_x = x.clone()
    labels = x[idx, 0].clone()
    new_x[idx] = _row(mask_atom_value, x.size(1), x.dtype, device)
    out.x = new_x

    edge_idx = torch.empty(0, dtype=torch.long, device=device)
    edge_labels = torch.empty(0, dtype=torch.long, device=device)
    edge_attr = getattr(batch, "edge_attr", None)
    if mask_edge:
        if edge_attr is None:
            raise ValueError("mask_edge=True needs edge_attr on the batch")
        node_masked = torch.zeros(x.size(0), dtype=torch.bool, device=device)
        node_masked[idx] = True
        src, dst = batch.edge_index
        touched = node_masked[src] | node_masked[dst]
        # position of every edge within its graph's edge list (edges of a graph are contiguous)
        egraph = ngraph[src]
        ecounts = torch.bincount(egraph, minlength=ptr.numel() - 1)
        eptr = torch.zeros(ptr.numel(), dtype=torch.long, device=device)
        torch.cumsum(ecounts, 0, out=eptr[1:])
        local = torch.arange(src.numel(), device=device) - eptr[egraph]
        edge_idx = (touched & (local % 2 == 0)).nonzero().view(-1)
        edge_labels = edge_attr[edge_idx, 0].clone()
        new_ea = edge_attr.clone()
        new_ea[touched] = _row(mask_bond_value, edge_attr.size(1), edge_attr.dtype, device)
        out.edge_attr = new_ea
    return MaskedBatch(
        batch=out, masked_atom_indices=idx, masked_atom_labels=labels,
        masked_edge_indices=edge_idx, masked_edge_labels=edge_labels,
    )


def _row(values: tuple[int, ...], width: int, dtype: torch.dtype, device) -> Tensor:
    vals = list(values)[:width] + [0] * max(0, width - len(values))
    return torch.tensor(vals, dtype=dtype, device=device)
