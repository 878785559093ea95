"""GNN / GNNGraphPred: parameter counts, forward passes on real molecules, JK modes, pooling, heads."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from _dense_reference import ego_network
from torch_geometric.data import Batch, Data

from gnnpretrain.chem.featurize import smiles_to_graph
from gnnpretrain.nn import GNN, GNNGraphPred

GNN_TYPES = ["gin", "gcn", "graphsage", "gat"]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def bbbp_smiles(data_dir: Path) -> list[str]:
    with open(data_dir / "moleculenet" / "bbbp.csv", newline="") as fh:
        return [r["smiles"] for _, r in zip(range(8), csv.DictReader(fh))]


@pytest.fixture(scope="module")
def mol_batch(bbbp_smiles: list[str]) -> Batch:
    # include a molecule without bonds (single atom) to exercise empty edge lists
    graphs = [smiles_to_graph(s) for s in bbbp_smiles + ["[Na+]"]]
    assert all(g is not None for g in graphs)
    return Batch.from_data_list(graphs)


@pytest.fixture(scope="module")
def ogb_batch(bbbp_smiles: list[str]) -> Batch:
    return Batch.from_data_list([smiles_to_graph(s, featurizer="ogb") for s in bbbp_smiles])


@pytest.mark.parametrize(
    "gnn_type,expected", [("gin", 1_857_900), ("gcn", 504_900), ("graphsage", 504_900), ("gat", 977_400)]
)
def test_parameter_counts_match_reference(gnn_type: str, expected: int) -> None:
    assert n_params(GNN(5, 300, gnn_type=gnn_type)) == expected


def test_graphpred_parameter_count() -> None:
    model = GNNGraphPred(5, 300, num_tasks=1, graph_pooling="mean", gnn_type="gin")
    assert n_params(model) == 1_858_201
    assert model.graph_pred_linear.in_features == 300


@pytest.mark.parametrize("gnn_type", GNN_TYPES)
@pytest.mark.parametrize("input_kind", ["reference", "ogb"])
def test_forward_and_backward_on_real_molecules(gnn_type: str, input_kind: str, mol_batch: Batch, ogb_batch: Batch) -> None:
    torch.manual_seed(0)
    batch = mol_batch if input_kind == "reference" else ogb_batch
    model = GNN(3, 32, gnn_type=gnn_type, input=input_kind, drop_ratio=0.2)
    out = model(batch.x, batch.edge_index, batch.edge_attr)
    assert out.shape == (batch.num_nodes, 32)
    assert torch.isfinite(out).all()
    out.pow(2).mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    # every layer's edge encoder receives gradient (self loops alone would give some; real bonds too)
    for name, g in grads.items():
        if "edge_embedding1" in name or "bond_encoder" in name:
            assert g.abs().sum() > 0, name
    # a Data/Batch may be passed alone
    model.eval()
    torch.testing.assert_close(model(batch), model(batch.x, batch.edge_index, batch.edge_attr))


@pytest.mark.parametrize("gnn_type", GNN_TYPES)
def test_bio_forward_and_parameter_names(gnn_type: str) -> None:
    ego = ego_network(3)
    model = GNN(3, 16, gnn_type=gnn_type, input="bio")
    out = model(ego.x, ego.edge_index, ego.edge_attr)
    assert out.shape == (ego.num_nodes, 16) and torch.isfinite(out).all()
    keys = set(model.state_dict())
    assert "gnns.0.input_node_embeddings.weight" in keys
    assert "gnns.1.input_node_embeddings.weight" not in keys
    assert not any(k.startswith("batch_norms") for k in keys)  # the reference bio encoder has none
    assert model.state_dict()["gnns.2.edge_encoder.weight"].shape[1] == 9
    if gnn_type == "gin":
        assert {f"gnns.0.mlp.{i}.weight" for i in (0, 1, 3)} <= keys
        assert model.state_dict()["gnns.0.mlp.0.weight"].shape == (32, 32)


def test_jk_modes(mol_batch: Batch) -> None:
    torch.manual_seed(0)
    layers, d = 3, 16
    base = GNN(layers, d, JK="last").eval()
    outputs = {}
    for jk in ["last", "concat", "max", "sum"]:
        model = GNN(layers, d, JK=jk).eval()
        model.load_state_dict(base.state_dict())
        with torch.no_grad():
            outputs[jk] = model(mol_batch.x, mol_batch.edge_index, mol_batch.edge_attr)
        assert outputs[jk].shape == (mol_batch.num_nodes, model.out_dim)
    assert GNN(layers, d, JK="concat").out_dim == (layers + 1) * d
    assert GNN(layers, d, JK="sum").out_dim == d
    # concat = [input embedding, layer 1, ..., layer L]; the last block is JK="last"
    per_layer = outputs["concat"].view(mol_batch.num_nodes, layers + 1, d)
    torch.testing.assert_close(per_layer[:, -1], outputs["last"])
    torch.testing.assert_close(outputs["max"], per_layer.max(dim=1).values)
    # sum is a proper per-node sum over layers (the reference returned node 0's vector only)
    torch.testing.assert_close(outputs["sum"], per_layer.sum(dim=1))
    assert outputs["sum"].shape[0] == mol_batch.num_nodes
    first = base.x_embedding1(mol_batch.x[:, 0]) + base.x_embedding2(mol_batch.x[:, 1])
    torch.testing.assert_close(per_layer[:, 0], first)


@pytest.mark.parametrize("pooling", ["sum", "mean", "max", "attention", "set2set2", "set2set3"])
@pytest.mark.parametrize("jk", ["last", "concat"])
def test_poolings(pooling: str, jk: str, mol_batch: Batch) -> None:
    torch.manual_seed(0)
    model = GNNGraphPred(2, 16, num_tasks=5, JK=jk, graph_pooling=pooling).eval()
    out = model(mol_batch)
    assert out.shape == (mol_batch.num_graphs, 5) and torch.isfinite(out).all()
    width = model.gnn.out_dim * (2 if pooling.startswith("set2set") else 1)
    assert model.graph_pred_linear.in_features == width == model.graph_dim
    # pooling is per graph: a graph's logits do not depend on the other graphs in the batch
    single = Batch.from_data_list([mol_batch.get_example(1)])
    torch.testing.assert_close(model(single)[0], out[1], rtol=1e-4, atol=1e-5)


def test_pooling_values(mol_batch: Batch) -> None:
    torch.manual_seed(0)
    model = GNNGraphPred(2, 8, num_tasks=1, graph_pooling="mean").eval()
    nodes = model.gnn(mol_batch.x, mol_batch.edge_index, mol_batch.edge_attr)
    g = 2
    expected = nodes[mol_batch.batch == g].mean(dim=0)
    torch.testing.assert_close(model.graph_embedding(mol_batch)[g], expected)
    model.pool = GNNGraphPred(2, 8, num_tasks=1, graph_pooling="max").pool
    torch.testing.assert_close(model.graph_embedding(mol_batch)[g], nodes[mol_batch.batch == g].max(dim=0).values)


def test_dropout_only_in_training(mol_batch: Batch) -> None:
    torch.manual_seed(0)
    model = GNNGraphPred(3, 32, num_tasks=2, drop_ratio=0.5)
    model.eval()
    a, b = model(mol_batch), model(mol_batch)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    model.train()
    c, d = model(mol_batch), model(mol_batch)
    assert not torch.allclose(c, d)


class EgoData(Data):
    """Ego-network Data whose centre index PyG offsets when batching (as docs/INTERFACES.md asks)."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "center_node_idx":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)


