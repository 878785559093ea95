"""The MoleculeACE suite: does pre-training help on activity cliffs? (``scripts/compare.py --suite moleculeace``)

Regression on MoleculeACE targets (:mod:`gnnpretrain.chem.csvtask`: the benchmark's own train/test split,
a fixed 10 % of train as valid), scored by RMSE on all test molecules and on the test molecules that belong
to an activity cliff (``RMSE_cliff``), lower is better. Every pre-trained row is compared with the
from-scratch row of the same architecture.

Rows (``rows=``):

* ``none:<arch>`` — no pre-training (``gcn``, ``graphsage``, ``gat``, ``gin``);
* ``ref:<hub name>`` — a published checkpoint (:mod:`gnnpretrain.hub`, e.g. ``ref:gcn_supervised_contextpred``);
  its architecture comes from the registry;
* ``NAME=PATH`` — an encoder file of our own; its architecture comes from its metadata (the pre-training
  run's ``config.json``) or its weights (:func:`gnnpretrain.hub.load`), its baseline is ``none:<arch>``
  at the same width/depth.

Each (row, target, seed) is one :func:`gnnpretrain.train.separate.run_seed` call, so seed files, resume
and the configuration check are those of ``scripts/finetune.py``; runs go target by target (all rows and
seeds of a target before the next), so an interrupted suite leaves complete targets behind. One process,
one thread (the suite is sized for a shared CPU). The ledger (one CSV line per row × target × seed,
rebuilt from the seed files) goes to ``chem/results/moleculeace.csv`` by default; the report
(``results.md``, ``report.json``) to the output folder.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from gnnpretrain.paths import REPO_ROOT
from gnnpretrain.train.compare.ledgerfile import Schema, collapse, parse_lines
from gnnpretrain.utils import atomic_write_json, atomic_write_text, parse_seeds

__all__ = ["MoleculeACEConfig", "DEFAULT_TARGETS", "DEFAULT_ROWS", "suite_rows", "run_moleculeace", "moleculeace_report"]

# the five smallest targets (615-731 molecules): the compact CPU comparison
DEFAULT_TARGETS = ("CHEMBL2835_Ki", "CHEMBL2047_EC50", "CHEMBL1871_Ki", "CHEMBL4616_EC50", "CHEMBL4203_Ki")
DEFAULT_ROWS = ("none:gcn", "ref:gcn_supervised_contextpred", "none:graphsage", "ref:graphsage_supervised_contextpred")
LEDGER_FIELDS = (
    "row", "target", "seed", "gnn_type", "checkpoint", "epochs", "test_rmse_best_valid", "test_rmse_cliff_best_valid",
    "test_r2_best_valid", "best_epoch", "test_rmse_last", "test_rmse_cliff_last", "num_test", "num_cliff_test",
    "wall_time_s",
)


@dataclass
class MoleculeACEConfig:
    targets: Sequence[str] = DEFAULT_TARGETS
    rows: Sequence[str] = DEFAULT_ROWS
    seeds: Any = (0, 1, 2)
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    dropout: float = 0.5
    num_layer: int = 5  # scratch rows without a pre-trained twin; rows with a checkpoint use its size
    emb_dim: int = 300
    output: str | None = None
    ledger: str | None = None
    device: str = "cpu"
    data_root: str | None = None
    cache: str | None = None
    threads: int = 1
    checkpoints: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.seeds = parse_seeds(self.seeds)
        self.targets = [t[len("moleculeace:"):] if t.startswith("moleculeace:") else t for t in self.targets]
        self.rows = list(self.rows)
        from gnnpretrain.chem.csvtask import moleculeace_names

        known = moleculeace_names(self.data_root)
        missing = [t for t in self.targets if t not in known]
        if missing:
            raise ValueError(f"unknown MoleculeACE target(s) {missing}; available: {', '.join(known) or 'none (no data)'}")

    @property
    def out_dir(self) -> Path:
        return Path(self.output) if self.output else REPO_ROOT / "chem" / "runs" / "compare" / "moleculeace"

    @property
    def ledger_path(self) -> Path:
        return Path(self.ledger) if self.ledger else REPO_ROOT / "chem" / "results" / "moleculeace.csv"


@dataclass(frozen=True)
class SuiteRow:
    name: str
    gnn_type: str
    checkpoint: str | None  # a file path
    num_layer: int
    emb_dim: int
    baseline: str | None

    @property
    def dirname(self) -> str:
        return self.name.replace(":", "_").replace("/", "_")


def _arch_of(path: str) -> dict[str, Any]:
    from gnnpretrain import hub

    gnn = hub.load(path)
    return {"gnn_type": gnn.gnn_type, "num_layer": gnn.num_layer, "emb_dim": gnn.emb_dim}


def suite_rows(config: MoleculeACEConfig) -> list[SuiteRow]:
    """Resolve row names to architectures and checkpoint files; add missing ``none:<arch>`` baselines."""
    from gnnpretrain import hub

    rows: list[SuiteRow] = []
    specs = list(config.rows) + [f"{k}={v}" for k, v in config.checkpoints.items()]
    for spec in specs:
        if spec.startswith("none:"):
            rows.append(SuiteRow(spec, spec[5:], None, config.num_layer, config.emb_dim, None))
        elif spec.startswith("ref:"):
            entry = hub.get_entry(spec[4:])
            path = str(hub.resolve(entry.name, cache=config.cache))
            rows.append(SuiteRow(spec, entry.gnn_type, path, entry.num_layer, entry.emb_dim, f"none:{entry.gnn_type}"))
        elif "=" in spec:
            name, path = spec.split("=", 1)
            arch = _arch_of(path)
            base = f"none:{arch['gnn_type']}" + ("" if (arch["num_layer"], arch["emb_dim"]) == (config.num_layer, config.emb_dim)
                                                 else f"@{arch['num_layer']}x{arch['emb_dim']}")
            rows.append(SuiteRow(name, arch["gnn_type"], path, arch["num_layer"], arch["emb_dim"], base))
        else:
            raise ValueError(f"unknown suite row {spec!r}: use none:<arch>, ref:<hub name> or NAME=PATH")
    names = {r.name for r in rows}
    for r in list(rows):
        if r.baseline and r.baseline not in names:
            arch, _, size = r.baseline[5:].partition("@")
            rows.insert(0, SuiteRow(r.baseline, arch, None, r.num_layer, r.emb_dim, None))
            names.add(r.baseline)
    return rows


def _finetune_config(config: MoleculeACEConfig, row: SuiteRow, target: str):
    from gnnpretrain.train.run.config import FinetuneConfig

    return FinetuneConfig(
        dataset=f"moleculeace:{target}", input_model_file=row.checkpoint, gnn_type=row.gnn_type,
        num_layer=row.num_layer, emb_dim=row.emb_dim, dropout=config.dropout, epochs=config.epochs,
        batch_size=config.batch_size, lr=config.lr, seeds=config.seeds, data_root=config.data_root,
        cache=config.cache, output=str(config.out_dir / "finetune" / row.dirname), device=config.device,
        num_threads=config.threads, progress=False,
    )


def _line(row: SuiteRow, target: str, rec: dict) -> dict[str, Any]:
    bv, last = rec["best_valid"], rec["last"]
    return {
        "row": row.name, "target": target, "seed": rec["seed"], "gnn_type": row.gnn_type,
        "checkpoint": Path(row.checkpoint).name if row.checkpoint else "", "epochs": rec["config"]["epochs"],
        "test_rmse_best_valid": bv["test_rmse"], "test_rmse_cliff_best_valid": bv.get("test_score_cliff", math.nan),
        "test_r2_best_valid": bv["test_r2"], "best_epoch": bv["epoch"], "test_rmse_last": last["test_rmse"],
        "test_rmse_cliff_last": last.get("test_score_cliff", math.nan), "num_test": rec["split"]["test"],
        "num_cliff_test": (rec.get("test_subsets") or {}).get("cliff", 0), "wall_time_s": rec["wall_time_s"],
    }


def _write_ledger(path: Path, lines: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LEDGER_FIELDS, lineterminator="\n")
    w.writeheader()
    for line in sorted(lines, key=lambda r: (r["target"], r["row"], int(r["seed"]))):
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in line.items()})
    atomic_write_text(path, buf.getvalue())


def run_moleculeace(config: MoleculeACEConfig, log: Callable[[str], None] = print) -> dict:
    """Fine-tune every (row, target, seed) that has no finished seed file, then write ledger and report."""
    from gnnpretrain.train.run.data import load_task
    from gnnpretrain.train.separate import run_seed

    rows = suite_rows(config)
    t0 = time.time()
    lines, ran = [], 0
    total = len(rows) * len(config.targets) * len(config.seeds)
    for target in config.targets:
        task = None
        for seed in config.seeds:
            for row in rows:
                ft = _finetune_config(config, row, target)
                if task is None:
                    task = load_task(ft)  # one featurisation per target, shared by every row and seed
                rec = run_seed(ft, seed, task)
                ran += not rec.get("skipped")
                lines.append(_line(row, target, rec))
                _write_ledger(config.ledger_path, lines)  # after every seed: an interrupted suite keeps its lines
                took = " (done before)" if rec.get("skipped") else f" ({rec['wall_time_s']:.0f} s)"
                log(f"[{len(lines)}/{total}] {target} seed {seed} {row.name}: RMSE {rec['best_valid']['test_rmse']:.3f}, "
                    f"cliff {rec['best_valid'].get('test_score_cliff', math.nan):.3f}{took}")
    report = moleculeace_report(config.ledger_path, config.out_dir, baselines={r.name: r.baseline for r in rows})
    report.update({"ran": ran, "wall_time_s": round(time.time() - t0, 1), "ledger": str(config.ledger_path)})
    atomic_write_json(config.out_dir / "report.json", report)
    return report


# ---------------------------------------------------------------------------------------------- report
#: The suite ledger's columns and rules for the strict reader (:mod:`.ledgerfile`): a seed is an
#: integer, an RMSE a finite non-negative number (NaN only for RMSE_cliff of a target without cliff
#: molecules), one result per (row, target, seed).
LEDGER_SCHEMA = Schema(
    headers={1: LEDGER_FIELDS},
    kinds={"seed": "count", "epochs": "count", "best_epoch": "count", "num_test": "count", "num_cliff_test": "count",
           "test_rmse_best_valid": "nonneg", "test_rmse_last": "nonneg", "test_r2_best_valid": "float",
           "test_rmse_cliff_best_valid": "nonneg_or_nan", "test_rmse_cliff_last": "nonneg_or_nan",
           "wall_time_s": "nonneg"},
    required=frozenset({"row", "target", "seed", "gnn_type", "epochs", "test_rmse_best_valid", "test_r2_best_valid",
                        "best_epoch", "test_rmse_last", "test_rmse_cliff_best_valid", "test_rmse_cliff_last",
                        "num_test", "num_cliff_test"}),
    key=("row", "target", "seed"),
    result=("gnn_type", "checkpoint", "epochs", "test_rmse_best_valid", "test_rmse_cliff_best_valid",
            "test_r2_best_valid", "best_epoch", "test_rmse_last", "test_rmse_cliff_last", "num_test", "num_cliff_test"),
    what="MoleculeACE ledger",
)


def _read_ledger(path: Path) -> list[dict[str, str]]:
    """The suite ledger's lines, read strictly: malformed values name file, line and column; a result
    recorded twice counts once (one warning); two results for one cell are refused naming both lines."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"MoleculeACE ledger not found: {path}")
    _, lines = parse_lines(LEDGER_SCHEMA, path)
    return [ln.values for ln in collapse(LEDGER_SCHEMA, lines)]


