"""Worker processes that never outlive their parent, and the one process pool that stops cleanly.

:func:`parallel_map` is the pool of every local engine that starts processes (parallel separate
seeds, fused groups over worker processes, the comparison's seeds, the quickstart's arms): the
standard library's :class:`~concurrent.futures.ProcessPoolExecutor` with the rules below, so they
hold for all of them. (Several machines: :mod:`gnnpretrain.train.rayengine`, on Ray.)

Workers must never outlive the comparison: a killed parent (Ctrl-C, kill, kill -9) must not leave
processes fine-tuning into files nobody reads. Three mechanisms, for three ways of dying:
* kill -9 of the parent: on Linux each worker asks the kernel for SIGTERM when its parent dies
  (prctl PR_SET_PDEATHSIG); elsewhere a daemon thread polls os.getppid();
* SIGTERM / Ctrl-C of the parent: the parent turns SIGTERM into an exception, cancels what has
  not started and terminates the workers (:func:`stop_pool`); workers ignore SIGINT, so a
  Ctrl-C reaching the whole process group is handled once, by the parent;
* a worker told to stop (SIGTERM) unwinds with SystemExit, so an atomic write in progress removes
  its temporary file, then exits at once instead of waiting for more work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

__all__ = ["die_with_parent", "is_stopping", "stop_pool", "sigterm_raises", "worker_init", "parallel_map"]

_PR_SET_PDEATHSIG = 1
_stopping = False


def _on_stop(signum, frame) -> None:
    global _stopping
    _stopping = True
    raise SystemExit(128 + signum)


def die_with_parent(parent_pid: int) -> None:
    """In a worker: exit when ``parent_pid`` dies (kernel signal on Linux, else a watcher thread);
    SIGTERM unwinds with SystemExit and marks the worker as stopping; SIGINT is the parent's."""
    signal.signal(signal.SIGTERM, _on_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _unblock_sigterm()  # blocked across the fork (parallel_map); our handler is in place now
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if not armed:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(1)


def _unblock_sigterm() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def is_stopping() -> bool:
    """True in a worker that was told to stop (SIGTERM): it should exit at once, not wait for work."""
    return _stopping


def worker_init(threads: int = 1, parent_pid: int | None = None, initializer: Callable | None = None,
                initargs: tuple = ()) -> None:
    """Initializer of a worker: dies with ``parent_pid`` if given (and leaves Ctrl-C to the parent),
    ``threads`` torch threads, then the caller's own ``initializer(*initargs)``."""
    import torch

    if parent_pid is not None:
        die_with_parent(parent_pid)
    else:
        _unblock_sigterm()
    torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)


def _call(fn: Callable, k: int, item: Any) -> tuple[int, Any]:
    try:
        return k, fn(item)
    except BaseException:
        if is_stopping():  # told to stop: the temporary file is gone; do not wait for more work
            os._exit(1)
        raise


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any], processes: int, *, threads: int = 1,
                 context: str = "fork", initializer: Callable | None = None,
                 initargs: tuple = ()) -> Iterator[tuple[int, Any]]:
    """Yield ``(k, fn(items[k]))`` as each item finishes, computed in ``processes`` worker processes.

    Workers have ``threads`` torch threads, ignore Ctrl-C, die with this process (even under
    ``kill -9``, :func:`die_with_parent`) and run ``initializer(*initargs)`` first. ``context``:
    ``"fork"`` (workers inherit what this process loaded; falls back to ``"spawn"`` where fork does not
    exist) or ``"spawn"`` (fresh processes, e.g. for CUDA). Leaving early — an error here or in a
    worker, Ctrl-C, SIGTERM (raised as ``SystemExit``), or the caller closing the iterator — cancels
    what has not started and terminates the workers, which remove their temporary files.
    """
    import multiprocessing as mp

    try:
        ctx = mp.get_context(context)
    except ValueError:
        ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=max(1, int(processes)), mp_context=ctx, initializer=worker_init,
                               initargs=(threads, os.getpid(), initializer, initargs))
    try:
        with sigterm_raises():
            # The workers are forked during the first submit. SIGTERM stays blocked across the forks:
            # a worker stopped before its initializer has run would otherwise run this process's
            # Python handler (ours, or one a library such as Ray installed) on its copy of this
            # process's stack — seen as a pytest worker reporting a test it was not running. The
            # worker unblocks it once its own handler is in place (die_with_parent); a SIGTERM to
            # this process meanwhile is delivered when the mask is restored.
            masked = hasattr(signal, "pthread_sigmask")
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}) if masked else None
            try:
                pending = {pool.submit(_call, fn, k, item) for k, item in enumerate(items)}
            finally:
                if masked:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued work and terminate the workers (they remove their temporary files)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.time() + 10
    for p in procs:
        p.join(max(0.1, deadline - time.time()))
        if p.is_alive():
            p.kill()
            p.join(1)


@contextlib.contextmanager
def sigterm_raises():
    """Within the block SIGTERM raises SystemExit in the main thread, so cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
