"""One builder per cache entry: processes that need the same processed data wait for the first one.

Cache entries are written atomically (temporary name, then rename), so a reader never sees half a
file. What atomic writes alone do not prevent is two processes (two pytest workers, parallel
fine-tuning seeds, two users' jobs) featurizing the same dataset at the same time: twice the CPU on a
small machine, and a replace-while-reading race for folders. :func:`build_lock` serialises the build:
the first process builds, the others wait for the lock and then find the entry ready.

Usage::

    with build_lock(target, what="MoleculeNet bbbp"):
        if not ready(target):
            build_and_save(target)
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["build_lock"]


@contextmanager
def build_lock(target: str | os.PathLike, what: str | None = None, quiet: bool = False) -> Iterator[None]:
    """Hold an exclusive lock for building ``target`` (a file or folder in a cache).

    The lock file lives in the system's temporary folder (``gnnpretrain-locks/<hash of the target's
    path>.lock``), so cache folders hold nothing but their entries; it coordinates the processes of
    one machine. A process that has to wait says so once on stderr. Where no lock file can be made,
    the build goes unlocked (atomic writes still keep the entry whole).
    """
    import hashlib
    import tempfile

    from filelock import FileLock, Timeout

    target = Path(target)
    try:
        folder = Path(tempfile.gettempdir()) / "gnnpretrain-locks"
        folder.mkdir(exist_ok=True)
        digest = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:24]
        lock = FileLock(str(folder / f"{digest}.lock"))
        try:
            lock.acquire(timeout=0.5)
        except Timeout:
            if not quiet:
                print(f"waiting for another process that is building {what or target.name} ...", file=sys.stderr,
                      flush=True)
            lock.acquire()
    except OSError:  # read-only cache folder: nothing to coordinate with
        yield
        return
    try:
        yield
    finally:
        lock.release()
