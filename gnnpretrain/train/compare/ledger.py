"""The results ledger: one small CSV per experiment, one line per (row, dataset, seed).

Why a ledger beside the run folders: the per-seed JSON files (with per-epoch curves) live in ignored
run folders on one machine; the ledger is the small, committed record that grows across runs and
machines (``chem/results/<experiment>.csv``), and the only input the tables and figures need
(:func:`gnnpretrain.train.compare.report.report_from_ledger`).

Rules:

* **one protocol per ledger** — every line shares the options in :data:`PROTOCOL_KEYS` (epochs,
  batch size, learning rate, split, ...). Appending a line with another protocol is refused with one
  error naming each differing option; a new protocol needs a new ledger file.
* **one encoder per row name** — the lines of a row share :data:`ROW_KEYS` (architecture, size,
  checkpoint SHA-256), so a re-pre-trained checkpoint under an old row name is refused too.
* **cells are immutable** — a (row, dataset, seed) already present with the same ``config_hash`` is
  skipped by the runner and ignored on append (idempotent); with another hash it is an error.
* **atomic, locked appends** — appends re-read the file under a :mod:`filelock` lock beside it
  (``.<name>.lock``) and replace it atomically, so parallel writers and a kill mid-write never lose
  or cut a line.
* **read as strictly as written** (:mod:`.ledgerfile`) — every value must parse as its column's kind
  (a seed is ``1``, not ``1.0``; a score is a finite number in [0, 1]), else one
  :class:`~.ledgerfile.LedgerFormatError` line naming file, line and column; lines of one cell with
  the same result collapse to one (one warning line); lines of one cell with different results are a
  :class:`~.ledgerfile.LedgerConflictError` naming both lines; lines that mix protocols or encoders
  under one row name (a hand merge) are refused like such an append. :func:`merge_ledgers` combines
  the ledgers of several machines under the same rules.
* **formats** — :data:`LEDGER_FORMAT` 2 added ``compute_dtype`` (``float32`` / ``bfloat16``) and
  ``cpu_capability`` (the CPU kernels torch used, e.g. ``AVX512``), neither of which enters
  ``config_hash``. Format-1 files (the first committed ledgers) are read with those columns empty;
  the first append to one rewrites it with the format-2 header, every old value unchanged (old lines
  keep ``ledger_format`` 1 and empty new columns).

Besides the config, each line records what changes floating-point results (device, torch threads,
library versions via :func:`gnnpretrain.utils.runtime_info`) and the split sizes (which depend on the
RDKit version), so numbers that disagree can be traced instead of averaged blindly.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from gnnpretrain.train.compare.ledgerfile import (
    LedgerConflictError,
    LedgerFormatError,
    LedgerMismatchError,
    Schema,
    SourcedLine,
    collapse,
    parse_lines,
    render,
)
from gnnpretrain.utils import atomic_write_text

LEDGER_FORMAT = 2

#: Options every line of one ledger shares (the experiment's fine-tuning protocol).
PROTOCOL_KEYS = (
    "domain", "epochs", "batch_size", "lr", "decay", "dropout", "JK", "graph_pooling",
    "split", "split_seed", "featurizer",
)
#: Options every line of one row name shares (which encoder the row fine-tunes).
ROW_KEYS = ("gnn_type", "num_layer", "emb_dim", "checkpoint_sha256")
#: Library versions copied from :func:`gnnpretrain.utils.runtime_info`.
VERSION_KEYS = ("gnnpretrain", "torch", "torch_geometric", "rdkit", "numpy", "scikit_learn", "python")

#: Format 1 (ledgers written before the compute dtype was recorded); read, never written.
COLUMNS_V1 = (
    "experiment", "row", "baseline", "checkpoint", "dataset", "seed",
    "test_auc_best_valid", "test_auc_last", "best_valid_auc", "best_epoch",
    "n_train", "n_valid", "n_test", "wall_time_s", "device", "torch_threads",
    *VERSION_KEYS, *ROW_KEYS, *PROTOCOL_KEYS, "config_hash", "ledger_format", "finished_at",
)
#: Runtime columns of format 2: what the matrix products ran in, and which CPU kernels torch picked.
RUNTIME_KEYS_V2 = ("compute_dtype", "cpu_capability")
COLUMNS = (*COLUMNS_V1[:COLUMNS_V1.index("torch_threads") + 1], *RUNTIME_KEYS_V2,
           *COLUMNS_V1[COLUMNS_V1.index("torch_threads") + 1:])

#: Columns whose values are a cell's result: two lines of one cell agreeing on all of them are one
#: result written twice (collapsed); disagreeing on any is a conflict.
RESULT_COLUMNS = ("config_hash", "test_auc_best_valid", "test_auc_last", "best_valid_auc", "best_epoch",
                  "n_train", "n_valid", "n_test")

SCHEMA = Schema(
    headers={1: COLUMNS_V1, 2: COLUMNS},
    kinds={
        "seed": "count", "best_epoch": "count", "n_train": "count", "n_valid": "count", "n_test": "count",
        "torch_threads": "count", "num_layer": "count", "emb_dim": "count", "epochs": "count", "batch_size": "count",
        "split_seed": "int", "ledger_format": "count",
        "test_auc_best_valid": "auc", "test_auc_last": "auc", "best_valid_auc": "auc",
        "wall_time_s": "nonneg", "lr": "float", "decay": "float", "dropout": "float",
        "config_hash": "hex16", "checkpoint_sha256": "hex64", "finished_at": "time", "compute_dtype": "dtype",
    },
    required=frozenset({
        "experiment", "row", "dataset", "seed", "test_auc_best_valid", "test_auc_last", "best_valid_auc",
        "best_epoch", "gnn_type", "num_layer", "emb_dim", *PROTOCOL_KEYS, "config_hash", "ledger_format",
        "finished_at", "compute_dtype",
    }),
    required_from={"compute_dtype": 2},
    key=("row", "dataset", "seed"),
    result=RESULT_COLUMNS,
    what="ledger",
    version_column="ledger_format",
)


#: The strict reader's errors (:mod:`.ledgerfile`), re-exported: both are ``UserError`` (one line, exit 2).
__all__ = ["Ledger", "LedgerMismatchError", "LedgerFormatError", "LedgerConflictError", "LEDGER_FORMAT", "COLUMNS",
           "COLUMNS_V1", "config_hash", "line_from_record", "expected_line", "merge_ledgers", "compute_dtype_of"]


#: The options hashed in every line (``finetune.RESULT_KEYS`` when the ledger was introduced). Options
#: added to ``RESULT_KEYS`` later enter the hash only when set, so adding an option to the library
#: never changes the hash of lines computed without it.
HASH_KEYS = (
    "dataset", "domain", "gnn_type", "num_layer", "emb_dim", "JK", "graph_pooling", "dropout",
    "epochs", "batch_size", "lr", "decay", "split", "split_seed", "featurizer", "input_model_sha256",
)


def config_hash(recorded_config: dict[str, Any]) -> str:
    """Short hash of every option that changes a seed's result (``RESULT_KEYS`` of :mod:`gnnpretrain.train.run.config`)."""
    from gnnpretrain.train.run.config import RESULT_KEY_DEFAULTS, RESULT_KEYS

    spec = {k: recorded_config.get(k) for k in HASH_KEYS}
    # later keys enter only when set to something other than their old-file default (None, or
    # finetune.RESULT_KEY_DEFAULTS: amp=False), so fp32 lines keep the hash they always had
    spec.update({k: recorded_config[k] for k in RESULT_KEYS
                 if k not in HASH_KEYS and recorded_config.get(k) not in (None, RESULT_KEY_DEFAULTS.get(k))})
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


