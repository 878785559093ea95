"""Where data is read from and where derived files are written.

Two roots, kept apart on purpose:

* the **data root** holds raw files (MoleculeNet CSVs, ZINC SMILES, ChEMBL, STRING/GO). It may be
  read-only (a shared mount, CI). Resolution order: explicit argument, ``$GNNPRETRAIN_DATA``, then a
  ``shared/data`` folder beside or inside the repository checkout (the development layout), then
  ``~/.gnnpretrain/data`` (where downloads go).
* the **reference-checkpoint folder** holds published encoder weights (``<folder>/<domain>/<file>.pth``)
  that :mod:`gnnpretrain.hub` loads without a network. Resolution order: explicit argument,
  ``$GNNPRETRAIN_CHECKPOINTS``, a ``shared/reference-checkpoints`` folder beside or inside the checkout,
  ``reference-checkpoints`` beside ``$GNNPRETRAIN_DATA`` (a shared folder elsewhere), then
  ``~/.gnnpretrain/reference-checkpoints``.
* the **cache** holds processed tensors. It must be writable. Resolution order: explicit argument,
  ``$GNNPRETRAIN_CACHE``, ``$XDG_CACHE_HOME/gnnpretrain``, ``~/.cache/gnnpretrain``.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "GNNPRETRAIN_DATA"
CACHE_ENV = "GNNPRETRAIN_CACHE"
CHECKPOINTS_ENV = "GNNPRETRAIN_CHECKPOINTS"

#: The checkout this package runs from (run folders and committed ledgers are relative to it).
REPO_ROOT = Path(__file__).resolve().parent.parent


def _candidates() -> list[Path]:
    return [REPO_ROOT.parent / "shared" / "data", REPO_ROOT / "shared" / "data"]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the raw-data root (see module docstring for the resolution order)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    for cand in _candidates():
        if cand.is_dir():
            return cand
    return Path.home() / ".gnnpretrain" / "data"


def checkpoints_root(root: str | os.PathLike | None = None) -> Path:
    """Return the folder of published reference checkpoints (see the module docstring for the order).

    The folder may be missing (then :mod:`gnnpretrain.hub` downloads into the cache instead); it is never
    created here, because it is meant to be read-only shared storage.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(CHECKPOINTS_ENV)
    if env:
        return Path(env).expanduser()
    cands = [REPO_ROOT.parent / "shared" / "reference-checkpoints", REPO_ROOT / "shared" / "reference-checkpoints"]
    if os.environ.get(DATA_ENV):  # a shared folder elsewhere: its data/ and reference-checkpoints/ side by side
        cands.append(Path(os.environ[DATA_ENV]).expanduser().parent / "reference-checkpoints")
    for cand in cands:
        if cand.is_dir():
            return cand
    return Path.home() / ".gnnpretrain" / "reference-checkpoints"


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """Return the writable cache root for processed tensors, creating it if needed."""
    if cache is not None:
        path = Path(cache).expanduser()
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        path = Path(os.environ["XDG_CACHE_HOME"]) / "gnnpretrain"
    else:
        path = Path.home() / ".cache" / "gnnpretrain"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from gnnpretrain.errors import OutputNotWritableError

        reason = "a file is in the way of the folder path" if isinstance(exc, (FileExistsError, NotADirectoryError)) else (exc.strerror or type(exc).__name__)
        raise OutputNotWritableError(
            f"cache folder {path} cannot be created ({reason}); choose another with --cache or ${CACHE_ENV}"
        ) from None
    return path


def data_root_origin(root: str | os.PathLike | None = None) -> str:
    """Where the data root came from and which folders were searched for it (for error messages)."""
    if root is not None:
        return f"data root {Path(root).expanduser()} (--data-root)"
    if os.environ.get(DATA_ENV):
        return f"data root {Path(os.environ[DATA_ENV]).expanduser()} (${DATA_ENV})"
    looked = ", ".join(str(c) for c in _candidates())
    chosen = data_root()
    if chosen in _candidates():
        return f"data root {chosen} (the shared/data folder beside the checkout)"
    return (f"data root {chosen} (no --data-root, no ${DATA_ENV}, and no shared/data folder beside the checkout: "
            f"looked at {looked})")


def missing_file_message(path: Path, what: str, url: str | None = None, root: str | os.PathLike | None = None,
                         also: list[str] | None = None) -> str:
    """A uniform, actionable message for a raw file that is neither present nor downloadable.

    Names the file as the README lists it (``path``; ``also`` = other accepted names), the data root
    and where it came from (so a user sees that ``shared/data`` beside the checkout was searched).
    """
    names = f" (or {', '.join(also)})" if also else ""
    msg = (
        f"{what}: raw file not found: {path}{names}; {data_root_origin(root)}. Put the file there, or point the "
        f"data root at a folder that has it (--data-root DIR or ${DATA_ENV}=DIR)."
    )
    if url:
        msg += f" With internet access it is downloaded automatically from {url}."
    return msg
