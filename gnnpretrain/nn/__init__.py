"""Encoders (GIN/GCN/GraphSAGE/GAT with edge features), graph-level heads, checkpoint loading.

``GNN`` and ``GNNGraphPred`` reproduce snap-stanford/pretrain-gnns (chem and bio) and load its
published state dicts; see docs/INTERFACES.md for the contract.
"""

from gnnpretrain.nn.checkpoint import convert_reference_state_dict, describe_state_dict, load_encoder_state
from gnnpretrain.nn.conv import GNN_TYPES, GATConv, GCNConv, GINConv, GraphSAGEConv
from gnnpretrain.nn.gnn import GNN, JK_MODES
from gnnpretrain.nn.heads import POOLINGS, GNNGraphPred, build_pooling
from gnnpretrain.nn.input import INPUT_KINDS

__all__ = [
    "GNN",
    "GNNGraphPred",
    "GNN_TYPES",
    "JK_MODES",
    "POOLINGS",
    "INPUT_KINDS",
    "GINConv",
    "GCNConv",
    "GraphSAGEConv",
    "GATConv",
    "build_pooling",
    "convert_reference_state_dict",
    "describe_state_dict",
    "load_encoder_state",
]