_FLOAT_KEYS = ("lr", "decay", "dropout")


def _s(v: Any) -> str:
    """One text form per value, used both when writing and when comparing."""
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def line_from_record(
    record: dict[str, Any],
    *,
    experiment: str,
    row: str,
    baseline: str | None,
    checkpoint: str | None,
    runtime: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The ledger line of one finished seed record (:func:`gnnpretrain.train.run.records.make_record`).

    ``runtime`` is :func:`gnnpretrain.utils.runtime_info` taken in the process that trained; without
    it the record's own ``runtime`` (if any) is used, else only its torch version is known.
    ``compute_dtype`` and ``cpu_capability`` are recorded beside the runtime but never hashed: they
    explain differences in the last digits, they do not make another configuration.
    """
    cfg = record["config"]
    rt = dict(runtime or record.get("runtime") or {"torch": record.get("torch_version")})
    cpu_capability = rt.get("cpu_capability") or (record.get("runtime") or {}).get("cpu_capability")
    split = record.get("split") or {}
    line: dict[str, Any] = {
        "experiment": experiment, "row": row, "baseline": baseline or "",
        "checkpoint": _checkpoint_label(checkpoint),
        "dataset": record["dataset"], "seed": int(record["seed"]),
        "test_auc_best_valid": record["best_valid"]["test_auc"], "test_auc_last": record["last"]["test_auc"],
        "best_valid_auc": record["best_valid"]["valid_auc"], "best_epoch": record["best_valid"]["epoch"],
        "n_train": split.get("train"), "n_valid": split.get("valid"), "n_test": split.get("test"),
        "wall_time_s": record.get("wall_time_s"), "device": record.get("device") or rt.get("device"),
        "torch_threads": rt.get("torch_threads"),
        "compute_dtype": compute_dtype_of(record), "cpu_capability": cpu_capability,
        **{k: rt.get(k) for k in VERSION_KEYS},
        "gnn_type": cfg["gnn_type"], "num_layer": cfg["num_layer"], "emb_dim": cfg["emb_dim"],
        "checkpoint_sha256": cfg.get("input_model_sha256"),
        **_protocol(cfg),
        "config_hash": config_hash(cfg),
        "ledger_format": LEDGER_FORMAT,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return {k: _s(line[k]) for k in COLUMNS}


def compute_dtype_of(record: dict[str, Any]) -> str:
    """The dtype a seed's matrix products ran in: the record's ``compute_dtype`` when it has one, else
    ``bfloat16`` for a bf16-autocast (``amp``) run and ``float32`` otherwise (files without ``amp``)."""
    if record.get("compute_dtype"):
        return str(record["compute_dtype"])
    return "bfloat16" if (record.get("config") or {}).get("amp") else "float32"


def _checkpoint_label(checkpoint: str | None) -> str:
    """A readable name for the encoder file: its stem (``gcn_supervised_contextpred``), or for a
    run folder's ``model.pth`` the folder (``attrmasking-1a2b3c4d``); the SHA-256 is the identity."""
    if not checkpoint:
        return ""
    p = Path(checkpoint)
    return p.parent.name if p.stem == "model" else p.stem


def _protocol(cfg: dict[str, Any]) -> dict[str, Any]:
    # 0 and 0.0 are the same learning-rate decay: compare floats as floats
    return {k: float(cfg[k]) if k in _FLOAT_KEYS else cfg[k] for k in PROTOCOL_KEYS}


def expected_line(recorded_config: dict[str, Any], row: str) -> dict[str, str]:
    """The configuration columns a line of ``row`` computed with ``recorded_config`` will carry."""
    d = _protocol(recorded_config)
    d.update(gnn_type=recorded_config["gnn_type"], num_layer=recorded_config["num_layer"],
             emb_dim=recorded_config["emb_dim"], checkpoint_sha256=recorded_config.get("input_model_sha256"))
    out = {k: _s(v) for k, v in d.items()}
    out.update(row=row, dataset=str(recorded_config["dataset"]), config_hash=config_hash(recorded_config))
    return out


def _key(line: dict[str, str]) -> tuple[str, str, str]:
    seed = str(line["seed"])
    return line["row"], line["dataset"], str(int(seed)) if seed.lstrip("-").isdigit() else seed


def _canon(column: str, text: str) -> Any:
    """A column's value for comparison (``0.001`` and ``1e-3`` are one learning rate)."""
    kind = SCHEMA.kinds.get(column)
    if kind in ("float", "int", "count") and text != "":
        try:
            return float(text) if kind == "float" else int(text)
        except ValueError:
            return text
    return text


def _differs(columns: Sequence[str], a: dict[str, str], b: dict[str, str]) -> list[str]:
    return [k for k in columns if _canon(k, a[k]) != _canon(k, b[k])]


def _check_consistent(lines: Sequence[SourcedLine]) -> None:
    """The rules appends enforce, checked on lines as read: one protocol, one encoder per row name."""
    if not lines:
        return
    ref = lines[0]
    by_row: dict[str, SourcedLine] = {}
    for ln in lines:
        diffs = _differs(PROTOCOL_KEYS, ref.values, ln.values)
        if diffs:
            shown = "; ".join(f"{k}: {ref.values[k]!r} vs {ln.values[k]!r}" for k in diffs)
            raise LedgerMismatchError(
                f"{ln.where}: another fine-tuning protocol than {ref.where} ({shown}); one ledger is one "
                "experiment: move such lines to a ledger of their own"
            )
        row_ref = by_row.setdefault(ln.values["row"], ln)
        rdiffs = _differs(ROW_KEYS, row_ref.values, ln.values)
        if rdiffs:
            shown = "; ".join(f"{k}: {row_ref.values[k]!r} vs {ln.values[k]!r}" for k in rdiffs)
            raise LedgerMismatchError(
                f"{ln.where}: row {ln.values['row']!r} has another encoder than on {row_ref.where} ({shown}); "
                "give the re-trained encoder a row name of its own"
            )


def _read_checked(path: Path, warn: bool = True) -> tuple[int, list[SourcedLine]]:
    """``(format, lines)``: values checked, repeats collapsed, conflicts and mixed protocols refused."""
    fmt, lines = parse_lines(SCHEMA, path)
    kept = collapse(SCHEMA, lines, warn=warn)
    _check_consistent(kept)
    return fmt, kept


def _check_new(lines: Sequence[dict[str, str]], path: Path) -> None:
    """Lines about to be written must read back: the same value checks as reading (a NaN score or
    an empty hash would make the whole ledger unreadable afterwards)."""
    from gnnpretrain.train.compare.ledgerfile import parse_value

    for line in lines:
        where = f"new line {'/'.join(_key(line))} for {path}"
        for j, c in enumerate(COLUMNS, start=1):
            parse_value(SCHEMA, c, line.get(c, ""), where, j, LEDGER_FORMAT)


class Ledger:
    """One experiment's CSV ledger (module docstring): read, check, skip, append."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")

    # ------------------------------------------------------------------------------- reading
    def read(self) -> list[dict[str, str]]:
        """All lines (as text, format-2 columns); ``[]`` if the file does not exist yet.

        Read strictly (module docstring): a malformed value, two different results for one cell, or
        lines of two protocols are one-line errors; a result recorded twice counts once (one warning).
        """
        return [ln.values for ln in _read_checked(self.path)[1]]

    def format(self) -> int:
        """The file's format number (:data:`LEDGER_FORMAT` for a file not written yet)."""
        return parse_lines(SCHEMA, self.path)[0]

    # ------------------------------------------------------------------------------ checking
    def check(self, new: Iterable[dict[str, str]], existing: Sequence[dict[str, str]] | None = None) -> None:
        """Raise :class:`LedgerMismatchError` if any of ``new`` mixes configurations with the ledger.

        ``new`` may be full lines or :func:`expected_line` dicts (only their config columns are read).
        """
        existing = self.read() if existing is None else existing
        problems: list[str] = []
        ref = existing[0] if existing else None
        by_row: dict[str, dict[str, str]] = {}
        by_key: dict[tuple[str, str, str], dict[str, str]] = {}
        for line in existing:
            by_row.setdefault(line["row"], line)
            by_key[_key(line)] = line
        for line in new:
            if ref is None:
                ref = line
            diffs = [f"{k}: ledger has {ref[k]!r}, now {line[k]!r}" for k in _differs(PROTOCOL_KEYS, ref, line)]
            if diffs:
                problems.append("the fine-tuning protocol differs (" + "; ".join(diffs) + ")")
                break
            row_ref = by_row.setdefault(line["row"], line)
            rdiffs = [f"{k}: ledger has {row_ref[k]!r}, now {line[k]!r}" for k in _differs(ROW_KEYS, row_ref, line)]
            if rdiffs:
                problems.append(f"row {line['row']!r} has another encoder (" + "; ".join(rdiffs) + ")")
                continue
            if "seed" in line:
                old = by_key.get(_key(line))
                if old is not None and old["config_hash"] != line["config_hash"]:
                    problems.append(f"{'/'.join(_key(line))} is in the ledger with config {old['config_hash']}, "
                                    f"now {line['config_hash']}")
        if problems:
            uniq = list(dict.fromkeys(problems))
            raise LedgerMismatchError(
                f"{self.path} holds results of another configuration: {uniq[0]}"
                + (f" (and {len(uniq) - 1} more)" if len(uniq) > 1 else "")
                + ". One ledger is one experiment: pass another --ledger for the new configuration."
            )

    def done(self, lines: Sequence[dict[str, str]] | None = None) -> dict[tuple[str, str, str], str]:
        """``{(row, dataset, seed): config_hash}`` of the lines present."""
        lines = self.read() if lines is None else lines
        return {_key(line): line["config_hash"] for line in lines}

    # ------------------------------------------------------------------------------ appending
    def append(self, new: Sequence[dict[str, str]]) -> int:
        """Append ``new`` lines (checked; cells already present with the same hash are ignored).

        Under the ledger's lock, the file is re-read (strictly), checked and replaced atomically, so
        concurrent appenders and a kill at any moment leave either the old or the new file, never a
        cut line. A format-1 file is rewritten in format 2 with every old value unchanged. Returns the
        number of lines added.
        """
        from filelock import FileLock

        if not new:
            return 0
        _check_new(new, self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.lock_path), timeout=120):
            existing = [ln.values for ln in _read_checked(self.path)[1]]
            self.check(new, existing)
            have = self.done(existing)
            add = []
            for line in new:
                if _key(line) not in have:
                    add.append(line)
                    have[_key(line)] = line["config_hash"]
            if not add:
                return 0
            atomic_write_text(self.path, render(COLUMNS, [*existing, *add]))
        return len(add)


