"""Checkpoint loading: architecture detection, one clear error on mismatch, our own checkpoint formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gnnpretrain.paths import checkpoints_root
from gnnpretrain.errors import UnsafeFileError
from gnnpretrain.train.resume import rng_state
from torch_geometric.data import Batch

from gnnpretrain.chem.featurize import smiles_to_graph
from gnnpretrain.nn import GNN, GNNGraphPred, convert_reference_state_dict, describe_state_dict, load_encoder_state

CKPT = checkpoints_root()  # found as the library finds it ($GNNPRETRAIN_CHECKPOINTS, ../shared, ...)
GCN_FILE = CKPT / "chem" / "gcn_contextpred.pth"
GAT_FILE = CKPT / "chem" / "gat_supervised.pth"
SAGE_BIO_FILE = CKPT / "bio" / "graphsage_masking.pth"


@pytest.fixture(scope="module")
def batch() -> Batch:
    return Batch.from_data_list([smiles_to_graph(s) for s in ["CC(=O)Oc1ccccc1C(=O)O", "C[C@H](N)C(=O)O"]])


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"reference checkpoint missing: {path}")
    return path


def test_describe_reference_files() -> None:
    d = describe_state_dict(torch.load(_require(GAT_FILE), map_location="cpu", weights_only=True))
    assert (d["gnn_type"], d["num_layer"], d["emb_dim"], d["input"], d["heads"]) == ("gat", 5, 300, "reference", 2)
    d = describe_state_dict(torch.load(_require(SAGE_BIO_FILE), map_location="cpu", weights_only=True))
    assert d["gnn_types"] == ("gcn", "graphsage") and d["input"] == "bio" and d["num_layer"] == 5


@pytest.mark.parametrize(
    "gnn_type,input_kind,layers,dim",
    [("gin", "reference", 3, 20), ("gin", "bio", 2, 12), ("gin", "ogb", 2, 8), ("gat", "ogb", 4, 8), ("gcn", "bio", 2, 8)],
)
def test_describe_our_encoders(gnn_type: str, input_kind: str, layers: int, dim: int) -> None:
    d = describe_state_dict(GNN(layers, dim, gnn_type=gnn_type, input=input_kind).state_dict())
    assert gnn_type in d["gnn_types"]
    assert (d["num_layer"], d["emb_dim"], d["input"]) == (layers, dim, input_kind)


@pytest.mark.parametrize(
    "model_kwargs,mismatch",
    [
        ({"gnn_type": "gin"}, "gnn_type"),
        ({"gnn_type": "gat"}, "gnn_type"),
        ({"gnn_type": "gcn", "emb_dim": 256}, "emb_dim"),
        ({"gnn_type": "gcn", "num_layer": 3}, "num_layer"),
        ({"gnn_type": "gcn", "input": "bio"}, "input"),
    ],
)
def test_mismatch_raises_one_clear_error(model_kwargs: dict, mismatch: str) -> None:
    kwargs = {"num_layer": 5, "emb_dim": 300, **model_kwargs}
    model = GNN(**kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_encoder_state(model, _require(GCN_FILE))
    msg = str(info.value)
    assert "is a gcn encoder with emb_dim 300 / 5 layers" in msg
    assert f"this model is a {kwargs['gnn_type']} encoder with emb_dim {kwargs['emb_dim']} / {kwargs['num_layer']} layers" in msg
    assert mismatch in msg.split("mismatch in")[1]
    # nothing was loaded
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_gcn_and_graphsage_told_apart_by_file_name_or_metadata(tmp_path: Path) -> None:
    sd = torch.load(_require(SAGE_BIO_FILE), map_location="cpu", weights_only=True)
    with pytest.raises(ValueError, match="is a graphsage encoder"):
        load_encoder_state(GNN(5, 300, gnn_type="gcn", input="bio"), SAGE_BIO_FILE)
    # a bare state dict without hints fits either layout
    load_encoder_state(GNN(5, 300, gnn_type="gcn", input="bio"), sd)
    # metadata settles it
    with pytest.raises(ValueError, match="is a graphsage encoder"):
        load_encoder_state(GNN(5, 300, gnn_type="gcn", input="bio"), {"model": sd, "config": {"encoder": {"gnn_type": "graphsage"}}})
    # a neutral file name gives no hint
    neutral = tmp_path / "encoder.pth"
    torch.save(sd, neutral)
    load_encoder_state(GNN(5, 300, gnn_type="gcn", input="bio"), neutral)


def test_our_checkpoint_formats_round_trip(tmp_path: Path, batch: Batch) -> None:
    torch.manual_seed(0)
    source = GNNGraphPred(3, 16, num_tasks=4, gnn_type="gin").eval()
    with torch.no_grad():  # non-default BatchNorm stats, so a missed buffer would show
        for bn in source.gnn.batch_norms:
            bn.running_mean.uniform_(-1, 1)
    expected = source.gnn(batch.x, batch.edge_index, batch.edge_attr)
    encoder_sd = source.gnn.state_dict()
    strategy_sd = {f"gnn.{k}": v for k, v in encoder_sd.items()}
    strategy_sd.update({f"context_gnn.{k}": torch.zeros_like(v) for k, v in encoder_sd.items()})
    strategy_sd["head.weight"] = torch.zeros(3, 16)

    formats = {
        "model.pth": encoder_sd,  # what pre-training writes
        "finetuned.pth": source.state_dict(),  # a whole GNNGraphPred (prefix gnn.)
        "wrapped_model.pth": {"model": encoder_sd},
        "wrapped_encoder.pth": {"encoder": encoder_sd, "epoch": 3},
        # the resume checkpoint: whole strategy + RNG states as tensors (loads with weights_only=True)
        "checkpoint.pth": {
            "strategy": strategy_sd,
            "epoch": 3,
            "rng": rng_state(),
            "config": {"encoder": {"gnn_type": "gin"}},
        },
        "ddp.pth": {f"module.{k}": v for k, v in encoder_sd.items()},
    }
    for name, obj in formats.items():
        path = tmp_path / name
        torch.save(obj, path)
        target = GNNGraphPred(3, 16, num_tasks=2, gnn_type="gin").eval()
        assert target.from_pretrained(path) is target
        got = target.gnn(batch.x, batch.edge_index, batch.edge_attr)
        torch.testing.assert_close(got, expected, msg=name)
        # in-memory objects work as well as paths
        other = GNN(3, 16).eval()
        load_encoder_state(other, obj)
        torch.testing.assert_close(other(batch.x, batch.edge_index, batch.edge_attr), expected, msg=name)

    # an older checkpoint.pth kept NumPy's RNG state as an ndarray: refused by default (unpickling
    # NumPy objects goes beyond weights), loaded with the explicit trust opt-in
    legacy = tmp_path / "legacy_checkpoint.pth"
    torch.save({"strategy": strategy_sd, "rng": {"numpy": np.random.get_state()}}, legacy)
    with pytest.raises(UnsafeFileError, match=r"legacy_checkpoint\.pth holds Python objects.*--trust-pickle"):
        load_encoder_state(GNN(3, 16), legacy)
    other = GNN(3, 16).eval()
    load_encoder_state(other, legacy, trust_pickle=True)
    torch.testing.assert_close(other(batch.x, batch.edge_index, batch.edge_attr), expected)


def test_convert_fills_missing_batchnorm_counters() -> None:
    sd = torch.load(_require(GCN_FILE), map_location="cpu", weights_only=True)
    old_style = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    converted = convert_reference_state_dict(old_style)
    assert set(converted) == set(sd)
    GNN(5, 300, gnn_type="gcn").load_state_dict(converted, strict=True)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="encoder checkpoint not found"):
        load_encoder_state(GNN(2, 8), tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="not an encoder checkpoint"):
        load_encoder_state(GNN(2, 8), {"epoch": 3, "lr": 0.1})
    with pytest.raises(ValueError, match="no encoder layers"):
        load_encoder_state(GNN(2, 8), {"linear.weight": torch.zeros(2, 2)})


def test_non_strict_reports_missing_keys() -> None:
    sd = GNN(2, 8).state_dict()
    partial = {k: v for k, v in sd.items() if not k.startswith("batch_norms.1.")}
    info = load_encoder_state(GNN(2, 8), partial, strict=False)
    # (PyTorch itself fills in a missing num_batches_tracked counter)
    expected = sorted(k for k in sd if k.startswith("batch_norms.1.") and not k.endswith("num_batches_tracked"))
    assert sorted(info["missing_keys"]) == expected
    with pytest.raises(ValueError, match="does not fit this model"):
        load_encoder_state(GNN(2, 8), partial, strict=True)
