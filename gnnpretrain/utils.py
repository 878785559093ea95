"""Small shared helpers: atomic writes, seeding, seed-range parsing, device resolution."""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch


def _atomic_replace(path: Path, write) -> None:
    """Write ``path`` via a temporary sibling ``.<name>.<pid>.<random>.tmp`` and a rename. Leftovers of
    interrupted writes (dead pid, or over an hour old) in the same folder are removed first
    (:func:`gnnpretrain.outputs.remove_stale_tmp`)."""
    from gnnpretrain.outputs import remove_stale_tmp

    from gnnpretrain.errors import OutputNotWritableError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:  # name the file the caller asked for, not our temporary sibling
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            reason = "a file is in the way of the folder path"
        raise OutputNotWritableError(f"{path} cannot be written ({reason} in {path.parent}); choose another location") from None
    try:
        # mkstemp creates 0600 files; give results the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Any], Any]) -> None:
    """Write ``path`` atomically through ``write(binary file handle)`` (``np.save``, ``DataFrame.to_parquet``)."""
    _atomic_replace(Path(path), write)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write JSON so that readers never see a half-written file (write to temp, fsync, rename)."""
    data = json.dumps(obj, indent=indent, sort_keys=False, default=_json_default).encode()
    _atomic_replace(Path(path), lambda fh: fh.write(data + b"\n"))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    _atomic_replace(Path(path), lambda fh: fh.write(text.encode()))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a truncated checkpoint behind if interrupted."""
    _atomic_replace(Path(path), lambda fh: torch.save(obj, fh))


def atomic_save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write tensors in the safetensors format (no pickle at all; readable by other ecosystems),
    atomically; ``metadata`` values must be strings (JSON for structured values)."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    _atomic_replace(Path(path), lambda fh: fh.write(data))


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike | None) -> str | None:
    """SHA-256 (hex) of a file's content, ``None`` for no file: checkpoints, downloads and CSV data sets
    are identified by content (re-pre-training into the same path or editing a CSV is detected)."""
    import hashlib

    if not path:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def parse_seeds(spec: str | int | Iterable[int]) -> list[int]:
    """Parse ``"0-9"``, ``"0,2,5"``, ``"3"`` or ``"0-2,7"`` into a sorted list of unique seeds."""
    if isinstance(spec, int):
        return [spec]
    if not isinstance(spec, str):
        return sorted(set(int(s) for s in spec))
    seeds: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.update(range(lo_i, hi_i + 1))
            else:
                seeds.add(int(part))
        except ValueError:
            raise ValueError(
                f"invalid seed specification {spec!r}: expected integers and ranges like '0-9' or '0,3,5'"
            ) from None
    if not seeds:
        raise ValueError(f"invalid seed specification {spec!r}: no seeds given")
    return sorted(seeds)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is validated."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return dev


def run_cli(main, *args: Any) -> None:
    """Run a script's ``main`` and turn expected user errors into one clean message (exit code 2).

    Bad input (a missing file, a wrong option value, a checkpoint of another architecture, a ragged
    CSV, an untrusted pickle, a busy or unwritable output) raises a
    :class:`~gnnpretrain.errors.UserError` or ``FileNotFoundError`` / ``ValueError`` with an
    actionable message; a command-line user needs that message, not a traceback. Set
    ``GNNPRETRAIN_DEBUG=1`` to get the traceback.

    Ctrl-C ends with one line saying what was saved and how to continue (the note registered by the
    work in progress, :func:`gnnpretrain.runtime.interrupt_note`) and exit code 130.

    The library's own ``UserWarning`` s (a damaged cache rebuilt, repeated ledger lines counted once)
    are printed as one line ``warning: …`` each, like errors, instead of Python's two-line form with
    the source line; other warning categories, and everything with ``GNNPRETRAIN_DEBUG=1``, keep it.
    """
    import signal
    import sys
    import warnings

    from gnnpretrain.errors import UserError
    from gnnpretrain.runtime import interrupted_message

    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # scripts may have set a start-up handler
    except ValueError:  # not the main thread
        pass
    previous = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings' signature)
        if issubclass(category, UserWarning) and not os.environ.get("GNNPRETRAIN_DEBUG"):
            print(f"warning: {message}", file=file or sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = one_line
    try:
        main(*args)
    except KeyboardInterrupt:
        if os.environ.get("GNNPRETRAIN_DEBUG"):
            raise
        message = interrupted_message()
        _close_progress_bars()  # so that no bar is redrawn after the message
        print(f"\n{message}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except (UserError, FileNotFoundError, ValueError) as err:
        if os.environ.get("GNNPRETRAIN_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except (PermissionError, IsADirectoryError, NotADirectoryError) as err:  # a path the user gave, not a bug
        if os.environ.get("GNNPRETRAIN_DEBUG"):
            raise
        print(f"error: {err.filename or ''}: {err.strerror or err} (check the path and its permissions)", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        warnings.showwarning = previous


def _close_progress_bars() -> None:
    try:
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()
    except Exception:  # noqa: BLE001 (cosmetic)
        pass


def runtime_info(device: str | torch.device | None = None) -> dict[str, Any]:
    """What changes floating-point results besides the config: library versions, threads, device.

    Recorded in every result file (seed JSON, ledger rows), so two numbers that disagree can be
    traced to a different torch build, thread count or device instead of being averaged blindly.
    """
    import platform
    import sys
    from importlib import metadata

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    from gnnpretrain import __version__

    dev = torch.device(device) if device is not None else None
    info: dict[str, Any] = {
        "gnnpretrain": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_geometric": version("torch_geometric") or version("torch-geometric"),
        "rdkit": version("rdkit"),
        "numpy": np.__version__,
        "scikit_learn": version("scikit-learn"),
        "torch_threads": torch.get_num_threads(),
        "device": str(dev) if dev is not None else None,
        "machine": platform.machine(),
    }
    from gnnpretrain.hardware import cpu_capability, cpu_model

    info["cpu_capability"] = cpu_capability()  # torch's dispatch level (AVX2 / AVX512 ...): speed and rounding
    info["cpu_model"] = cpu_model()
    if dev is not None and dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    return info
