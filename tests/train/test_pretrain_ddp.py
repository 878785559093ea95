"""Two CPU processes under torchrun (gloo): DistributedDataParallel keeps the ranks' weights identical."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_ranks_agree(tmp_path, data_dir):
    csv = tmp_path / "corpus.csv"
    pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")[["smiles"]].iloc[:70].to_csv(csv, index=False)
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(REPO / "tests" / "strategies" / "ddp_worker.py"), str(tmp_path),
        "--strategy", "attrmasking", "--dataset", str(csv), "--num-layer", "2", "--emb-dim", "16",
        "--dropout", "0.1", "--batch-size", "16", "--epochs", "2", "--device", "cpu", "--output", str(out),
        "--cache", str(tmp_path / "cache"), "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), f"ranks disagree on {k}"
    # 70 graphs over 2 ranks -> 35 each (padded) -> 3 batches of 16 per rank and epoch
    history = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and all(h["steps"] == 3 for h in history)
    assert json.loads((out / "config.json").read_text())["training"]["world_size"] == 2
    # rank 0 alone wrote the run directory, and what it saved is the trained (shared) encoder
    saved = torch.load(out / "model.pth", weights_only=True)
    for k, v in saved.items():
        assert torch.equal(v, r0["state"]["gnn." + k])
