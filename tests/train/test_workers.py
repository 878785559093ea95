"""``workers.parallel_map``, the one local process pool: every item's result, an error stops the pool,
and no worker outlives the map — whether it ends, fails, or the caller stops early."""

from __future__ import annotations

import os
import sys
import time

import pytest

from gnnpretrain.train.workers import parallel_map


def _square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def _slow_or_fail(x: int) -> int:
    if x == 0:
        raise ValueError("item 0 is bad")
    time.sleep(30)  # would hold the pool for a long time if the error did not stop it
    return x


def _threads(_: int) -> int:
    import torch

    return torch.get_num_threads()


def _gone(pids: set[int], timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.append(pid)
            except FileNotFoundError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_every_item_once_with_its_index_in_worker_processes():
    out = dict(parallel_map(_square, list(range(7)), 2))
    assert {k: v[1] for k, v in out.items()} == {k: k * k for k in range(7)}
    pids = {pid for pid, _ in out.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert _gone(pids)  # the pool is shut down when the map ends


def test_workers_have_the_threads_asked_for():
    assert {v for _, v in parallel_map(_threads, [0, 1], 2, threads=1)} == {1}


def test_an_error_in_a_worker_stops_the_pool_at_once():
    t0 = time.time()
    with pytest.raises(ValueError, match="item 0 is bad"):
        for _ in parallel_map(_slow_or_fail, [0, 1, 2, 3], 2):
            pass
    assert time.time() - t0 < 20  # the sleeping items were terminated, not awaited


def test_a_caller_that_stops_early_leaves_no_worker():
    it = parallel_map(_square, list(range(50)), 2)
    k, (pid, _) = next(it)
    it.close()  # GeneratorExit inside the map: cancel and terminate
    assert _gone({pid})
