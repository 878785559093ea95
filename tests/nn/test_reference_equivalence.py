"""Published reference checkpoints load strictly and give the reference's node embeddings.

The oracle is tests/nn/_dense_reference.py: explicit per-node / per-edge loops written from the
reference notes, reading the checkpoint's tensors directly.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from _dense_reference import dense_encoder, ego_network
from torch_geometric.data import Batch, Data

from gnnpretrain.paths import checkpoints_root
from gnnpretrain.chem.featurize import smiles_to_graph
from gnnpretrain.nn import GNN, load_encoder_state

CKPT_ROOT = checkpoints_root()  # found as the library finds it ($GNNPRETRAIN_CHECKPOINTS, ../shared, ...)
CHEM = sorted((CKPT_ROOT / "chem").glob("*.pth")) if (CKPT_ROOT / "chem").is_dir() else []
BIO = sorted((CKPT_ROOT / "bio").glob("*.pth")) if (CKPT_ROOT / "bio").is_dir() else []
NOTE_SMILES = ["C[C@H](N)C(=O)O", "c1ccc2[nH]ccc2c1", "CCN(CC)CC.Cl"]


def _ckpt_root() -> Path:
    if not CHEM or not BIO:
        pytest.fail(f"reference checkpoints not found under {CKPT_ROOT} (expected chem/*.pth and bio/*.pth)")
    return CKPT_ROOT


@pytest.fixture(scope="module")
def molecules(data_dir: Path) -> list[Data]:
    """Two real BBBP molecules (first rows of the file) plus the notes' examples."""
    with open(data_dir / "moleculenet" / "bbbp.csv", newline="") as fh:
        rows = [r["smiles"] for _, r in zip(range(2), csv.DictReader(fh))]
    graphs = [smiles_to_graph(s) for s in rows + NOTE_SMILES]
    assert all(g is not None for g in graphs)
    return graphs


def _type_of(path: Path) -> str:
    return path.stem.split("_")[0]


def test_checkpoints_present() -> None:
    root = _ckpt_root()
    assert {p.name for p in (root / "chem").glob("*.pth")} >= {
        f"{t}_{s}.pth" for t in ("gcn", "graphsage", "gat") for s in ("contextpred", "supervised", "supervised_contextpred")
    }
    assert {p.name for p in (root / "bio").glob("*.pth")} >= {
        f"{t}_{s}.pth" for t in ("gcn", "graphsage", "gat") for s in ("masking", "supervised_masking")
    }