def test_center_pool_head() -> None:
    egos = []
    for seed, centre in [(0, 0), (1, 3), (2, 5)]:
        e = ego_network(seed)
        egos.append(EgoData(x=e.x, edge_index=e.edge_index, edge_attr=e.edge_attr, center_node_idx=torch.tensor([centre])))
    batch = Batch.from_data_list(egos)
    assert batch.center_node_idx.tolist() == [0, 7 + 3, 14 + 5]  # global indices

    torch.manual_seed(0)
    model = GNNGraphPred(2, 16, num_tasks=40, gnn_type="gin", input="bio", center_pool=True).eval()
    assert model.graph_pred_linear.in_features == 32
    out = model(batch)
    assert out.shape == (3, 40) and torch.isfinite(out).all()
    nodes = model.gnn(batch.x, batch.edge_index, batch.edge_attr)
    for k in range(3):
        rep = torch.cat([nodes[batch.batch == k].mean(dim=0), nodes[batch.center_node_idx[k]]])
        torch.testing.assert_close(out[k], model.graph_pred_linear(rep))

    # local (not offset) centre indices are caught instead of silently reading the wrong nodes
    plain = Batch.from_data_list([ego_network(0), ego_network(1)])
    plain.center_node_idx = torch.tensor([0, 3])
    with pytest.raises(ValueError, match="batch node numbering"):
        model(plain)
    del plain.center_node_idx
    with pytest.raises(ValueError, match="center_node_idx"):
        model(plain)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"JK": "mean"}, "unknown JK"),
        ({"gnn_type": "gine"}, "unknown gnn_type"),
        ({"input": "smiles"}, "unknown input"),
        ({"num_layer": 0}, "num_layer"),
        ({"drop_ratio": 1.5}, "drop_ratio"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GNN(**{"num_layer": 2, "emb_dim": 8, **kwargs})


def test_bad_pooling_and_mismatched_features(mol_batch: Batch, ogb_batch: Batch) -> None:
    with pytest.raises(ValueError, match="graph_pooling"):
        GNNGraphPred(2, 8, 1, graph_pooling="median")
    with pytest.raises(ValueError, match="featurizer"):
        GNN(2, 8, input="reference")(ogb_batch.x, ogb_batch.edge_index, ogb_batch.edge_attr)
    with pytest.raises(ValueError, match=r"\[N, 9\]"):
        GNN(2, 8, input="ogb")(mol_batch.x, mol_batch.edge_index, mol_batch.edge_attr)


@pytest.mark.parametrize("gnn_type", ["gcn", "gat"])
def test_autocast_bfloat16(gnn_type: str, mol_batch: Batch) -> None:
    """Mixed precision (as pre-training's amp option uses) runs: no dtype clashes between
    float32 embeddings and bfloat16 linear outputs inside message passing."""
    torch.manual_seed(0)
    model = GNNGraphPred(2, 16, num_tasks=3, gnn_type=gnn_type, graph_pooling="attention")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(mol_batch)
    assert out.shape == (mol_batch.num_graphs, 3) and torch.isfinite(out.float()).all()
    out.float().sum().backward()
    assert model.gnn.gnns[0].edge_embedding1.weight.grad is not None
