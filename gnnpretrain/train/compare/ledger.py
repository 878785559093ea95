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

Besides the config, each line records what changes floating-point results (device, torch threads,
library versions via :func:`gnnpretrain.utils.runtime_info`) and the split sizes (which depend on the
RDKit version), so numbers that disagree can be traced instead of averaged blindly.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from gnnpretrain.errors import UserError
from gnnpretrain.utils import atomic_write_text

LEDGER_FORMAT = 1

#: Options every line of one ledger shares (the experiment's fine-tuning protocol).
PROTOCOL_KEYS = (
    "domain", "epochs", "batch_size", "lr", "decay", "dropout", "JK", "graph_pooling",
    "split", "split_seed", "featurizer",
)
#: Options every line of one row name shares (which encoder the row fine-tunes).
ROW_KEYS = ("gnn_type", "num_layer", "emb_dim", "checkpoint_sha256")
#: Library versions copied from :func:`gnnpretrain.utils.runtime_info`.
VERSION_KEYS = ("gnnpretrain", "torch", "torch_geometric", "rdkit", "numpy", "scikit_learn", "python")

COLUMNS = (
    "experiment", "row", "baseline", "checkpoint", "dataset", "seed",
    "test_auc_best_valid", "test_auc_last", "best_valid_auc", "best_epoch",
    "n_train", "n_valid", "n_test", "wall_time_s", "device", "torch_threads",
    *VERSION_KEYS, *ROW_KEYS, *PROTOCOL_KEYS, "config_hash", "ledger_format", "finished_at",
)


class LedgerMismatchError(UserError, ValueError):
    """A line would mix configurations in one ledger (see the module docstring)."""


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
    """
    cfg = record["config"]
    rt = dict(runtime or record.get("runtime") or {"torch": record.get("torch_version")})
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
        **{k: rt.get(k) for k in VERSION_KEYS},
        "gnn_type": cfg["gnn_type"], "num_layer": cfg["num_layer"], "emb_dim": cfg["emb_dim"],
        "checkpoint_sha256": cfg.get("input_model_sha256"),
        **_protocol(cfg),
        "config_hash": config_hash(cfg),
        "ledger_format": LEDGER_FORMAT,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return {k: _s(line[k]) for k in COLUMNS}


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
    return line["row"], line["dataset"], str(line["seed"])


class Ledger:
    """One experiment's CSV ledger (module docstring): read, check, skip, append."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")

    # ------------------------------------------------------------------------------- reading
    def read(self) -> list[dict[str, str]]:
        """All lines (as text); ``[]`` if the file does not exist yet."""
        if not self.path.is_file():
            return []
        text = self.path.read_text()
        reader = csv.DictReader(io.StringIO(text))
        header = tuple(reader.fieldnames or ())
        if header != COLUMNS:
            missing = [c for c in COLUMNS if c not in header]
            extra = [c for c in header if c not in COLUMNS]
            raise LedgerMismatchError(
                f"{self.path}: not a ledger of this version (missing columns {missing or 'none'}, "
                f"unknown {extra or 'none'}); point --ledger at a new file"
            )
        lines = []
        for i, rec in enumerate(reader, start=2):
            if None in rec or any(v is None for v in rec.values()):
                raise LedgerMismatchError(
                    f"{self.path} line {i}: wrong number of fields (a cut or hand-edited line); "
                    "fix or delete that line"
                )
            lines.append(dict(rec))
        return lines

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
            diffs = [f"{k}: ledger has {ref[k]!r}, now {line[k]!r}" for k in PROTOCOL_KEYS if ref[k] != line[k]]
            if diffs:
                problems.append("the fine-tuning protocol differs (" + "; ".join(diffs) + ")")
                break
            row_ref = by_row.setdefault(line["row"], line)
            rdiffs = [f"{k}: ledger has {row_ref[k]!r}, now {line[k]!r}" for k in ROW_KEYS if row_ref[k] != line[k]]
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

        Under the ledger's lock, the file is re-read, checked and replaced atomically, so concurrent
        appenders and a kill at any moment leave either the old or the new file, never a cut line.
        Returns the number of lines added.
        """
        from filelock import FileLock

        if not new:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.lock_path), timeout=120):
            existing = self.read()
            self.check(new, existing)
            have = self.done(existing)
            add = []
            for line in new:
                if _key(line) not in have:
                    add.append(line)
                    have[_key(line)] = line["config_hash"]
            if not add:
                return 0
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
            w.writeheader()
            w.writerows(existing)
            w.writerows(add)
            atomic_write_text(self.path, buf.getvalue())
        return len(add)