@pytest.mark.parametrize("path", CHEM, ids=lambda p: p.stem)
def test_chem_checkpoint_loads_strictly_and_matches_reference_math(path: Path, molecules: list[Data]) -> None:
    gnn_type = _type_of(path)
    model = GNN(5, 300, gnn_type=gnn_type).eval()
    info = load_encoder_state(model, path, strict=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    # the file's keys are the model's keys, unchanged
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == set(model.state_dict())

    batch = Batch.from_data_list(molecules)
    with torch.no_grad():
        out = model(batch.x, batch.edge_index, batch.edge_attr)
    assert out.shape == (batch.num_nodes, 300) and torch.isfinite(out).all()
    assert out.abs().sum() > 0

    # equivalence with the explicit re-implementation (both in float64, so the tolerance can be tight)
    model.double()
    for g in (molecules[0], molecules[2]):
        expected = dense_encoder(raw, gnn_type, "chem", g.x, g.edge_index, g.edge_attr, 5)
        with torch.no_grad():
            got = model(g.x, g.edge_index, g.edge_attr)
        torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("path", BIO, ids=lambda p: p.stem)
def test_bio_checkpoint_loads_strictly_and_matches_reference_math(path: Path) -> None:
    gnn_type = _type_of(path)
    model = GNN(5, 300, gnn_type=gnn_type, input="bio").eval()
    load_encoder_state(model, path, strict=True)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == set(model.state_dict())

    ego = ego_network()
    with torch.no_grad():
        out = model(ego.x, ego.edge_index, ego.edge_attr)
    assert out.shape == (ego.num_nodes, 300) and torch.isfinite(out).all()
    expected = dense_encoder(raw, gnn_type, "bio", ego.x, ego.edge_index, ego.edge_attr, 5)
    torch.testing.assert_close(out.double(), expected, rtol=1e-3, atol=1e-4)  # float32 model
    with torch.no_grad():
        got64 = model.double()(ego.x, ego.edge_index, ego.edge_attr)
    torch.testing.assert_close(got64, expected, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("domain", ["chem", "bio"])
def test_gin_random_weights_match_reference_math(domain: str, molecules: list[Data]) -> None:
    """No GIN checkpoint is available here: check GIN (chem and bio) with random, non-trivial weights."""
    torch.manual_seed(0)
    model = GNN(3, 32, gnn_type="gin", input="reference" if domain == "chem" else "bio")
    model.train()
    g = molecules[1] if domain == "chem" else ego_network(1)
    with torch.no_grad():  # a few training-mode passes give the BatchNorms non-trivial running stats
        for _ in range(3):
            model(g.x, g.edge_index, g.edge_attr)
    model.eval()
    sd = model.state_dict()
    assert any(v.abs().sum() > 0 and not torch.allclose(v, torch.zeros_like(v)) for k, v in sd.items() if "running_mean" in k)
    with torch.no_grad():
        got = model(g.x, g.edge_index, g.edge_attr).double()
    expected = dense_encoder(sd, "gin", domain, g.x, g.edge_index, g.edge_attr, 3)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_gin_has_reference_key_names() -> None:
    """The reference's GIN checkpoints (not available here) use exactly these keys."""
    model = GNN(5, 300, gnn_type="gin")
    expected = {"x_embedding1.weight", "x_embedding2.weight"}
    for i in range(5):
        expected |= {f"gnns.{i}.mlp.{m}.{w}" for m in (0, 2) for w in ("weight", "bias")}
        expected |= {f"gnns.{i}.edge_embedding1.weight", f"gnns.{i}.edge_embedding2.weight"}
        expected |= {f"batch_norms.{i}.{b}" for b in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    sd = model.state_dict()
    assert set(sd) == expected
    assert sd["gnns.0.edge_embedding1.weight"].shape == (6, 300)
    assert sd["gnns.0.edge_embedding2.weight"].shape == (3, 300)
    assert sd["x_embedding1.weight"].shape == (120, 300)


@pytest.mark.parametrize("gnn_type", ["gin", "gcn", "graphsage", "gat"])
def test_old_pyg_convention_on_directed_graph(gnn_type: str) -> None:
    """On a non-symmetric graph the aggregating node must be edge_index[0] (old PyG), e.g. for GAT's softmax."""
    torch.manual_seed(1)
    model = GNN(2, 16, gnn_type=gnn_type).eval()
    x = torch.tensor([[5, 0], [6, 0], [7, 1], [5, 2], [16, 0]])
    edge_index = torch.tensor([[0, 0, 1, 2, 3, 3, 3], [1, 2, 2, 3, 0, 1, 4]])
    edge_attr = torch.tensor([[0, 0], [1, 0], [3, 1], [2, 2], [0, 0], [3, 0], [1, 1]])
    with torch.no_grad():
        got = model(x, edge_index, edge_attr).double()
        flipped = model(x, edge_index.flip(0), edge_attr).double()
    expected = dense_encoder(model.state_dict(), gnn_type, "chem", x, edge_index, edge_attr, 2)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, flipped, atol=1e-4)  # the direction convention is actually exercised


@pytest.mark.parametrize("gnn_type", ["gin", "gat"])
def test_batched_equals_one_by_one(gnn_type: str, molecules: list[Data]) -> None:
    torch.manual_seed(2)
    model = GNN(3, 24, gnn_type=gnn_type).eval()
    batch = Batch.from_data_list(molecules)
    with torch.no_grad():
        together = model(batch.x, batch.edge_index, batch.edge_attr)
        alone = torch.cat([model(g.x, g.edge_index, g.edge_attr) for g in molecules])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
