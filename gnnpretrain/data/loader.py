"""Batches from a :class:`GraphStore`: deterministic shuffling, DDP sharding, optional prefetch thread.

A ``torch.utils.data.DataLoader`` over a list of ``Data`` spends most of its time collating graph by
graph; here each batch is one vectorised :meth:`GraphStore.collate` call, so a single background thread
(``prefetch > 0``) is enough to hide batch assembly behind the training step.

Order: for epoch ``e`` the permutation comes from a ``torch.Generator`` seeded with ``seed + e`` (so it
is reproducible, identical on every rank, and different per epoch; call :meth:`set_epoch`). DDP sharding
follows ``torch.utils.data.DistributedSampler``: the permutation is padded by repeating its head
(``drop_last=False``) or truncated (``drop_last=True``) to a multiple of ``world_size``, and rank ``r``
takes positions ``r, r + world_size, ...`` — shards are disjoint (up to the padding) and every rank runs
the same number of steps. ``drop_last`` also drops each rank's final incomplete batch.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import torch
from torch_geometric.data import Batch

from .store import GraphStore


class GraphStoreLoader:
    """Iterate over ``store`` in batches of ``batch_size`` graphs, yielding ``torch_geometric`` ``Batch``es.

    Args:
        store: the graphs.
        batch_size: graphs per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: new random order each epoch (seeded by ``seed + epoch``); otherwise store order.
        seed: base seed of the shuffle.
        drop_last: drop the tail that does not divide evenly across ranks and each rank's last
            incomplete batch (otherwise ranks are padded with repeated graphs, as DistributedSampler).
        rank, world_size: this process's shard.
        prefetch: number of batches assembled ahead in a background thread (0 = none).
        transform: optional callable applied to each assembled batch (e.g. moving it to a device).
        pin_memory: put each batch in page-locked memory (faster, asynchronous copies to a GPU);
            ignored without CUDA.
    """

    def __init__(
        self,
        store: GraphStore,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        prefetch: int = 0,
        transform: Callable[[Batch], object] | None = None,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size with world_size >= 1; got rank={rank}, world_size={world_size}")
        if len(store) == 0:
            raise ValueError("GraphStoreLoader got an empty store")
        if drop_last and len(store) < world_size:
            raise ValueError(
                f"drop_last=True with {len(store)} graphs and world_size={world_size} leaves no graph per rank"
            )
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0; got {prefetch}")
        self.store = store
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.prefetch = int(prefetch)
        self.transform = transform
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose (deterministic) order the next iteration uses."""
        self.epoch = int(epoch)

    @property
    def num_samples(self) -> int:
        """Graphs this rank visits per epoch (before dropping an incomplete last batch)."""
        n = len(self.store)
        if self.drop_last:
            return n // self.world_size
        return -(-n // self.world_size)

    def __len__(self) -> int:
        m = self.num_samples
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def indices(self) -> torch.Tensor:
        """The graph indices this rank visits in the current epoch, in order."""
        n = len(self.store)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:  # pad by repeating the head of the order (possibly several times)
            reps = -(-total // n)
            order = order.repeat(reps)[:total]
        else:
            order = order[:total]
        return order[self.rank :: self.world_size]

    def batches(self) -> list[torch.Tensor]:
        """The index tensor of every batch of the current epoch on this rank."""
        idx = self.indices()
        chunks = list(torch.split(idx, self.batch_size))
        if self.drop_last and chunks and chunks[-1].numel() < self.batch_size:
            chunks.pop()
        return chunks

    def _make(self, idx: torch.Tensor):
        b = self.store.collate(idx)
        if self.pin_memory:
            b = b.pin_memory()
        return self.transform(b) if self.transform is not None else b

    def __iter__(self) -> Iterator[Batch]:
        chunks = self.batches()
        if self.prefetch == 0:
            for c in chunks:
                yield self._make(c)
            return
        yield from _prefetched(self._make, chunks, self.prefetch)


_DONE = object()


def _prefetched(make: Callable, chunks: list[torch.Tensor], depth: int) -> Iterator:
    """Run ``make`` over ``chunks`` in a daemon thread, ``depth`` results ahead; re-raise its errors."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def worker() -> None:
        try:
            for c in chunks:
                if stop.is_set():
                    return
                item = make(c)
                while not stop.is_set():
                    try:
                        q.put(("ok", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
            q.put(("done", _DONE))
        except BaseException as exc:  # surfaced in the consumer
            q.put(("err", exc))

    t = threading.Thread(target=worker, name="GraphStoreLoader-prefetch", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "ok":
                yield item
            elif kind == "done":
                return
            else:
                raise item
    finally:
        stop.set()
        # drain so that a blocked producer can exit
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            t.join(timeout=0.05)
