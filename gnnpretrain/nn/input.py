"""Input encoders: how raw node / edge features become vectors.

Three input kinds are supported, selected by name (``input=`` on :class:`~gnnpretrain.nn.GNN`):

``"reference"``
    The paper's chemistry encoders. Nodes: ``x_embedding1`` (120 atom types, 119 = mask token) +
    ``x_embedding2`` (3 chirality tags), owned by the :class:`GNN` itself. Edges, per layer:
    ``edge_embedding1`` (6 bond types: 4 = self loop, 5 = mask) + ``edge_embedding2`` (3 directions).
    Self-loops get bond type 4, direction 0, exactly as the reference.
``"ogb"``
    OGB's ``AtomEncoder`` (node features ``[N, 9]``) and, per layer, ``BondEncoder`` (edge features
    ``[E, 3]``). OGB's bond vocabulary has no self-loop entry, and re-using one of its rows (e.g. the
    "misc" bond type) would make a self loop look like a real bond. So each layer owns one extra
    learned vector ``self_loop_embedding`` (shape ``[1, edge_dim]``) that represents the added self
    loop. OGB's vocabulary also has no mask token; masking strategies should use ``"reference"``.
``"bio"``
    The paper's protein (PPI ego-network) encoders. Nodes carry no information: ``x`` is a constant
    integer column (all ones, as in the reference's data, so its checkpoints learned row 1), embedded
    by a 2-row ``Embedding`` that the reference stores in the first conv as
    ``gnns.0.input_node_embeddings`` (kept there so reference checkpoints load unchanged).
    Edges, per layer: ``edge_encoder = Linear(9, edge_dim)`` on the 9 float channels (7 STRING
    channels, self-loop flag at index 7, mask flag at index 8); self loops get the one-hot at 7.

Every conv appends one self loop per node *after* the real edges (``edge_index`` then
``arange(N)``), as the reference's ``add_self_loops`` did, so edge order matches it exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INPUT_KINDS = ("reference", "ogb", "bio")

# reference chemistry vocabulary (see gnnpretrain.chem.featurize)
NUM_ATOM_TYPE = 120
NUM_CHIRALITY_TAG = 3
NUM_BOND_TYPE = 6
NUM_BOND_DIRECTION = 3
SELF_LOOP_BOND_TYPE = 4

# bio edge channels
BIO_EDGE_DIM = 9
BIO_SELF_LOOP_CHANNEL = 7
BIO_NUM_NODE_EMBEDDINGS = 2


def check_input_kind(input: str) -> str:
    """Validate an ``input=`` name, with a message listing the valid ones."""
    if input not in INPUT_KINDS:
        raise ValueError(f"unknown input encoder {input!r}; expected one of {INPUT_KINDS}")
    return input


# ---------------------------------------------------------------------------------------------
# node encoders
# ---------------------------------------------------------------------------------------------
def init_node_encoder(owner: nn.Module, input: str, emb_dim: int) -> None:
    """Create the node-input modules on ``owner`` (a GNN) under the reference's key names.

    For ``"bio"`` nothing is created here: the embedding lives in the first conv
    (``gnns.0.input_node_embeddings``), see :func:`init_edge_encoder` ``first_layer``.
    """
    if input == "reference":
        owner.x_embedding1 = nn.Embedding(NUM_ATOM_TYPE, emb_dim)
        owner.x_embedding2 = nn.Embedding(NUM_CHIRALITY_TAG, emb_dim)
        nn.init.xavier_uniform_(owner.x_embedding1.weight)
        nn.init.xavier_uniform_(owner.x_embedding2.weight)
    elif input == "ogb":
        from ogb.graphproppred.mol_encoder import AtomEncoder

        owner.atom_encoder = AtomEncoder(emb_dim)
    elif input != "bio":
        check_input_kind(input)


def _check_integer_columns(x: Tensor, columns: int, what: str, input: str) -> None:
    if x.dim() != 2 or x.size(1) != columns:
        raise ValueError(
            f"input={input!r} expects {what} of shape [N, {columns}], got {tuple(x.shape)}; "
            f"featurize the molecules with featurizer={input!r} (or build the model with the input "
            "kind matching your data)"
        )
    if x.is_floating_point():
        raise ValueError(f"input={input!r} expects integer {what}, got dtype {x.dtype}")


def encode_nodes(owner: nn.Module, input: str, x: Tensor, first_conv: nn.Module) -> Tensor:
    """Map raw node features ``x`` to ``[N, emb_dim]`` vectors."""
    if input == "reference":
        _check_integer_columns(x, 2, "node features x", input)
        return owner.x_embedding1(x[:, 0]) + owner.x_embedding2(x[:, 1])
    if input == "ogb":
        _check_integer_columns(x, 9, "node features x", input)
        return owner.atom_encoder(x)
    # bio: constant input, one integer (0 or 1; the data uses 1) per node, as the reference's x.view(-1)
    if x.dim() == 2 and x.size(1) != 1:
        raise ValueError(f"input='bio' expects node features of shape [N, 1] or [N], got {tuple(x.shape)}")
    return first_conv.input_node_embeddings(x.reshape(-1).long())


# ---------------------------------------------------------------------------------------------
# edge encoders (one per conv layer)
# ---------------------------------------------------------------------------------------------
def init_edge_encoder(conv: nn.Module, input: str, edge_dim: int, emb_dim: int, first_layer: bool) -> None:
    """Create the per-layer edge-input modules on ``conv`` under the reference's key names."""
    if input == "reference":
        conv.edge_embedding1 = nn.Embedding(NUM_BOND_TYPE, edge_dim)
        conv.edge_embedding2 = nn.Embedding(NUM_BOND_DIRECTION, edge_dim)
        nn.init.xavier_uniform_(conv.edge_embedding1.weight)
        nn.init.xavier_uniform_(conv.edge_embedding2.weight)
    elif input == "ogb":
        from ogb.graphproppred.mol_encoder import BondEncoder

        conv.bond_encoder = BondEncoder(edge_dim)
        conv.self_loop_embedding = nn.Parameter(torch.empty(1, edge_dim))
        nn.init.xavier_uniform_(conv.self_loop_embedding)
    elif input == "bio":
        conv.edge_encoder = nn.Linear(BIO_EDGE_DIM, edge_dim)
        if first_layer:
            conv.input_node_embeddings = nn.Embedding(BIO_NUM_NODE_EMBEDDINGS, emb_dim)
            nn.init.xavier_uniform_(conv.input_node_embeddings.weight)
    else:
        check_input_kind(input)


