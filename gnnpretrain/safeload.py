"""The one way the library reads torch files: ``torch.load(weights_only=True)``, nothing else.

Why: a ``.pth`` / ``.pt`` file is a pickle, and unpickling can run any code the file's author chose
(a ``__reduce__`` that calls ``os.system``). Checkpoints and datasets come from other people
(published weights, downloads, a colleague's run folder), so every read in the library goes
through :func:`load_torch`, which only lets tensors, containers and plain Python types through.

What happens to other files:

* a file that names other Python objects (a whole pickled model, a checkpoint holding an
  ``argparse.Namespace``) is refused with :class:`~gnnpretrain.errors.UnsafeFileError`, one line
  naming the file, the objects it wants to build, and the opt-in ``--trust-pickle`` /
  ``trust_pickle=True``. Nothing from the file runs. Use the opt-in **only for files you trust**:
  it allows exactly the globals the file names (found by reading the pickle's opcodes without
  running them), which for that file is as powerful as full unpickling;
* a truncated, empty or non-torch file is a :class:`~gnnpretrain.errors.CorruptFileError` naming
  the file (instead of a ``KeyError: 101`` or a zip-reader error);
* readers of known old formats (the paper's PyG 1.x processed files) pass ``allow``: a fixed list
  of ``(stand-in class, "module.Name")`` pairs that map the old class names to harmless attribute
  holders, so those files load without any trust (:data:`LEGACY_PYG_NAMES`).

The library writes files that load under these rules: state dicts, plain dicts/lists/numbers/
strings, RNG states as tensors (see ``gnnpretrain.train.pretrain``).
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import pickletools
import re
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from gnnpretrain.errors import CorruptFileError, UnsafeFileError

__all__ = ["load_torch", "pickle_globals", "LEGACY_PYG_NAMES", "LegacyObject", "TRUST_HINT"]

TRUST_HINT = "Pass --trust-pickle (trust_pickle=True) only if you trust this file: loading it runs code it names"

#: Class names of PyG 1.x / 2.x data objects that old processed files pickle; legacy readers map them
#: to :class:`LegacyObject` (an attribute holder) instead of importing anything.
LEGACY_PYG_NAMES: tuple[str, ...] = (
    "torch_geometric.data.data.Data",
    "torch_geometric.data.batch.Batch",
    "torch_geometric.data.Data",
    "torch_geometric.data.Batch",
    "torch_geometric.data.in_memory_dataset.InMemoryDataset",
)


class LegacyObject:
    """Stand-in for an old pickled data class: keeps whatever attributes were pickled, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = {**state[0], **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)


def legacy_allow(stand_in: type = LegacyObject, names: Iterable[str] = LEGACY_PYG_NAMES) -> list[tuple[type, str]]:
    """``allow`` list mapping each old class name in ``names`` to ``stand_in``."""
    return [(stand_in, n) for n in names]


