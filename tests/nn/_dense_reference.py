"""An independent, deliberately plain re-implementation of the reference encoders' math.

Written from docs (reference-notes.md "Encoders" and the bio section), not from gnnpretrain.nn:
it reads weights straight from a state dict and loops over nodes and edges explicitly, with no
PyG. Node i aggregates over the edges k with ``edge_index[0, k] == i`` (the old-PyG convention the
reference ran on), self loops appended last. Used by the tests as the "same node embeddings as the
reference" oracle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

BN_EPS = 1e-5


def _linear(sd: dict, name: str, x: Tensor) -> Tensor:
    return x @ sd[name + ".weight"].t() + sd[name + ".bias"]


def _batch_norm_eval(sd: dict, name: str, x: Tensor) -> Tensor:
    mean, var = sd[name + ".running_mean"], sd[name + ".running_var"]
    return (x - mean) / torch.sqrt(var + BN_EPS) * sd[name + ".weight"] + sd[name + ".bias"]


def dense_encoder(
    sd: dict, gnn_type: str, domain: str, x: Tensor, edge_index: Tensor, edge_attr: Tensor, num_layer: int
) -> Tensor:
    """Node embeddings (JK="last", eval mode) of the reference encoder with weights ``sd``.

    domain "chem": x long [N, 2], edge_attr long [E, 2]; "bio": x [N, 1] constant, edge_attr float [E, 9].
    """
    sd = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    n = x.size(0)
    src = edge_index[0].tolist() + list(range(n))  # aggregating node
    dst = edge_index[1].tolist() + list(range(n))  # neighbour whose state is sent
    if domain == "chem":
        h = sd["x_embedding1.weight"][x[:, 0]] + sd["x_embedding2.weight"][x[:, 1]]
        attrs = edge_attr.tolist() + [[4, 0]] * n
    else:
        h = sd["gnns.0.input_node_embeddings.weight"][x.view(-1).long()]
        loop = [0.0] * 9
        loop[7] = 1.0
        attrs = torch.cat([edge_attr.double(), torch.tensor([loop] * n, dtype=torch.double)], dim=0)

    for layer in range(num_layer):
        p = f"gnns.{layer}."
        if domain == "chem":
            e = torch.stack([sd[p + "edge_embedding1.weight"][a] + sd[p + "edge_embedding2.weight"][b] for a, b in attrs])
        else:
            e = _linear(sd, p + "edge_encoder", attrs)
        d = h.size(1)

        if gnn_type == "gin":
            width = 2 * d if domain == "bio" else d
            agg = torch.zeros(n, width, dtype=torch.double)
            for k, (i, j) in enumerate(zip(src, dst)):
                agg[i] += torch.cat([h[j], e[k]]) if domain == "bio" else h[j] + e[k]
            if domain == "bio":
                hidden = F.relu(_batch_norm_eval(sd, p + "mlp.1", _linear(sd, p + "mlp.0", agg)))
                out = _linear(sd, p + "mlp.3", hidden)
            else:
                out = _linear(sd, p + "mlp.2", F.relu(_linear(sd, p + "mlp.0", agg)))
        elif gnn_type == "gcn":
            hw = _linear(sd, p + "linear", h)
            deg = [src.count(i) for i in range(n)]
            out = torch.zeros(n, d, dtype=torch.double)
            for k, (i, j) in enumerate(zip(src, dst)):
                out[i] += (deg[i] ** -0.5) * (deg[j] ** -0.5) * (hw[j] + e[k])
        elif gnn_type == "graphsage":
            hw = _linear(sd, p + "linear", h)
            out = torch.zeros(n, d, dtype=torch.double)
            for i in range(n):
                ks = [k for k in range(len(src)) if src[k] == i]
                v = torch.stack([hw[dst[k]] + e[k] for k in ks]).mean(dim=0)
                out[i] = v / max(v.norm().item(), 1e-12)
        elif gnn_type == "gat":
            att = sd[p + "att"][0]  # [heads, 2d]
            heads = att.size(0)
            d = sd[p + "bias"].size(0)
            hw = _linear(sd, p + "weight_linear", h).view(n, heads, d)
            ev = e.view(-1, heads, d)
            out = torch.zeros(n, d, dtype=torch.double)
            for i in range(n):
                ks = [k for k in range(len(src)) if src[k] == i]  # softmax over the aggregating node's edges
                msgs = torch.stack([hw[dst[k]] + ev[k] for k in ks])  # [K, heads, d]
                scores = (att[:, :d] * hw[i]).sum(-1) + (att[:, d:] * msgs).sum(-1)  # [K, heads]
                alpha = torch.softmax(F.leaky_relu(scores, 0.2), dim=0)  # normalised over this node's K edges
                out[i] = (alpha[:, :, None] * msgs).sum(dim=0).mean(dim=0) + sd[p + "bias"]
        else:
            raise ValueError(gnn_type)

        if domain == "chem":
            out = _batch_norm_eval(sd, f"batch_norms.{layer}", out)
        h = out if layer == num_layer - 1 else F.relu(out)
    return h


def ego_network(seed: int = 0, n: int = 7) -> Data:
    """A small hand-built PPI ego-network: centre 0, a star plus a few rim edges, STRING channels random."""
    g = torch.Generator().manual_seed(seed)
    pairs = [(0, i) for i in range(1, n)] + [(1, 2), (2, 3), (4, 5)]
    rows, attrs = [], []
    for a, b in pairs:
        channels = (torch.rand(7, generator=g) < 0.5).float()
        channels[torch.randint(7, (1,), generator=g)] = 1.0  # every interaction has some evidence
        attr = torch.cat([channels, torch.zeros(2)])
        rows += [(a, b), (b, a)]
        attrs += [attr, attr]
    return Data(
        x=torch.ones(n, 1, dtype=torch.long),  # constant input, 1 as in the reference's data
        edge_index=torch.tensor(rows).t().contiguous(),
        edge_attr=torch.stack(attrs),
        center_node_idx=torch.tensor([0]),
    )
