"""Output folders: checked before work starts, locked while a run writes them, left tidy after a crash.

Why: runs take hours. A folder that cannot be written should fail in the first second, not after
training; two runs writing one folder mix one run's config with the other's weights; an
interrupted atomic write leaves a ``.<name>.<pid>.<random>.tmp`` file behind for good.

* :func:`ensure_writable` creates the folder and writes a probe file, else raises
  :class:`~gnnpretrain.errors.OutputNotWritableError` (one line naming the folder and the option).
* :func:`output_lock` holds a :class:`filelock.FileLock` on ``<folder>/.gnnpretrain.lock`` for the
  run; a second run is refused at once with :class:`~gnnpretrain.errors.OutputInUseError` naming the
  holder, read from the sidecar ``.gnnpretrain.lock.json`` (pid, host, start time, command). The OS
  releases the lock when the holder dies, so a killed run never blocks the next one. Re-entrant
  within one process (a script and the library function it calls may both take it).
* :func:`remove_stale_tmp` deletes temporary files of interrupted atomic writes in a folder: those
  whose writer (pid in the name) is gone on this host and that are over a minute old, or any over an
  hour old.
  :func:`gnnpretrain.utils._atomic_replace` calls it whenever it writes into a folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gnnpretrain.errors import OutputInUseError, OutputNotWritableError

__all__ = ["ensure_writable", "output_lock", "remove_stale_tmp", "LOCK_NAME"]

LOCK_NAME = ".gnnpretrain.lock"
_HELD: dict[str, list] = {}  # resolved folder -> [FileLock, depth]
_TMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+\.tmp$")
STALE_AFTER_S = 3600.0
DEAD_PID_GRACE_S = 60.0


def ensure_writable(folder: str | os.PathLike, what: str = "output folder", option: str = "--output") -> Path:
    """Create ``folder`` (with parents) and prove a file can be written there; else one clear error."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, (FileExistsError, NotADirectoryError)) or any(
            p.is_file() for p in [folder, *folder.parents]
        ):
            reason = "a file is in the way of the folder path"
        raise OutputNotWritableError(
            f"{what} {folder} cannot be written ({reason}); choose another with {option}"
        ) from None
    return folder


def _holder(sidecar: Path) -> str:
    try:
        info = json.loads(sidecar.read_text())
        return (f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}, "
                f"command: {info.get('command')}")
    except (OSError, ValueError):
        return "another process (no holder information)"


@contextmanager
def output_lock(folder: str | os.PathLike, command: str | None = None, what: str = "output folder") -> Iterator[Path]:
    """Hold the run lock of ``folder`` for the ``with`` block (see the module docstring)."""
    from filelock import FileLock, Timeout

    folder = ensure_writable(folder, what=what)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield folder
        finally:
            _HELD[key][1] -= 1
        return
    lock = FileLock(str(folder / LOCK_NAME), timeout=0)
    sidecar = folder / (LOCK_NAME + ".json")
    try:
        lock.acquire()
    except Timeout:
        raise OutputInUseError(
            f"{what} {folder} is in use by another run ({_holder(sidecar)}); wait for it to finish or choose "
            "another output folder"
        ) from None
    _HELD[key] = [lock, 1]
    try:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        sidecar.write_text(json.dumps(info) + "\n")
        remove_stale_tmp(folder)
        yield folder
    finally:
        del _HELD[key]
        try:
            sidecar.unlink()
        except OSError:
            pass
        lock.release()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(folder: str | os.PathLike, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete leftovers of interrupted atomic writes in ``folder`` (files or folders named
    ``.<name>.<pid>.<random>.tmp`` whose pid is dead and that are over a minute old, or any
    ``.<name>.*.tmp`` older than ``older_than_s``). Returns what was removed; never raises."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        name = e.name
        if not (name.startswith(".") and name.endswith(".tmp")) or name.startswith(".write-probe."):
            continue
        try:
            m = _TMP_RE.match(name)
            age = now - e.stat(follow_symlinks=False).st_mtime
            # a minute of grace even for a dead pid: on a shared filesystem the pid may be another host's
            stale = (m is not None and age > DEAD_PID_GRACE_S and not _pid_alive(int(m.group("pid")))) or age > older_than_s
            if not stale:
                continue
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                os.unlink(e.path)
            removed.append(Path(e.path))
        except (OSError, ValueError):
            continue
    return removed