def add_self_loops_and_encode_edges(
    conv: nn.Module, input: str, edge_index: Tensor, edge_attr: Tensor, num_nodes: int
) -> tuple[Tensor, Tensor]:
    """Append one self loop per node and embed all edge features.

    Returns ``(edge_index_with_loops [2, E+N], edge_embeddings [E+N, edge_dim])``; the self loops
    come last, in node order, as in the reference.
    """
    loops = torch.arange(num_nodes, device=edge_index.device, dtype=edge_index.dtype)
    full_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)

    if input == "reference":
        _check_integer_columns(edge_attr, 2, "edge features edge_attr", input)
        loop_attr = torch.zeros(num_nodes, 2, dtype=edge_attr.dtype, device=edge_attr.device)
        loop_attr[:, 0] = SELF_LOOP_BOND_TYPE
        attr = torch.cat([edge_attr, loop_attr], dim=0)
        emb = conv.edge_embedding1(attr[:, 0]) + conv.edge_embedding2(attr[:, 1])
    elif input == "ogb":
        _check_integer_columns(edge_attr, 3, "edge features edge_attr", input)
        real = conv.bond_encoder(edge_attr) if edge_attr.size(0) > 0 else conv.self_loop_embedding[:0]
        emb = torch.cat([real, conv.self_loop_embedding.expand(num_nodes, -1)], dim=0)
    else:  # bio
        if edge_attr.dim() != 2 or edge_attr.size(1) != BIO_EDGE_DIM:
            raise ValueError(
                f"input='bio' expects edge features of shape [E, {BIO_EDGE_DIM}] "
                f"(7 STRING channels, self-loop flag, mask flag), got {tuple(edge_attr.shape)}"
            )
        weight = conv.edge_encoder.weight
        loop_attr = torch.zeros(num_nodes, BIO_EDGE_DIM, dtype=weight.dtype, device=weight.device)
        loop_attr[:, BIO_SELF_LOOP_CHANNEL] = 1.0
        attr = torch.cat([edge_attr.to(weight.dtype), loop_attr], dim=0)
        emb = conv.edge_encoder(attr)
    return full_index, emb
