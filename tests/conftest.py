"""Shared fixtures. Tests read real data from the data root (``$GNNPRETRAIN_DATA`` or ../shared/data)
and write processed tensors to the normal cache (``$GNNPRETRAIN_CACHE`` or ~/.cache/gnnpretrain)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gnnpretrain.paths import cache_dir, data_root

# One thread: the tests use small models, where a second thread mostly adds overhead (measured
# 5-10x slower epochs with 2 threads on a busy 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "moleculenet").is_dir():
        pytest.fail(
            f"real data not found under {root}: set GNNPRETRAIN_DATA to the folder holding moleculenet/, zinc/, chembl/, bio/"
        )
    return root


@pytest.fixture(scope="session")
def cache() -> Path:
    return cache_dir()