def _pickle_streams(path: Path) -> list[bytes]:
    """The pickle byte streams of a torch file (``data.pkl`` of a zip file, else the raw file)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return [zf.read(n) for n in zf.namelist() if n.endswith(".pkl")]
    return [path.read_bytes()]


def pickle_globals(path: str | os.PathLike) -> list[str]:
    """``module.name`` of every global a torch/pickle file references, read from its opcodes without
    executing them (GLOBAL and STACK_GLOBAL with the two strings pushed before it)."""
    found: list[str] = []
    for data in _pickle_streams(Path(path)):
        stream = io.BytesIO(data)
        for _ in range(8):  # legacy torch files are a few pickles in a row followed by raw storage bytes
            strings: list[str] = []
            try:
                for op, arg, _pos in pickletools.genops(stream):
                    if op.name == "GLOBAL":
                        found.append(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
                    if op.name == "STOP":
                        break
                else:
                    break
            except Exception:  # noqa: BLE001 - raw storage bytes after the pickles, or a damaged file
                break
    out: list[str] = []
    for g in found:
        if g not in out:
            out.append(g)
    return out


def _unsafe_globals(path: Path) -> list[str]:
    """Globals of the file that ``weights_only`` does not allow by default (read, never run)."""
    if zipfile.is_zipfile(path):
        try:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # noqa: BLE001 - fall back to our own opcode scan
            pass
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except Exception:  # noqa: BLE001 - private helper; only used to shorten the list
        allowed = set()
    return [g for g in pickle_globals(path) if g not in allowed and not g.startswith("torch.")]


def _resolve(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    while module:
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            return obj
        except (ImportError, AttributeError):
            module, _, head = module.rpartition(".")
            attr = f"{head}.{attr}"
    raise CorruptFileError(f"cannot import {name!r}, which the file needs")


def _check_looks_like_torch(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes): an interrupted write or copy; recreate or re-download it")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:2] == b"PK":
        if not zipfile.is_zipfile(path):
            raise CorruptFileError(
                f"{path} is a truncated or damaged torch file ({size} bytes, its zip directory is missing); "
                "recreate or re-download it"
            )
        return
    if head[:1] != b"\x80":  # every pickle of protocol >= 2 starts with PROTO
        raise CorruptFileError(
            f"{path} is not a torch file (it starts with {head!r}, not a zip archive or pickle): a damaged file or "
            "another format; recreate or re-download it, or pass the path of a file written by torch.save"
        )


def _global_name(g: Any) -> str:
    return g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}"


@contextmanager
def _stand_ins_win(allow: Sequence[Any]) -> Iterator[None]:
    """Let this reader's ``(stand-in, "module.Name")`` pairs take precedence over the process-wide list.

    torch keeps allowed globals in a *set* and maps each name to whichever entry it meets last, so a
    class registered globally under the same name (PyG registers its real ``Data`` on import) would
    win or lose at random. For the duration of one load, entries that collide with a stand-in's name
    are set aside and restored afterwards.
    """
    names = {g[1] for g in allow if isinstance(g, tuple)}
    saved = list(torch.serialization.get_safe_globals())
    clashing = [g for g in saved if _global_name(g) in names]
    if not clashing:
        yield
        return
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals([g for g in saved if g not in clashing])
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


_NEEDED_RE = re.compile(r"(?:but got <class '([\w.]+)'>|GLOBAL ([\w.]+) was not an allowed global)")


def _load_trusted(path: Path, map_location: Any, trusted: list[Any]) -> Any:
    """The opt-in path: allow the globals the file names, plus classes it builds on the way (found
    one by one from the loader's refusals: e.g. NumPy's dtype classes are not named statically)."""
    for _ in range(32):
        try:
            with _stand_ins_win(trusted), torch.serialization.safe_globals(trusted):
                return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            m = _NEEDED_RE.search(str(exc))
            if m is None:
                raise CorruptFileError(f"{path}: cannot be loaded even when trusted ({str(exc).splitlines()[0][:200]})") from None
            trusted.append(_resolve(m.group(1) or m.group(2)))
    raise CorruptFileError(f"{path}: cannot be loaded even when trusted (too many classes to allow)")


def load_torch(
    path: str | os.PathLike,
    *,
    map_location: Any = "cpu",
    trust_pickle: bool = False,
    allow: Sequence[Any] = (),
    what: str = "file",
    trust_hint: str = TRUST_HINT,
) -> Any:
    """Load a torch file with ``weights_only=True`` (see the module docstring).

    Args:
        path: the file.
        map_location: as for ``torch.load``.
        trust_pickle: also build the Python objects the file names — **only for files you trust**.
        allow: extra globals (or ``(stand-in, "module.Name")`` pairs) this reader knows are harmless.
        what: a word for messages ("checkpoint", "processed cache").
        trust_hint: how this caller's user opts in (the flag, or the Python argument).
    Raises:
        FileNotFoundError, UnsafeFileError (needs trust), CorruptFileError (truncated / not torch).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    _check_looks_like_torch(path)
    try:
        with _stand_ins_win(allow), torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CorruptFileError(f"{path} is not a readable torch {what} ({str(exc).splitlines()[0][:120]})") from None
        names = _unsafe_globals(path)
        if not trust_pickle:
            shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "") if names else "non-tensor objects"
            raise UnsafeFileError(
                f"{path} holds Python objects besides tensors ({shown}); refused because unpickling them could run "
                f"code. {trust_hint}"
            ) from None
        return _load_trusted(path, map_location, list(allow) + [_resolve(n) for n in names])
    except (RuntimeError, EOFError, KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CorruptFileError(
            f"{path} is a truncated or damaged torch {what} ({reason}); recreate or re-download it"
        ) from None


def _pyg2_storage_classes() -> list[Any]:
    """PyG 2.x containers a re-saved ``Data`` object holds (plain attribute stores, no behaviour on load)."""
    try:
        from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
        from torch_geometric.data.storage import GlobalStorage

        return [GlobalStorage, DataEdgeAttr, DataTensorAttr]
    except ImportError:
        return []


def load_legacy_pyg(path: str | os.PathLike, *, trust_pickle: bool = False, what: str = "legacy dataset file") -> Any:
    """Read an old PyG processed file (``(data, slices)`` of PyG 1.x) without running code from it.

    The old ``Data``/``Batch`` classes (:data:`LEGACY_PYG_NAMES`) are rebuilt as :class:`LegacyObject`
    attribute holders; tensors, dicts and numbers load as usual; anything else is refused unless
    ``trust_pickle``. Attributes are in ``obj.__dict__``.
    """
    return load_torch(path, trust_pickle=trust_pickle, allow=legacy_allow() + _pyg2_storage_classes(), what=what, trust_hint=(
        "Pass trust_pickle=True (PaperBioDataset / read_paper_file) only if you trust this file: loading it "
        "runs code it names"))


def load_inmemory_dataset(dataset: Any, path: str | os.PathLike, data_cls: Any = None) -> None:
    """Safe replacement for ``InMemoryDataset.load``: PyG's loader retries with ``weights_only=False``
    when the safe load fails, which would run code from a crafted cache file. Raises
    :class:`~gnnpretrain.errors.UnsafeFileError` / :class:`~gnnpretrain.errors.CorruptFileError`
    (callers rebuild the cache on either)."""
    from torch_geometric.data import Data

    data_cls = data_cls or Data
    out = load_torch(path, allow=[data_cls], what="processed cache")
    if not (isinstance(out, tuple) and len(out) in (2, 3) and isinstance(out[1], dict)):
        raise CorruptFileError(f"{path} is not a processed dataset file (expected (data, slices[, class]))")
    data, slices = out[0], out[1]
    if len(out) == 3 and isinstance(out[2], type):
        data_cls = out[2]
    dataset.data = data_cls.from_dict(data) if isinstance(data, dict) else data
    dataset.slices = slices


def save_inmemory_dataset(data_list: Sequence[Any], path: str | os.PathLike) -> None:
    """``InMemoryDataset.save`` written atomically (temp file + rename), in the same format, so a
    killed processing run leaves no half-written ``data.pt`` behind."""
    from torch_geometric.data import InMemoryDataset

    from gnnpretrain.utils import atomic_torch_save

    data, slices = InMemoryDataset.collate(list(data_list))
    atomic_torch_save((data.to_dict(), slices, data.__class__), path)
