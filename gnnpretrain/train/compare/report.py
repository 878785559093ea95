"""Reporting a comparison: per-cell statistics, the Table-1 Markdown/CSV tables and the gain figure.

The pure functions (:func:`summarize_results`, :func:`markdown_table`, :func:`csv_table`,
:func:`gain_figure`) take plain per-seed values, so a table can be rebuilt from any source of
results; :func:`write_report` feeds them from a comparison's outputs.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

from gnnpretrain.stats import mean_std, negative_transfer
from gnnpretrain.train.compare.plan import REPORT_MODES, CompareConfig, Row
from gnnpretrain.utils import atomic_write_json, atomic_write_text

def summarize_results(
    results: dict[str, dict[str, list[float]]],
    baselines: dict[str, str],
    datasets: Sequence[str],
    alpha: float = 0.05,
) -> list[dict]:
    """Per-cell statistics for one report mode: ``results[row][dataset] = [test AUC per seed]``.

    ``baselines[row]`` names the no-pre-training row it is tested against (absent for baselines).
    Returns one dict per (row, dataset) plus one per row with dataset ``"avg"`` (mean of the
    per-dataset means; std = mean of the per-dataset stds, as the paper's average column has none).
    """
    cells: list[dict] = []
    for row, per_ds in results.items():
        means, stds, diffs = [], [], []
        for ds in datasets:
            vals = per_ds.get(ds, [])
            mean, std, n = mean_std(vals)
            cell = {"row": row, "dataset": ds, "mean": mean, "std": std, "n": n, "values": list(vals),
                    "baseline": baselines.get(row), "diff": math.nan, "p_value": math.nan, "marker": ""}
            base = baselines.get(row)
            base_vals = results.get(base, {}).get(ds, []) if base else []
            if base and vals and base_vals:
                t = negative_transfer(vals, base_vals, alpha)
                cell.update(diff=t.diff, p_value=t.p_value, marker=t.marker, se=t.se)
                diffs.append(t.diff)
            cells.append(cell)
            means.append(mean)
            stds.append(std)
        complete = all(not math.isnan(m) for m in means)
        cells.append({
            "row": row, "dataset": "avg", "mean": float(sum(means) / len(means)) if complete else math.nan,
            "std": float(sum(stds) / len(stds)) if complete else math.nan, "n": len(means),
            "baseline": baselines.get(row),
            "diff": float(sum(diffs) / len(diffs)) if diffs and len(diffs) == len(means) else math.nan,
            "p_value": math.nan, "marker": "",
        })
    return cells


def _fmt_cell(c: dict, n_max: int = 0) -> str:
    if c["n"] == 0 or math.isnan(c["mean"]):
        return "—"
    s = f"{100 * c['mean']:.1f} ± {100 * c['std']:.1f}"
    if c["dataset"] == "avg":
        s = f"{100 * c['mean']:.1f}"
    if c["marker"]:
        s += f" {c['marker']}"
    if c["dataset"] != "avg" and c["n"] < n_max:  # a partly finished table says how many seeds each cell has
        s += f" (n={c['n']})"
    return s


def markdown_table(cells: Sequence[dict], rows: Sequence[str], datasets: Sequence[str], report: str, alpha: float) -> str:
    """The paper's Table 1 layout: rows = strategies, columns = data sets + average."""
    by = {(c["row"], c["dataset"]): c for c in cells}
    cols = list(datasets) + ["avg"]
    n_max = max([c["n"] for c in cells if c["dataset"] != "avg"] or [0])
    lines = [
        f"Test ROC-AUC (%), mean ± std over {n_max} seed{'s' * (n_max != 1)} (fewer where a cell says n=); "
        f"epoch reported: **{report}**. "
        f"↓ = below the no-pre-training row of the same architecture, significant (one-sided Welch "
        f"t-test, p < {alpha}); (↓) = below but not significant.",
        "",
        "| strategy | " + " | ".join(d.upper() if d != "avg" else "Avg" for d in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append(f"| {r} | " + " | ".join(_fmt_cell(by[(r, d)], n_max) if (r, d) in by else "—" for d in cols) + " |")
    neg = [c for c in cells if c["marker"]]
    if neg:
        lines += ["", "Cells below their baseline (diff in ROC-AUC points, one-sided Welch p):", ""]
        for c in neg:
            p = "n/a (too few seeds)" if math.isnan(c["p_value"]) else f"{c['p_value']:.3g}"
            lines.append(f"- {c['row']} on {c['dataset']}: {100 * c['diff']:+.1f} vs {c['baseline']}, p = {p} {c['marker']}")
    return "\n".join(lines) + "\n"


def csv_table(cells: Sequence[dict], report: str, alpha: float) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["report", "row", "dataset", "mean", "std", "n", "baseline", "diff", "p_value", "alpha", "marker", "values"])
    for c in cells:
        w.writerow([
            report, c["row"], c["dataset"], _num(c["mean"]), _num(c["std"]), c["n"], c["baseline"] or "",
            _num(c["diff"]), _num(c["p_value"]), alpha, c["marker"], ";".join(f"{v:.6f}" for v in c.get("values", [])),
        ])
    return buf.getvalue()


def _num(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6f}"


def gain_figure(cells: Sequence[dict], rows: Sequence[str], datasets: Sequence[str], path: Path, title: str) -> None:
    """Grouped bars: gain in test ROC-AUC points over the baseline, per data set and strategy.

    Error bars: standard error of the difference of means (Welch, ddof=1 per group).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(c["row"], c["dataset"]): c for c in cells}
    pre = [r for r in rows if any(not math.isnan(by.get((r, d), {}).get("diff", math.nan)) for d in datasets)]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(datasets) + 1.5), 3.6), dpi=100)
    width = 0.8 / max(1, len(pre))
    for j, r in enumerate(pre):
        xs, ys, es, colors = [], [], [], []
        for i, d in enumerate(datasets):
            c = by.get((r, d))
            if c is None or math.isnan(c["diff"]):
                continue
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(100 * c["diff"])
            se = c.get("se", math.nan)
            es.append(0.0 if se is None or math.isnan(se) else 100 * se)
        base = next((by[(r, d)]["baseline"] for d in datasets if (r, d) in by), None)
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=r if base in (None, "none") else f"{r} (vs {base})")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels([d.upper() for d in datasets])
    ax.set_ylabel("gain over no pre-training\n(ROC-AUC points)")
    ax.set_title(title, fontsize=9)
    if pre:
        ax.legend(fontsize=7, ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def gain_grid(cells: Sequence[dict], rows: Sequence[str], datasets: Sequence[str], path: Path, title: str) -> None:
    """Heat map of the gain over the baseline: one line per pre-trained row, one column per data set.

    Each square shows the difference in ROC-AUC points and its negative-transfer marker; the colour
    scale is symmetric around zero (red = worse than the baseline). For the architectures profile
    the lines are architecture x checkpoint, so the paper's claim (GAT hurt, GIN helped most) reads
    off the figure at a glance.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    by = {(c["row"], c["dataset"]): c for c in cells}
    cols = list(datasets) + ["avg"]
    pre = [r for r in rows if any(not math.isnan(by.get((r, d), {}).get("diff", math.nan)) for d in datasets)]
    grid = np.full((max(1, len(pre)), len(cols)), np.nan)
    for i, r in enumerate(pre):
        for j, d in enumerate(cols):
            c = by.get((r, d))
            if c is not None and not math.isnan(c["diff"]):
                grid[i, j] = 100 * c["diff"]
    lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    fig, ax = plt.subplots(figsize=(max(6.5, 0.9 * len(cols) + 4.0), 0.42 * len(pre) + 1.8), dpi=100)
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i, r in enumerate(pre):
        for j, d in enumerate(cols):
            if np.isfinite(grid[i, j]):
                mark = by[(r, d)].get("marker", "")
                dark = abs(grid[i, j]) > 0.6 * lim  # white text on the saturated colours
                ax.text(j, i, f"{grid[i, j]:+.1f}{mark}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([d.upper() if d != "avg" else "Avg" for d in cols], fontsize=8)
    ax.set_yticks(range(len(pre)))
    ax.set_yticklabels([f"{r} (vs {by[(r, cols[0])]['baseline'] if (r, cols[0]) in by else '?'})" for r in pre],
                       fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="gain (points)")
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


# ------------------------------------------------------------------------- from the ledger
#: Column order of the paper's Table 1; other data sets follow in order of appearance.
PAPER_DATASET_ORDER = ("bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace")
_LEDGER_KEY = {"best-valid": "test_auc_best_valid", "last": "test_auc_last"}


def results_from_ledger(
    lines: Sequence[dict[str, str]],
    rows: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Per-seed values of ledger lines, for :func:`write_tables`.

    Without ``rows``/``datasets`` every row and data set present is used: baselines (lines with no
    baseline) first, then pre-trained rows, each in order of first appearance; data sets in the
    paper's column order. Returns ``{"rows", "datasets", "baselines", "values": {mode: {row: {ds:
    [auc per seed, by seed]}}}, "seeds", "epochs"}``.
    """
    if rows is None:
        seen = list(dict.fromkeys(ln["row"] for ln in lines))
        base = {ln["row"] for ln in lines if not ln["baseline"]}
        rows = [r for r in seen if r in base] + [r for r in seen if r not in base]
    if datasets is None:
        present = list(dict.fromkeys(ln["dataset"] for ln in lines))
        datasets = [d for d in PAPER_DATASET_ORDER if d in present] + [d for d in present if d not in PAPER_DATASET_ORDER]
    keep = set(int(s) for s in seeds) if seeds is not None else None
    chosen = [ln for ln in lines if ln["row"] in set(rows) and ln["dataset"] in set(datasets)
              and (keep is None or int(ln["seed"]) in keep)]
    chosen.sort(key=lambda ln: int(ln["seed"]))
    values = {m: {r: {d: [] for d in datasets} for r in rows} for m in REPORT_MODES}
    baselines: dict[str, str] = {}
    for ln in chosen:
        for m in REPORT_MODES:
            values[m][ln["row"]][ln["dataset"]].append(float(ln[_LEDGER_KEY[m]]))
        if ln["baseline"]:
            baselines[ln["row"]] = ln["baseline"]
    return {
        "rows": list(rows), "datasets": list(datasets), "baselines": baselines, "values": values,
        "seeds": sorted({int(ln["seed"]) for ln in chosen}),
        "epochs": sorted({int(ln["epochs"]) for ln in chosen}),
    }


def write_tables(out: Path, res: dict[str, Any], report: str, alpha: float, title: str) -> dict[str, Any]:
    """``results_<mode>.md/.csv`` for both epoch rules, ``results.md/.csv`` + ``gain.png`` +
    ``gain_grid.png`` for the chosen one; returns ``{mode: cells}``."""
    tables: dict[str, Any] = {}
    names, datasets = res["rows"], res["datasets"]
    for mode in REPORT_MODES:
        cells = summarize_results(res["values"][mode], res["baselines"], datasets, alpha)
        md = markdown_table(cells, names, datasets, mode, alpha)
        atomic_write_text(out / f"results_{mode}.md", md)
        atomic_write_text(out / f"results_{mode}.csv", csv_table(cells, mode, alpha))
        tables[mode] = cells
        if mode == report:
            atomic_write_text(out / "results.md", md)
            atomic_write_text(out / "results.csv", csv_table(cells, mode, alpha))
            full = f"{title}\n({mode} epoch; bars: ±1 s.e. of the difference)"
            gain_figure(cells, names, datasets, out / "gain.png", full)
            gain_grid(cells, names, datasets, out / "gain_grid.png", f"{title}\n({mode} epoch; ↓ = significant)")
    return tables


def report_from_ledger(
    ledger: str | os.PathLike,
    out: str | os.PathLike,
    report: str = "best-valid",
    alpha: float = 0.05,
    rows: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Rebuild every table and figure of a comparison from its ledger file alone (no run folder)."""
    from gnnpretrain.train.compare.ledger import Ledger

    path = Path(ledger)
    if not path.is_file():
        raise FileNotFoundError(f"--ledger {path}: no such file (a ledger is written by a comparison run)")
    lines = Ledger(path).read()
    if not lines:
        raise ValueError(f"--ledger {path}: the ledger has no lines yet; run the comparison first")
    res = results_from_ledger(lines, rows, datasets)
    n = len(res["seeds"])
    title = (f"{lines[0]['domain']}: gain over no pre-training ({n} seed{'s' * (n != 1)}, "
             f"{'/'.join(map(str, res['epochs']))} fine-tuning epochs)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = write_tables(out, res, report, alpha, title)
    summary = {"ledger": str(path), "rows": res["rows"], "datasets": res["datasets"], "seeds": res["seeds"],
               "baselines": res["baselines"], "report": report, "alpha": alpha, "tables": tables}
    atomic_write_json(out / "report.json", summary)
    return summary


def write_report(config: CompareConfig, rows: Sequence[Row], checkpoints: dict[str, str | None],
                 lines: Sequence[dict[str, str]]) -> dict:
    """The comparison's tables from its ledger ``lines``, restricted to the configured rows, data
    sets and seeds (a ledger may hold more)."""
    names = [r.name for r in rows]
    res = results_from_ledger(lines, names, list(config.datasets), config.seeds)
    res["baselines"] = {r.name: r.baseline for r in rows if r.pretrained}
    title = (f"{config.domain}: gain over no pre-training ({len(config.seeds)} seeds, "
             f"{config.epochs} fine-tuning epochs)")
    report: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "rows": {r.name: {"gnn_type": r.gnn_type, "chain": list(r.chain), "checkpoint": checkpoints[r.name],
                          "baseline": res["baselines"].get(r.name)} for r in rows},
        "tables": write_tables(config.out_dir, res, config.report, config.alpha, title),
    }
    return report
