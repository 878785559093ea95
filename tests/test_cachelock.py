"""Two processes that need the same cache entry: one builds, the other waits and reads it."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from gnnpretrain.cachelock import build_lock


def _builder(target: str, log: str) -> None:
    with build_lock(target, quiet=True):
        path = Path(target)
        if not path.exists():
            with open(log, "a") as fh:
                fh.write("built\n")
            time.sleep(0.5)  # a slow build: the other process must wait, not build too
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("payload")


def test_concurrent_builders_build_once(tmp_path):
    target, log = tmp_path / "cache" / "entry", tmp_path / "log"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_builder, args=(str(target), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert target.read_text() == "payload"
    assert log.read_text().count("built") == 1


def test_moleculenet_built_concurrently_is_built_once(data_dir, tmp_path):
    """Two processes loading the same dataset into an empty cache: identical results, one build."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        sizes = pool.starmap(_load_bace, [(str(data_dir), str(tmp_path / "c"))] * 2)
    assert sizes[0] == sizes[1] and sizes[0][0] > 1000
    assert len(list((tmp_path / "c" / "moleculenet" / "bace").glob("*.pt"))) == 1


def _load_bace(root: str, cache: str) -> tuple[int, int]:
    import torch

    torch.set_num_threads(1)
    from gnnpretrain.chem.moleculenet import MoleculeNet

    ds = MoleculeNet(root, "bace", cache=cache, num_workers=1, progress=False)
    return len(ds), int(ds.x.shape[0]) if hasattr(ds, "x") else 0
