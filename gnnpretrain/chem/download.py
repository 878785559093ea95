"""Fetching official raw files, with a checksum check, a progress bar and one table of known files.

Like PyG and OGB datasets, a missing raw file is downloaded from its official address into the data
root: the MoleculeNet CSVs and the default ZINC corpus (the three MOSES files, 12.9 MB, from the
molecularsets/moses repository; sha256 and size recorded, so a changed or corrupted file is refused).
The paper's ``zinc_standard_agent`` corpus comes only on request (:func:`fetch_zinc_standard_agent`:
it sits inside the reference's 2.5 GB ``chem_dataset.zip``). ``$GNNPRETRAIN_ZINC_URL`` replaces the
MOSES address by a mirror (a folder URL holding ``train.csv.gz``, ``test.csv.gz``,
``test_scaffolds.csv.gz``). Every downloaded file is hashed (sha256). Where the table below records a checksum, a mismatch
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

from gnnpretrain.errors import UserError

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


# The MOSES ZINC files as the molecularsets/moses repository ships them (moses/dataset/data/, stored
# with git LFS, hence the media address); sha256 and size from the LFS pointers of that repository,
# equal to the files of the PyPI package molsets 0.3.1. Saved under the names the data root uses.
MOSES_URL = "https://media.githubusercontent.com/media/molecularsets/moses/master/moses/dataset/data/"
MOSES_URL_ENV = "GNNPRETRAIN_ZINC_URL"
ZINC_REMOTE: dict[str, RemoteFile] = {
    "moses_train.csv.gz": RemoteFile(
        "train.csv.gz", MOSES_URL + "train.csv.gz",
        sha256="786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c", size=10238967),
    "moses_test.csv.gz": RemoteFile(
        "test.csv.gz", MOSES_URL + "test.csv.gz",
        sha256="f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2", size=1367572),
    "moses_test_scaffolds.csv.gz": RemoteFile(
        "test_scaffolds.csv.gz", MOSES_URL + "test_scaffolds.csv.gz",
        sha256="adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde", size=1274114),
}
#: The reference's data archive; ``dataset/zinc_standard_agent/raw/`` inside it is the paper's corpus.
CHEM_DATASET_ZIP = RemoteFile("chem_dataset.zip", "http://snap.stanford.edu/gnn-pretrain/data/chem_dataset.zip")
ZINC_STANDARD_AGENT_MEMBER = "dataset/zinc_standard_agent/raw/"


def zinc_remote(dest_name: str) -> RemoteFile:
    """The remote of a ZINC file, at ``$GNNPRETRAIN_ZINC_URL`` (a mirror) when that is set."""
    remote = ZINC_REMOTE[dest_name]
    mirror = os.environ.get(MOSES_URL_ENV)
    if mirror:
        return RemoteFile(remote.filename, mirror.rstrip("/") + "/" + remote.filename, remote.sha256, remote.size)
    return remote


class ChecksumError(UserError, RuntimeError):
    """A downloaded file does not match the checksum recorded for it (one line from scripts)."""


def _urlopen_to(url: str, fh, timeout: float = 60.0) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https addresses)
        shutil.copyfileobj(resp, fh)


class _ProgressWriter:
    """A file wrapper that advances a progress bar by the bytes written (any opener gets a bar)."""

    def __init__(self, fh, bar) -> None:
        self.fh, self.bar = fh, bar

    def write(self, data) -> int:
        n = self.fh.write(data)
        self.bar.update(len(data))
        return n

    def __getattr__(self, name):
        return getattr(self.fh, name)


def fetch(remote: RemoteFile, dest: str | os.PathLike, opener=None, progress: bool = True) -> Path:
    """Download ``remote`` to ``dest`` atomically and verify it; returns ``dest``.

    ``opener(url, fileobj)`` does the transfer (default: :func:`_urlopen_to`, with a progress bar
    unless ``progress=False``; tests serve files from a local HTTP server, none touches the network).
    Raises :class:`ChecksumError` on a size or sha256 mismatch, ``OSError`` (with the address and
    destination named) if the transfer or the write fails.
    """
    from tqdm.auto import tqdm

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
        with os.fdopen(fd, "wb") as fh, tqdm(total=remote.size, unit="B", unit_scale=True, unit_divisor=1024,
                                             desc=f"download {dest.name}", disable=not progress,
                                             mininterval=1.0) as bar:
            try:
                opener(remote.url, _ProgressWriter(fh, bar))
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


def failure_reason(exc: BaseException) -> str:
    """The underlying cause of a failed :func:`fetch` (``<urlopen error ...>``), for one-line messages."""
    if str(exc).startswith("cannot write"):  # a read-only data root: the whole message is the advice
        return str(exc)
    return str(exc.__cause__ or exc)


def zinc_offline_message(folder: Path, missing: list[str], reason: str | None = None, origin: str | None = None) -> str:
    """One message: which ZINC files to fetch, from where, and where to put them."""
    lines = [
        f"the default ZINC pre-training corpus (MOSES, 1,936,962 molecules, 12.9 MB) is not in {folder}"
        + (f" ({origin})" if origin else "")
        + (f" and could not be downloaded ({reason})" if reason else "") + ". Fetch these files into that folder:",
    ]
    for name in missing:
        r = zinc_remote(name)
        lines.append(f"  {name}  <-  {r.url}  ({r.size:,} bytes, sha256 {r.sha256[:12]}...)")
    lines.append(
        "(the same files ship in the PyPI package molsets as moses/dataset/data/*.csv.gz), or point the data root "
        "at a folder whose zinc/ has them (--data-root DIR or $GNNPRETRAIN_DATA). `python -m gnnpretrain.data` "
        "shows what is present and where it was looked for."
    )
    return "\n".join(lines)


def fetch_zinc(folder: str | os.PathLike, names: list[str] | None = None, progress: bool = True,
               origin: str | None = None) -> list[Path]:
    """Download the missing MOSES ZINC files into ``folder`` (checked); one clear error when offline."""
    folder = Path(folder)
    names = list(names) if names is not None else [n for n in ZINC_REMOTE if not (folder / n).is_file()]
    done = []
    for name in names:
        try:
            done.append(fetch(zinc_remote(name), folder / name, progress=progress))
        except ChecksumError:
            raise
        except OSError as exc:
            missing = [n for n in ZINC_REMOTE if not (folder / n).is_file()]
            raise FileNotFoundError(zinc_offline_message(folder, missing, reason=failure_reason(exc), origin=origin)) from None
    return done


def fetch_zinc_standard_agent(raw_folder: str | os.PathLike, progress: bool = True) -> Path:
    """Download the reference's ``chem_dataset.zip`` (2.5 GB) and extract only the paper's ZINC15 corpus.

    The archive goes to a temporary file beside ``raw_folder`` and is deleted after extraction.
    """
    import zipfile

    raw_folder = Path(raw_folder)
    archive = raw_folder.parent / CHEM_DATASET_ZIP.filename
    try:
        fetch(CHEM_DATASET_ZIP, archive, progress=progress)
    except OSError as exc:
        raise FileNotFoundError(
            f"the zinc_standard_agent corpus (the paper's 2M ZINC15 molecules) is not in {raw_folder} and could "
            f"not be downloaded ({failure_reason(exc)}). Download {CHEM_DATASET_ZIP.url} and extract "
            f"{ZINC_STANDARD_AGENT_MEMBER}* into {raw_folder}."
        ) from None
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.namelist() if m.startswith(ZINC_STANDARD_AGENT_MEMBER) and not m.endswith("/")]
            if not members:
                raise ValueError(f"{CHEM_DATASET_ZIP.url} holds no {ZINC_STANDARD_AGENT_MEMBER}; extract it by hand")
            raw_folder.mkdir(parents=True, exist_ok=True)
            out = []
            for m in members:
                target = raw_folder / Path(m).name
                tmp = target.with_name(f".{target.name}.part")
                with z.open(m) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(tmp, target)
                out.append(target)
    finally:
        archive.unlink(missing_ok=True)
    return out[0]
