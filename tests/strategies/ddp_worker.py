"""Run by ``torchrun`` from tests/train/test_pretrain_ddp.py (not a test module itself).

Each rank runs ``scripts/pretrain.py``'s ``main`` with the given arguments and then saves the weights
it ended with to ``<dump_dir>/rank<R>.pt``, so the test can check that every rank holds the same model.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    dump_dir = Path(sys.argv[1])
    argv = sys.argv[2:]
    spec = importlib.util.spec_from_file_location("pretrain_script", REPO / "scripts" / "pretrain.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    strategy, history = mod.main(argv)
    rank = int(os.environ["RANK"])
    torch.save({"state": strategy.state_dict(), "history": history}, dump_dir / f"rank{rank}.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
