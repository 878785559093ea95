"""Test oracle: the official GraphCL and GraphMAE molecular code, re-expressed step by step.

Written from reading Shen-Lab/GraphCL ``transferLearning_MoleculeNet_PPI/chem`` (``loader.py``:
``drop_nodes``, ``subgraph``, ``MoleculeDataset_aug.get``; ``pretrain_graphcl.py``: ``graphcl``,
``loss_cl``; snapshot b4d7501) and THUDM/GraphMAE ``chem`` (``util.py``: ``MaskAtom``; ``model.py``:
``GNN``, ``GINConv``, ``GNNDecoder``; ``pretraining.py``: ``sce_loss``, ``train_mae``; snapshot b14f080),
not from ``gnnpretrain``: per-molecule numpy loops, the official RNG calls (``np.random`` legacy
``RandomState``, ``random.sample``), the official arithmetic (``exp`` then divide then ``log``; both
vectors normalised), and the official quirks (the ``subgraph`` loop whose candidate set never grows;
the ``try/except`` that keeps a molecule unchanged when its view has no edge; the unused ``dec_token``).

The encoder is the pretrain-gnns GIN both codes share, written with plain tensor ops: node ``i``
aggregates over edges ``k`` with ``edge_index[0, k] == i`` the message ``h[edge_index[1, k]] + e_k``,
self loops (bond type 4, direction 0) appended after the real edges, BatchNorm in training mode.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data


# ------------------------------------------------------------------------------------------ encoder
class OfficialGINConv(nn.Module):
    def __init__(self, emb_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.ReLU(), nn.Linear(2 * emb_dim, out_dim))
        self.edge_embedding1 = nn.Embedding(6, emb_dim)
        self.edge_embedding2 = nn.Embedding(3, emb_dim)

    def forward(self, x, edge_index, edge_attr):
        n = x.size(0)
        loops = torch.arange(n)
        ei = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
        loop_attr = torch.zeros(n, 2, dtype=edge_attr.dtype)
        loop_attr[:, 0] = 4
        ea = torch.cat([edge_attr, loop_attr], dim=0)
        e = self.edge_embedding1(ea[:, 0]) + self.edge_embedding2(ea[:, 1])
        msg = x[ei[1]] + e
        agg = torch.zeros(n, x.size(1), dtype=x.dtype).index_add(0, ei[0], msg)
        return self.mlp(agg)


class OfficialGNN(nn.Module):
    """pretrain-gnns ``GNN`` (GIN, JK last): embeddings → (conv → BN → ReLU) x L, no ReLU after the last."""

    def __init__(self, num_layer: int = 5, emb_dim: int = 300) -> None:
        super().__init__()
        self.num_layer = num_layer
        self.x_embedding1 = nn.Embedding(120, emb_dim)
        self.x_embedding2 = nn.Embedding(3, emb_dim)
        self.gnns = nn.ModuleList(OfficialGINConv(emb_dim, emb_dim) for _ in range(num_layer))
        self.batch_norms = nn.ModuleList(nn.BatchNorm1d(emb_dim) for _ in range(num_layer))

    def forward(self, x, edge_index, edge_attr):
        h = self.x_embedding1(x[:, 0]) + self.x_embedding2(x[:, 1])
        for layer in range(self.num_layer):
            h = self.batch_norms[layer](self.gnns[layer](h, edge_index, edge_attr))
            if layer < self.num_layer - 1:
                h = F.relu(h)
        return h


# ------------------------------------------------------------------------------------------ GraphCL
def _edges_between(edge_index: np.ndarray, kept: list[int] | np.ndarray) -> list[int]:
    kept = set(int(k) for k in kept)
    return [k for k in range(edge_index.shape[1]) if int(edge_index[0, k]) in kept and int(edge_index[1, k]) in kept]


def _apply(data: Data, order: list[int]):
    """The official tail of both augmentations: renumber, keep edges among ``order``; on no edge keep ``data``."""
    ei = data.edge_index.numpy()
    position = {int(node): i for i, node in enumerate(order)}
    edges = _edges_between(ei, order)
    if not edges:  # official: torch.tensor([]).transpose_(0, 1) raises, the except returns data unchanged
        return data
    new_ei = torch.tensor([[position[int(ei[0, k])], position[int(ei[1, k])]] for k in edges]).t()
    return Data(x=data.x[torch.tensor(order)], edge_index=new_ei, edge_attr=data.edge_attr[torch.tensor(edges)])


def official_drop_nodes(data: Data, ratio: float, rng: np.random.RandomState):
    """(view, sampled kept nodes): drop the first ``int(n * ratio)`` of a random permutation."""
    n = data.x.size(0)
    drop_num = int(n * ratio)
    perm = rng.permutation(n)
    keep = np.sort(perm[drop_num:])
    return _apply(data, [int(i) for i in keep]), [int(i) for i in keep]


def official_subgraph(data: Data, ratio: float, rng: np.random.RandomState):
    """(view, sampled kept nodes in official order): root, then neighbours of the root only (the
    official ``idx_neigh.union(...)`` result is discarded), at most ``n`` loop passes."""
    n = data.x.size(0)
    sub_num = int(n * ratio)
    ei = data.edge_index.numpy()
    idx_sub = [rng.randint(n, size=1)[0]]
    idx_neigh = set(ei[1][ei[0] == idx_sub[0]])
    count = 0
    while len(idx_sub) <= sub_num:
        count += 1
        if count > n:
            break
        if len(idx_neigh) == 0:
            break
        sample = rng.choice(list(idx_neigh))
        if sample in idx_sub:
            continue
        idx_sub.append(sample)
        idx_neigh.union(set(ei[1][ei[0] == idx_sub[-1]]))  # the official no-op
    order = [int(i) for i in idx_sub]
    return _apply(data, order), order


def official_random_view(data: Data, ratio: float, rng: np.random.RandomState):
    """``aug == 'random'``: ``np.random.randint(2)`` picks dropN (0) or subgraph (1)."""
    if rng.randint(2) == 0:
        return official_drop_nodes(data, ratio, rng)
    return official_subgraph(data, ratio, rng)


class OfficialGraphCL(nn.Module):
    def __init__(self, gnn: OfficialGNN, emb_dim: int = 300) -> None:
        super().__init__()
        self.gnn = gnn
        self.projection_head = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.ReLU(inplace=True), nn.Linear(emb_dim, emb_dim))

    def forward_cl(self, x, edge_index, edge_attr, batch):
        h = self.gnn(x, edge_index, edge_attr)
        num_graphs = int(batch.max()) + 1
        pooled = torch.zeros(num_graphs, h.size(1), dtype=h.dtype).index_add(0, batch, h)
        pooled = pooled / torch.bincount(batch, minlength=num_graphs).to(h.dtype).view(-1, 1)
        return self.projection_head(pooled)

    @staticmethod
    def loss_cl(x1, x2, T: float = 0.1):
        b = x1.size(0)
        sim = torch.einsum("ik,jk->ij", x1, x2) / torch.einsum("i,j->ij", x1.norm(dim=1), x2.norm(dim=1))
        sim = torch.exp(sim / T)
        pos = sim[range(b), range(b)]
        return -torch.log(pos / (sim.sum(dim=1) - pos)).mean()


# ------------------------------------------------------------------------------------------ GraphMAE
def official_mask_atom(data: Data, masked_atom_indices: list[int]) -> Data:
    """``MaskAtom(num_atom_type=119, mask_edge=0)`` with the atoms fixed: labels, one-hot, token [119, 0]."""
    out = Data(x=data.x.clone(), edge_index=data.edge_index, edge_attr=data.edge_attr)
    out.mask_node_label = torch.cat([data.x[i].view(1, -1) for i in masked_atom_indices], dim=0)
    out.masked_atom_indices = torch.tensor(masked_atom_indices)
    out.node_attr_label = F.one_hot(out.mask_node_label[:, 0], num_classes=119).float()
    for i in masked_atom_indices:
        out.x[i] = torch.tensor([119, 0])
    return out


def official_collate_masking(data_list: list[Data]) -> dict:
    """``BatchMasking.from_data_list``: concatenate; ``edge_index`` and ``masked_atom_indices`` offset by nodes."""
    xs, eis, eas, idxs, labels, batch = [], [], [], [], [], []
    offset = 0
    for g, d in enumerate(data_list):
        xs.append(d.x)
        eis.append(d.edge_index + offset)
        eas.append(d.edge_attr)
        idxs.append(d.masked_atom_indices + offset)
        labels.append(d.node_attr_label)
        batch.append(torch.full((d.x.size(0),), g, dtype=torch.long))
        offset += d.x.size(0)
    return {"x": torch.cat(xs), "edge_index": torch.cat(eis, dim=1), "edge_attr": torch.cat(eas),
            "masked_atom_indices": torch.cat(idxs), "node_attr_label": torch.cat(labels), "batch": torch.cat(batch)}


class OfficialGNNDecoder(nn.Module):
    def __init__(self, hidden_dim: int = 300, out_dim: int = 119) -> None:
        super().__init__()
        self.conv = OfficialGINConv(hidden_dim, out_dim)
        self.dec_token = nn.Parameter(torch.zeros([1, hidden_dim]))  # official: created, never used
        self.enc_to_dec = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.activation = nn.PReLU()

    def forward(self, x, edge_index, edge_attr, mask_node_indices):
        x = self.activation(x)
        x = self.enc_to_dec(x)
        x[mask_node_indices] = 0
        return self.conv(x, edge_index, edge_attr)


def official_sce_loss(x, y, alpha: float = 1.0):
    x = F.normalize(x, p=2, dim=-1)
    y = F.normalize(y, p=2, dim=-1)
    return (1 - (x * y).sum(dim=-1)).pow_(alpha).mean()


def official_graphmae_loss(gnn: OfficialGNN, decoder: OfficialGNNDecoder, batch: dict, alpha: float = 1.0):
    """``train_mae``'s loss for one batch (``loss_fn="sce"``): ``criterion(node_attr_label, pred[masked])``."""
    node_rep = gnn(batch["x"], batch["edge_index"], batch["edge_attr"])
    pred = decoder(node_rep, batch["edge_index"], batch["edge_attr"], batch["masked_atom_indices"])
    return official_sce_loss(batch["node_attr_label"], pred[batch["masked_atom_indices"]], alpha)