def moleculeace_report(ledger: str | Path, out_dir: str | Path, baselines: dict[str, str | None] | None = None,
                       mode: str = "best_valid", alpha: float = 0.05) -> dict:
    """Table (rows × targets, RMSE and RMSE_cliff mean ± std over seeds, and their average over targets) plus,
    for each pre-trained row, the difference to its baseline and one-sided Welch p-values in both directions
    (``better``: pre-trained RMSE lower; ``worse``: higher = negative transfer). Writes ``results.md``."""
    from gnnpretrain.stats import mean_std, negative_transfer

    lines = _read_ledger(Path(ledger))
    rows = list(dict.fromkeys(r["row"] for r in lines))
    targets = list(dict.fromkeys(r["target"] for r in lines))
    if baselines is None:
        baselines = {r: (None if r.startswith("none:") else f"none:{next(x['gnn_type'] for x in lines if x['row'] == r)}")
                     for r in rows}
    vals: dict[tuple[str, str, str], dict[int, float]] = {}
    for r in lines:
        for metric in ("rmse", "rmse_cliff"):
            vals.setdefault((r["row"], r["target"], metric), {})[int(r["seed"])] = float(r[f"test_{metric}_{mode}"])
    cells = []
    for row in rows:
        for target in targets:
            for metric in ("rmse", "rmse_cliff"):
                v = vals.get((row, target, metric))
                if not v:
                    continue
                m, s, n = mean_std(list(v.values()))
                cell = {"row": row, "target": target, "metric": metric, "mean": m, "std": s, "n": n}
                base = baselines.get(row)
                bv = vals.get((base, target, metric)) if base else None
                if bv:
                    # RMSE: lower is better, so test the negated values with the higher-is-better helper
                    worse = negative_transfer([-x for x in v.values()], [-x for x in bv.values()], alpha)
                    better = negative_transfer(list(v.values()), list(bv.values()), alpha)
                    cell.update({"baseline": base, "diff": m - mean_std(list(bv.values()))[0],
                                 "p_worse": worse.p_value, "p_better": better.p_value})
                cells.append(cell)
    # averages over targets (per seed-mean), and how many targets each row improves
    summary = {}
    for row in rows:
        for metric in ("rmse", "rmse_cliff"):
            cs = [c for c in cells if c["row"] == row and c["metric"] == metric]
            if len(cs) == len(targets):
                entry = {"mean": sum(c["mean"] for c in cs) / len(cs)}
                if all("diff" in c for c in cs):
                    entry["diff"] = sum(c["diff"] for c in cs) / len(cs)
                    entry["targets_better"] = sum(c["diff"] < 0 for c in cs)
                    entry["targets_better_significant"] = sum(c["p_better"] < alpha for c in cs)
                    entry["targets_worse_significant"] = sum(c["p_worse"] < alpha for c in cs)
                summary[f"{row}|{metric}"] = entry
    md = _markdown(cells, summary, rows, targets, mode, alpha)
    out = Path(out_dir)
    atomic_write_text(out / "results.md", md)
    return {"rows": rows, "targets": targets, "mode": mode, "alpha": alpha, "cells": cells, "average": summary,
            "markdown": md}


