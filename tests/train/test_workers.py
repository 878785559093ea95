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


def _sigterm_blocked(_: int) -> bool:
    import signal

    return signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])


_AT_FORK: dict = {}


def _record_mask_at_fork() -> None:  # runs in every forked child of this test process, first thing
    _AT_FORK["blocked"] = _sigterm_blocked(0)


def _blocked_at_fork(_: int) -> bool:
    return _AT_FORK.get("blocked")


def test_sigterm_is_blocked_only_across_the_forks():
    """Workers are forked with SIGTERM blocked (so one stopped before its initializer cannot run the
    parent's handler on its copy of the parent's stack); the worker unblocks it once its own handler
    is in place, and the parent's mask is restored."""
    import signal

    assert not _sigterm_blocked(0)
    os.register_at_fork(after_in_child=_record_mask_at_fork)
    assert [r for _, r in parallel_map(_blocked_at_fork, [0, 1], 2)] == [True, True]  # across the fork
    assert [r for _, r in parallel_map(_sigterm_blocked, [0, 1], 2)] == [False, False]  # then unblocked
    assert [r for _, r in parallel_map(_sigterm_blocked, [0], 1, context="spawn")] == [False]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_caller_that_stops_early_leaves_no_worker():
    it = parallel_map(_square, list(range(50)), 2)
    k, (pid, _) = next(it)
    it.close()  # GeneratorExit inside the map: cancel and terminate
    assert _gone({pid})
