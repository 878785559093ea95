"""Small real inputs the fine-tuning tests share: a few hundred BACE molecules and a random encoder file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch


def small_root(tmp: Path, data_dir: Path, n: int = 240) -> Path:
    """A data root with ``n`` real BACE molecules, so every fine-tune takes a fraction of a second."""
    root = tmp / "root"
    (root / "moleculenet").mkdir(parents=True)
    pd.read_csv(data_dir / "moleculenet" / "bace.csv").sample(n, random_state=0).to_csv(
        root / "moleculenet" / "bace.csv", index=False
    )
    return root


def random_encoder(path: Path, seed: int = 0) -> Path:
    """A real (randomly initialised) 2 x 16 GIN encoder file, standing in for a pre-trained one."""
    from gnnpretrain.nn import GNN

    torch.manual_seed(seed)
    torch.save(GNN(num_layer=2, emb_dim=16).state_dict(), path)
    return path
