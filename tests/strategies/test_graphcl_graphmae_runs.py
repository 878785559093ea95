"""GraphCL and GraphMAE in the library's machinery: exact resume, the CLI and its per-strategy defaults,
chaining with supervised pre-training, comparison rows, and two-process DDP."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from gnnpretrain.chem import smiles_to_graph
from gnnpretrain.data import GraphStore
from gnnpretrain.strategies import build_strategy, get_strategy_class
from gnnpretrain.train.pretrain import pretrain
from gnnpretrain.train.pretrain_data import make_pretrain_loader

REPO = Path(__file__).resolve().parents[2]
TINY = dict(num_layer=2, emb_dim=16, JK="last", drop_ratio=0.1, gnn_type="gin")


def _script():
    spec = importlib.util.spec_from_file_location("pretrain_script_i23", REPO / "scripts" / "pretrain.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def store(data_dir):
    smiles = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")["smiles"].iloc[:160]
    return GraphStore.from_data_list([g for g in map(smiles_to_graph, smiles) if g is not None])


def _run(store, out_dir, epochs, name, resume=False):
    torch.manual_seed(0)
    strategy = build_strategy(name, encoder_kwargs=TINY)
    loader = make_pretrain_loader(store, batch_size=40, seed=0)
    history = pretrain(strategy, loader, epochs=epochs, lr=1e-3, device="cpu", out_dir=out_dir, resume=resume,
                       progress=False, log=lambda s: None)
    return strategy, history


@pytest.mark.parametrize("name", ["graphcl", "graphmae"])
def test_resume_reproduces_uninterrupted_run(store, tmp_path, name):
    """2 epochs straight == 1 epoch, stop, resume to 2 (augmentations / masks drawn from the loop's generator)."""
    straight, h_straight = _run(store, tmp_path / "a", 2, name)
    _run(store, tmp_path / "b", 1, name)
    resumed, h_resumed = _run(store, tmp_path / "b", 2, name, resume=True)
    a, b = straight.state_dict(), resumed.state_dict()
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for ra, rb in zip(h_straight, h_resumed):
        assert {k: v for k, v in ra.items() if k != "time_s"} == {k: v for k, v in rb.items() if k != "time_s"}
    assert h_straight[0]["num_graphs"] == len(store)


def test_script_applies_the_strategy_training_defaults():
    script = _script()
    parser = script.build_parser()
    for name, epochs in (("graphcl", 80), ("graphmae", 100), ("contextpred", 100)):
        args = script.resolve_training_defaults(parser.parse_args(["--strategy", name]), get_strategy_class(name))
        assert (args.epochs, args.batch_size, args.lr, args.decay) == (epochs, 256, 1e-3, 0.0), name
    args = script.resolve_training_defaults(parser.parse_args(["--strategy", "graphcl", "--epochs", "3"]),
                                            get_strategy_class("graphcl"))
    assert args.epochs == 3


def test_cli_trains_graphcl_and_graphmae_and_chains_into_supervised(tmp_path, data_dir):
    script = _script()
    csv = tmp_path / "corpus.csv"
    pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")[["smiles"]].iloc[:80].to_csv(csv, index=False)
    common = ["--dataset", str(csv), "--num-layer", "2", "--emb-dim", "16", "--batch-size", "32", "--epochs", "1",
              "--cache", str(tmp_path / "cache"), "--no-progress"]
    _, history = script.main(["--strategy", "graphcl", "--output", str(tmp_path / "cl"), "--aug1", "dropN",
                              "--temperature", "0.2", *common])
    cfg = json.loads((tmp_path / "cl" / "config.json").read_text())
    assert cfg["strategy_options"] == {"aug1": "dropN", "aug2": "random", "aug_ratio1": 0.2, "aug_ratio2": 0.2,
                                       "temperature": 0.2}
    assert history[0]["steps"] == 3 and history[0]["num_graphs"] == 80
    mae, history = script.main(["--strategy", "graphmae", "--output", str(tmp_path / "mae"), "--mask-rate", "0.3",
                                "--input-model-file", str(tmp_path / "cl" / "model.pth"), *common])
    assert json.loads((tmp_path / "mae" / "config.json").read_text())["strategy_options"]["mask_rate"] == 0.3
    assert history[0]["num_masked"] > 0
    with pytest.raises(SystemExit):  # a flag of another strategy is refused
        script.main(["--strategy", "graphmae", "--output", str(tmp_path / "bad"), "--temperature", "0.5", *common])

    # graphcl+supervised: the supervised step starts from graphcl's model.pth, as compare's chain runs it
    from gnnpretrain.nn import load_encoder_state

    df = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv").iloc[:96]
    graphs = []
    for s, y in zip(df["smiles"], df["p_np"]):
        g = smiles_to_graph(s)
        if g is not None:
            g.y = torch.tensor([[float(y)]])
            graphs.append(g)
    sup = build_strategy("supervised", encoder_kwargs=dict(TINY, drop_ratio=0.0), num_tasks=1)
    load_encoder_state(sup.encoder, tmp_path / "cl" / "model.pth")
    saved = torch.load(tmp_path / "cl" / "model.pth", weights_only=True)
    assert all(torch.equal(sup.encoder.state_dict()[k], v) for k, v in saved.items())
    opt = torch.optim.Adam(sup.parameters(), lr=1e-3)
    loss, _ = sup(Batch.from_data_list(graphs[:32]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


def test_compare_rows_accept_the_new_strategies_and_chains(tmp_path):
    from gnnpretrain.train.compare import CompareConfig, build_rows
    from gnnpretrain.train.compare.plan import pretrain_dir

    cfg = CompareConfig(strategies=["none", "graphcl", "graphmae", "graphcl+supervised", "graphmae+supervised"],
                        datasets=["bbbp"], seeds=[0], output=str(tmp_path), reference_checkpoints=[])
    rows = {r.name: r for r in build_rows(cfg)}
    assert rows["graphcl+supervised"].chain == ("graphcl", "supervised")
    assert rows["graphmae"].chain == ("graphmae",) and rows["graphmae"].baseline == "none"
    assert pretrain_dir(cfg, ("graphcl", "supervised"), "gin").name.startswith("graphcl+supervised-")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", ["graphcl", "graphmae"])
def test_two_process_ddp_ranks_agree(tmp_path, data_dir, name):
    csv = tmp_path / "corpus.csv"
    pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")[["smiles"]].iloc[:70].to_csv(csv, index=False)
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(REPO / "tests" / "strategies" / "ddp_worker.py"), str(tmp_path),
        "--strategy", name, "--dataset", str(csv), "--num-layer", "2", "--emb-dim", "16",
        "--dropout", "0.1", "--batch-size", "16", "--epochs", "1", "--device", "cpu", "--output", str(out),
        "--cache", str(tmp_path / "cache"), "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), f"ranks disagree on {k}"
    # 35 graphs per rank: batches of 16, 16 and 3 (graphcl contrasts within each rank's batch)
    history = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["steps"] == 3 and history[0]["num_graphs"] == 70
    saved = torch.load(out / "model.pth", weights_only=True)
    for k, v in saved.items():
        assert torch.equal(v, r0["state"]["gnn." + k])