def merge_ledgers(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> dict[str, Any]:
    """Combine the ledgers of several machines into ``output`` (created, or grown if it exists).

    The same rules as reading and appending: every input is read strictly; a cell present in several
    inputs with the same result is kept once (one warning line naming file and line of each repeat);
    with different results it is refused naming both files and lines, and nothing is written; lines of
    another protocol, or another encoder under one row name, are refused likewise. The output is
    written atomically under its lock (``.<name>.lock``), so a comparison appending to it meanwhile
    loses nothing. Returns ``{"output", "lines", "added", "inputs": {path: lines}}``.
    """
    from filelock import FileLock

    from gnnpretrain.outputs import ensure_writable

    out = Ledger(output)
    sources = [Path(p) for p in inputs]
    if not sources:
        raise ValueError("merge: name at least one ledger to merge")
    for src in sources:
        if not src.is_file():
            raise FileNotFoundError(f"ledger to merge not found: {src}")
    ensure_writable(out.path.parent, what="ledger folder", option="--ledger")
    with FileLock(str(out.lock_path), timeout=120):
        _, present = _read_checked(out.path)
        lines = list(present)
        counts: dict[str, int] = {}
        for src in sources:
            if out.path.exists() and src.resolve() == out.path.resolve():
                counts[str(src)] = len(present)
                continue
            _, got = _read_checked(src)  # each input valid on its own first: errors name that file
            counts[str(src)] = len(got)
            lines += got
        kept = collapse(SCHEMA, lines)
        _check_consistent(kept)
        added = len(kept) - len(present)
        if added or not out.path.exists() or out.format() != LEDGER_FORMAT:
            atomic_write_text(out.path, render(COLUMNS, [ln.values for ln in kept]))
    return {"output": str(out.path), "lines": len(kept), "added": added, "inputs": counts}
