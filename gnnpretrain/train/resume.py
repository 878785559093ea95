"""Resuming a pre-training run: reading its own files (``checkpoint.pth``, ``config.json``), checking that
the new run's configuration matches the saved one, and saving / restoring the RNG states.

Why a module of its own: resuming trusts two files that a crash, a hand edit or a copy over them can
damage. Both are read safely (``weights_only=True``; JSON) and checked to be whole before any of them is
used, so a damaged one is one :class:`~gnnpretrain.errors.CorruptFileError` line naming the file and the
way out (restore it, or ``--overwrite``) instead of a ``KeyError`` in the middle of resuming.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnpretrain.errors import CorruptFileError, UserError
from gnnpretrain.safeload import load_torch

__all__ = ["read_resume_checkpoint", "read_run_config", "ConfigMismatchError", "RESUME_MUTABLE_KEYS", "CONFIG_NAME",
           "check_resume_config", "check_resume_config_early", "rng_state", "set_rng_state"]

CONFIG_NAME = "config.json"

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


#: Config keys that may legitimately change between an interrupted run and its resumption.
RESUME_MUTABLE_KEYS = frozenset(
    {"epochs", "num_workers", "device", "resume", "overwrite", "output", "output_model_file", "progress", "amp",
     "data_root", "cache", "input_model_file", "command", "runtime", "trust_pickle", "compute_dtype", "hardware"}
)


class ConfigMismatchError(UserError, ValueError):
    """``resume`` was asked for, but the run directory was made with a different configuration."""


def rng_state() -> dict:
    """RNG states as tensors and plain numbers, so ``checkpoint.pth`` loads with ``weights_only=True``."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states :func:`rng_state` saved (or an older trusted checkpoint's Python/NumPy objects)."""
    py, npy = state["python"], state["numpy"]
    if isinstance(py, dict):  # tensors (this format) or Python/NumPy objects (older, trusted checkpoints)
        py = (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"])
    random.setstate(py)
    if isinstance(npy, dict):
        npy = (npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(npy)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _comparable(cfg: dict) -> dict:
    out = {}
    for k, v in cfg.items():
        if k in RESUME_MUTABLE_KEYS:
            continue
        out[k] = _comparable(v) if isinstance(v, dict) else v
    return out


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        lines = []
        for k in sorted(set(a) | set(b), key=str):
            lines += _diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{prefix}{k}.")
        return lines
    return [] if a == b else [f"{prefix.rstrip('.')}: saved {a!r}, now {b!r}"]


def check_resume_config(saved: dict, current: dict, out_dir: Path) -> None:
    """Raise :class:`ConfigMismatchError` naming every option (outside :data:`RESUME_MUTABLE_KEYS`) that differs."""
    # JSON round-trip so that tuples/paths compare like what was saved.
    current = json.loads(json.dumps(current, default=str))
    diffs = _diff(_comparable(saved), _comparable(current))
    if diffs:
        raise ConfigMismatchError(
            f"cannot resume the run in {out_dir}: its configuration differs from this one ("
            + "; ".join(diffs)
            + "); use the original settings to resume, or a new --output directory (or --overwrite) to start afresh"
        )


def _subset(saved: Any, partial: Any) -> Any:
    if isinstance(saved, dict) and isinstance(partial, dict):
        return {k: _subset(saved.get(k, "<absent>"), v) for k, v in partial.items()}
    return saved


def check_resume_config_early(out_dir: str | Path, partial: dict) -> None:
    """Compare the keys of ``partial`` with the run's saved ``config.json`` before any data is loaded,
    so a ``--resume`` with other settings fails in the first second (the full check runs again in
    :func:`pretrain`). No-op when there is no saved config."""
    if not (Path(out_dir) / CONFIG_NAME).is_file():
        return
    saved = read_run_config(Path(out_dir) / CONFIG_NAME)
    partial = json.loads(json.dumps(partial, default=str))
    check_resume_config(_subset(saved, partial), partial, Path(out_dir))