def _markdown(cells, summary, rows, targets, mode, alpha) -> str:
    def cell(row, target, metric):
        c = next((c for c in cells if (c["row"], c["target"], c["metric"]) == (row, target, metric)), None)
        if c is None:
            return "—"
        s = f"{c['mean']:.3f} ± {c['std']:.3f}"
        if "diff" in c:
            mark = " ↓" if c["p_worse"] < alpha else (" ↑" if c["p_better"] < alpha else "")
            s += f" ({c['diff']:+.3f}{mark})"
        return s

    out = []
    for metric, title in (("rmse", "RMSE, all test molecules"), ("rmse_cliff", "RMSE, activity-cliff test molecules")):
        out.append(f"**{title}** (mean ± std over seeds, epoch of best validation RMSE; in brackets: difference to "
                   f"the same architecture without pre-training, ↑ significantly better / ↓ significantly worse, "
                   f"one-sided Welch, α = {alpha})\n")
        out.append("| row | " + " | ".join(targets) + " | average |")
        out.append("|---" * (len(targets) + 2) + "|")
        for row in rows:
            avg = summary.get(f"{row}|{metric}", {})
            a = f"{avg['mean']:.3f}" + (f" ({avg['diff']:+.3f}; better on {avg['targets_better']}/{len(targets)})"
                                        if "diff" in avg else "") if avg else "—"
            out.append(f"| {row} | " + " | ".join(cell(row, t, metric) for t in targets) + f" | {a} |")
        out.append("")
    return "\n".join(out)
