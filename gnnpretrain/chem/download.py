"""Fetching official raw files, with a checksum check and one table of known files.

Like PyG and OGB datasets, a missing raw file is downloaded from its official address into the data
root. Every downloaded file is hashed (sha256). Where the table below records a checksum, a mismatch
is an error (the partial/unexpected file is deleted, nothing is left half-written). Where it records
``None`` the checksum is *unknown* — it could not be computed in the offline environment this project
was written in — and the computed value is reported in a warning so it can be pasted into the table.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

MOLECULENET_URL = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/{}"


@dataclass(frozen=True)
class RemoteFile:
    """An official raw file: where it comes from and what it must hash to (``None`` = unknown)."""

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None


# The official MoleculeNet files (names as in PyG's ``torch_geometric.datasets.MoleculeNet``).
# Checksums: unknown (None) — not computable offline; see the module docstring.
MOLECULENET_FILES: dict[str, RemoteFile] = {
    name: RemoteFile(fname, MOLECULENET_URL.format(fname))
    for name, fname in {
        "bbbp": "BBBP.csv",
        "tox21": "tox21.csv.gz",
        "toxcast": "toxcast_data.csv.gz",
        "sider": "sider.csv.gz",
        "clintox": "clintox.csv.gz",
        "muv": "muv.csv.gz",
        "hiv": "HIV.csv",
        "bace": "bace.csv",
    }.items()
}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class ChecksumError(RuntimeError):
    """A downloaded file does not match the checksum recorded for it."""


def _urlopen_to(url: str, fh, timeout: float = 60.0) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https addresses)
        shutil.copyfileobj(resp, fh)


def fetch(remote: RemoteFile, dest: str | os.PathLike, opener=None) -> Path:
    """Download ``remote`` to ``dest`` atomically and verify it; returns ``dest``.

    ``opener(url, fileobj)`` does the transfer (default: :func:`_urlopen_to`, looked up at call
    time so tests can replace it; no test touches the network).
    Raises :class:`ChecksumError` on a size or sha256 mismatch, ``OSError`` (with the address and
    destination named) if the transfer or the write fails.
    """
    dest = Path(dest)
    opener = opener if opener is not None else _urlopen_to
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise OSError(
            f"cannot write the download of {remote.url} into {dest.parent} ({exc}); the data root may be "
            "read-only: download the file yourself and put it there, or choose a writable data root"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                opener(remote.url, fh)
            except Exception as exc:  # network errors come in many types
                raise OSError(f"download of {remote.url} failed: {exc}. Put the file at {dest} by hand.") from exc
        size = os.path.getsize(tmp)
        digest = sha256_file(tmp)
        if remote.size is not None and size != remote.size:
            raise ChecksumError(f"{remote.url}: expected {remote.size} bytes, got {size}; file discarded")
        if remote.sha256 is not None and digest != remote.sha256:
            raise ChecksumError(
                f"{remote.url}: sha256 mismatch (expected {remote.sha256}, got {digest}); file discarded. "
                "The upstream file changed or the download was corrupted."
            )
        if remote.sha256 is None:
            warnings.warn(
                f"downloaded {remote.filename} ({size} bytes, sha256 {digest}); no checksum is recorded for it "
                "in gnnpretrain.chem.download, so its content was not verified",
                stacklevel=2,
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
