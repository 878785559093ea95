"""Reading a pre-training run's own files for ``--resume``: ``checkpoint.pth`` and ``config.json``.

Why a module of its own: resuming trusts two files that a crash, a hand edit or a copy over them can
damage. Both are read safely (``weights_only=True``; JSON) and checked to be whole before any of them is
used, so a damaged one is one :class:`~gnnpretrain.errors.CorruptFileError` line naming the file and the
way out (restore it, or ``--overwrite``) instead of a ``KeyError`` in the middle of resuming.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gnnpretrain.errors import CorruptFileError
from gnnpretrain.safeload import load_torch

__all__ = ["read_resume_checkpoint", "read_run_config"]

_RESUME_KEYS = ("strategy", "optimizer", "epoch", "rng")


def read_resume_checkpoint(path: str | Path, map_location: Any = "cpu", trust_pickle: bool = False) -> dict:
    """``checkpoint.pth`` of a run, read safely and checked to be whole before anything uses it.

    Why: a file that loads but is not a resume checkpoint (an encoder ``model.pth`` copied over it, a
    hand-edited or half-restored file) would otherwise end in a ``KeyError`` traceback in the middle
    of resuming. Missing entries, a non-integer epoch or NaN weights are one
    :class:`~gnnpretrain.errors.CorruptFileError` line naming the file and the way out (``--overwrite``).
    """
    from gnnpretrain.nn.checkpoint import check_encoder_tensors, convert_reference_state_dict

    path = Path(path)
    fix = "restore it from a copy, or start the run again with --overwrite"
    try:
        ckpt = load_torch(path, map_location=map_location, trust_pickle=trust_pickle, what="pre-training checkpoint")
    except CorruptFileError as err:  # this run's own file: nothing to download, but --overwrite recreates it
        raise CorruptFileError(f"{err} (to resume: {fix})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _RESUME_KEYS):
        found = sorted(map(str, ckpt))[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CorruptFileError(
            f"{path} is not a whole pre-training checkpoint (needs {', '.join(_RESUME_KEYS)}; found {found}); {fix}"
        )
    if not isinstance(ckpt["strategy"], dict) or not isinstance(ckpt["optimizer"], dict) or not isinstance(
            ckpt["epoch"], int) or isinstance(ckpt["epoch"], bool) or ckpt["epoch"] < 0:
        raise CorruptFileError(f"{path} is a damaged pre-training checkpoint (its strategy, optimizer or epoch "
                               f"entry has the wrong type); {fix}")
    try:
        encoder = convert_reference_state_dict(ckpt["strategy"])
    except ValueError:
        encoder = None
    if encoder is not None:
        try:
            check_encoder_tensors(encoder, str(path))
        except CorruptFileError as err:
            raise CorruptFileError(f"{str(err).rsplit('; ', 1)[0]}; {fix}") from None
    return ckpt


def read_run_config(path: str | Path) -> dict:
    """A run's saved ``config.json`` (``{}`` if absent); a damaged one is one line, since resuming needs it."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CorruptFileError(
            f"{path} is damaged ({str(exc).splitlines()[0][:100]}); resuming compares against it: restore it from a "
            "copy, or start the run again with --overwrite"
        ) from None
    if not isinstance(saved, dict):
        raise CorruptFileError(f"{path} does not hold a run configuration (a JSON object); restore it or use --overwrite")
    return saved
