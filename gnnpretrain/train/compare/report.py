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
from gnnpretrain.train.compare.plan import REPORT_MODES, _RECORD_KEY, CompareConfig, Row, finetune_config
from gnnpretrain.utils import atomic_write_text

def collect(config: CompareConfig, rows: Sequence[Row], checkpoints: dict[str, str | None]) -> dict:
    """``{row: {dataset: {mode: [test_auc per seed]}}}`` read from the seed files."""
    from gnnpretrain.train.finetune import load_finished

    res: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in rows:
        for ds in config.datasets:
            ftc = finetune_config(config, row, ds, checkpoints[row.name])
            vals = {m: [] for m in REPORT_MODES}
            for seed in config.seeds:
                rec = load_finished(ftc, seed)
                if rec is None:
                    continue
                for m in REPORT_MODES:
                    vals[m].append(float(rec[_RECORD_KEY[m]]["test_auc"]))
            res.setdefault(row.name, {})[ds] = vals
    return res


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


def _fmt_cell(c: dict) -> str:
    if c["n"] == 0 or math.isnan(c["mean"]):
        return "—"
    s = f"{100 * c['mean']:.1f} ± {100 * c['std']:.1f}"
    if c["dataset"] == "avg":
        s = f"{100 * c['mean']:.1f}"
    if c["marker"]:
        s += f" {c['marker']}"
    return s


def markdown_table(cells: Sequence[dict], rows: Sequence[str], datasets: Sequence[str], report: str, alpha: float) -> str:
    """The paper's Table 1 layout: rows = strategies, columns = data sets + average."""
    by = {(c["row"], c["dataset"]): c for c in cells}
    cols = list(datasets) + ["avg"]
    lines = [
        f"Test ROC-AUC (%), mean ± std over seeds; epoch reported: **{report}**. "
        f"↓ = below the no-pre-training row of the same architecture, significant (one-sided Welch "
        f"t-test, p < {alpha}); (↓) = below but not significant.",
        "",
        "| strategy | " + " | ".join(d.upper() if d != "avg" else "Avg" for d in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append(f"| {r} | " + " | ".join(_fmt_cell(by[(r, d)]) if (r, d) in by else "—" for d in cols) + " |")
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
    ax.legend(fontsize=7, ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(config: CompareConfig, rows: Sequence[Row], checkpoints: dict[str, str | None]) -> dict:
    """Write ``results_<mode>.md/.csv`` for both report modes and ``gain.png`` for the chosen one."""
    out = config.out_dir
    raw = collect(config, rows, checkpoints)
    baselines = {r.name: r.baseline for r in rows if r.pretrained}
    names = [r.name for r in rows]
    report: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "rows": {r.name: {"gnn_type": r.gnn_type, "chain": list(r.chain), "checkpoint": checkpoints[r.name],
                          "baseline": baselines.get(r.name)} for r in rows},
        "tables": {},
    }
    for mode in REPORT_MODES:
        per = {r: {d: raw[r][d][mode] for d in config.datasets} for r in names}
        cells = summarize_results(per, baselines, config.datasets, config.alpha)
        md = markdown_table(cells, names, config.datasets, mode, config.alpha)
        atomic_write_text(out / f"results_{mode}.md", md)
        atomic_write_text(out / f"results_{mode}.csv", csv_table(cells, mode, config.alpha))
        report["tables"][mode] = cells
        if mode == config.report:
            atomic_write_text(out / "results.md", md)
            atomic_write_text(out / "results.csv", csv_table(cells, mode, config.alpha))
            gain_figure(
                cells, names, config.datasets, out / "gain.png",
                f"{config.domain}: gain over no pre-training\n({mode} epoch, {len(config.seeds)} seeds, "
                f"{config.epochs} fine-tuning epochs; bars: ±1 s.e. of the difference)",
            )
    return report
