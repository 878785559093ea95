"""Strategy comparison: pre-train what is missing, fine-tune every (row, dataset, seed), report.

The comparison is a small job graph, every node of which leaves a file behind, so a killed run
resumes where it stopped and a finished one re-runs in seconds:

1. **pre-training** (one job per strategy, chains in order): ``scripts/pretrain.py`` as a subprocess
   into ``<out>/pretrain/<name>-<hash>/`` (``--resume``, so an interrupted pre-training continues);
   a ``done.json`` marker is written when it returns successfully. ``a+b`` pre-trains ``a``, then
   ``b`` starting from ``a``'s ``model.pth``. The hash covers every pre-training option, so another
   profile never reuses a checkpoint made with different settings.
2. **fine-tuning** (independent, ``jobs`` processes, one torch thread each):
   :func:`gnnpretrain.train.finetune.run_seed` writes ``<out>/finetune/<row>/<dataset>/seed<k>.json``
   atomically; finished files with a matching configuration are skipped (checked up front, so a
   complete comparison starts no process at all).
3. **report**: the table of the paper's Table 1 shape (rows = strategies, columns = data sets +
   average, test ROC-AUC mean ± std over seeds, report mode named) as Markdown and CSV, the
   negative-transfer marks (:mod:`gnnpretrain.stats`) and a gain-over-baseline figure.

Row names (``--strategies``):

* ``none`` — no pre-training (GIN, or the ``--gnn-type``); ``none:gcn`` — no pre-training, GCN;
* a strategy name (``contextpred``, ``attrmasking``, ``edgepred``, ``infomax``, ``supervised``);
* ``a+b`` — ``a`` then ``b`` (the paper's "graph-level supervised after node-level" rows);
* ``ref:<file stem>`` — a published checkpoint of the paper from the reference-checkpoint folder,
  e.g. ``ref:gcn_supervised_contextpred`` (architecture = the stem's first word); its baseline is
  ``none:<arch>``, added automatically;
* any name given a file with ``--checkpoint NAME=PATH`` (architecture taken from a leading
  ``gcn_``/``gat_``/``graphsage_``/``gin_`` in the name, else ``--gnn-type``).

Every pre-trained row is compared against the no-pre-training row *of the same architecture*.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from gnnpretrain.paths import data_root
from gnnpretrain.stats import mean_std, negative_transfer
from gnnpretrain.utils import atomic_write_json, atomic_write_text, parse_seeds

_REPO = Path(__file__).resolve().parents[2]
GNN_TYPES = ("gin", "gcn", "graphsage", "gat")
REPORT_MODES = ("best-valid", "last")
_RECORD_KEY = {"best-valid": "best_valid", "last": "last"}

#: Each profile fixes defaults; explicit command-line flags override them.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "strategies": ["none", "attrmasking", "contextpred", "supervised", "contextpred+supervised"],
        "datasets": ["bbbp", "bace"],
        "seeds": [0, 1, 2],
        "epochs": 5,
        "emb_dim": 64,  # our own rows only; reference rows and their baselines stay 5 x 300
        "pretrain_epochs": 1,
        "max_molecules": 10000,
        "supervised_max_molecules": 10000,
        "reference_checkpoints": ["gcn_supervised_contextpred"],
    },
    "paper": {
        "strategies": [
            "none", "infomax", "edgepred", "attrmasking", "contextpred", "supervised",
            "infomax+supervised", "edgepred+supervised", "attrmasking+supervised", "contextpred+supervised",
        ],
        "datasets": ["bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace"],
        "seeds": list(range(10)),
        "epochs": 100,
        "emb_dim": 300,
        "pretrain_epochs": 100,
        "max_molecules": None,
        "supervised_max_molecules": None,
        "reference_checkpoints": [
            "gcn_supervised_contextpred", "graphsage_supervised_contextpred", "gat_supervised_contextpred",
        ],
    },
}


@dataclass
class CompareConfig:
    """Everything a comparison needs; :func:`config_from_profile` fills it from a profile."""

    strategies: list[str]
    datasets: list[str]
    seeds: list[int]
    epochs: int = 100
    pretrain_epochs: int = 100
    max_molecules: int | None = None
    supervised_max_molecules: int | None = None
    pretrain_dataset: str | None = None  # corpus of the node-level strategies (default: the script's, ZINC)
    reference_checkpoints: list[str] = field(default_factory=list)
    checkpoints: dict[str, str] = field(default_factory=dict)
    domain: str = "chem"
    gnn_type: str = "gin"
    output: str | None = None
    data_root: str | None = None
    cache: str | None = None
    reference_dir: str | None = None
    jobs: int = 1
    report: str = "best-valid"
    alpha: float = 0.05
    pretrain_batch_size: int = 256
    batch_size: int = 32
    num_layer: int = 5
    emb_dim: int = 300
    device: str = "cpu"
    profile: str | None = None

    def __post_init__(self) -> None:
        self.seeds = parse_seeds(self.seeds)
        if not self.strategies:
            raise ValueError("no strategies given: pass --strategies none,contextpred,...")
        if not self.datasets:
            raise ValueError("no datasets given: pass --datasets bbbp,bace,...")
        if self.report not in REPORT_MODES:
            raise ValueError(f"report must be one of {REPORT_MODES}, got {self.report!r}")
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        if self.gnn_type not in GNN_TYPES:
            raise ValueError(f"gnn_type must be one of {GNN_TYPES}, got {self.gnn_type!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        for key in ("epochs", "pretrain_epochs"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")

    @property
    def out_dir(self) -> Path:
        if self.output:
            return Path(self.output)
        return _REPO / self.domain / "runs" / "compare" / (self.profile or "custom")

    @property
    def ref_dir(self) -> Path:
        if self.reference_dir:
            return Path(self.reference_dir)
        return data_root(self.data_root).parent / "reference-checkpoints" / self.domain


def config_from_profile(profile: str | None, **overrides: Any) -> CompareConfig:
    """Profile defaults, then every override that is not ``None``."""
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    base = dict(PROFILES[profile]) if profile else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    base["profile"] = profile
    missing = [k for k in ("strategies", "datasets", "seeds") if k not in base]
    if missing:
        raise ValueError(f"without --profile, give {', '.join('--' + m for m in missing)}")
    return CompareConfig(**base)


# ------------------------------------------------------------------------------------------ rows
@dataclass(frozen=True)
class Row:
    """One table row: how to get its encoder (nothing, a chain of strategies, or a file)."""

    name: str
    gnn_type: str
    chain: tuple[str, ...] = ()  # pre-training strategies in order; empty for none / given files
    checkpoint: str | None = None  # a given file (reference or --checkpoint)
    paper_size: bool = False  # the reference checkpoints (and their baselines) are 5 layers x 300

    @property
    def pretrained(self) -> bool:
        return bool(self.chain) or self.checkpoint is not None

    @property
    def baseline(self) -> str:
        if self.paper_size:
            return f"none:{self.gnn_type}"
        return "none" if self.gnn_type == "gin" else f"none:{self.gnn_type}"

    def dims(self, config: "CompareConfig") -> tuple[int, int]:
        """(num_layer, emb_dim): the paper's 5 x 300 for reference rows, else the configured size."""
        return (5, 300) if self.paper_size else (config.num_layer, config.emb_dim)

    @property
    def dirname(self) -> str:
        return self.name.replace(":", "__").replace("/", "_")


def _arch_from_name(name: str, default: str) -> str:
    head = name.split("_", 1)[0].lower()
    return head if head in GNN_TYPES else default


def build_rows(config: CompareConfig) -> list[Row]:
    """Parse the row names (module docstring) and add the baselines every pre-trained row needs."""
    import importlib

    from gnnpretrain.strategies import strategy_names

    if config.domain != "chem":  # other domains register their strategies on import
        try:
            importlib.import_module(f"gnnpretrain.{config.domain}.strategies")
        except ModuleNotFoundError as err:
            if err.name != f"gnnpretrain.{config.domain}.strategies":
                raise
    known = set(strategy_names(config.domain))
    names = list(config.strategies) + [f"ref:{r}" for r in config.reference_checkpoints]
    names += [n for n in config.checkpoints if n not in names]
    rows: list[Row] = []
    for name in dict.fromkeys(names):  # keep order, drop repeats
        if name in config.checkpoints:
            path = Path(config.checkpoints[name])
            if not path.is_file():
                raise FileNotFoundError(f"--checkpoint {name}={path}: no such file")
            rows.append(Row(name, _arch_from_name(name, config.gnn_type), checkpoint=str(path)))
        elif name == "none":
            rows.append(Row(name, config.gnn_type))
        elif name.startswith("none:"):
            arch = name.split(":", 1)[1]
            if arch not in GNN_TYPES:
                raise ValueError(f"row {name!r}: unknown architecture {arch!r}; expected none:<{'|'.join(GNN_TYPES)}>")
            rows.append(Row(name, arch, paper_size=bool(config.reference_checkpoints) and arch != config.gnn_type))
        elif name.startswith("ref:"):
            stem = name.split(":", 1)[1]
            path = config.ref_dir / f"{stem}.pth"
            if not path.is_file():
                avail = sorted(p.stem for p in config.ref_dir.glob("*.pth")) if config.ref_dir.is_dir() else []
                raise FileNotFoundError(
                    f"row {name!r}: reference checkpoint {path} not found; available in {config.ref_dir}: "
                    f"{avail or 'none'} (set --reference-dir)"
                )
            rows.append(Row(name, _arch_from_name(stem, config.gnn_type), checkpoint=str(path), paper_size=True))
        else:
            chain = tuple(name.split("+"))
            bad = [s for s in chain if s not in known]
            if bad:
                raise ValueError(
                    f"row {name!r}: unknown strategy {bad[0]!r}; choose from none, none:<arch>, ref:<stem>, "
                    f"{', '.join(sorted(known))}, 'a+b' chains, or a --checkpoint NAME=PATH"
                )
            rows.append(Row(name, config.gnn_type, chain=chain))
    have = {r.name for r in rows}
    for r in list(rows):
        if r.pretrained and r.baseline not in have:
            rows.append(Row(r.baseline, r.gnn_type, paper_size=r.paper_size))
            have.add(r.baseline)
    # baselines first, like the paper's table
    return sorted(rows, key=lambda r: (r.pretrained, [x.name for x in rows].index(r.name)))


# ------------------------------------------------------------------------------------ pre-training
def _pretrain_args(config: CompareConfig, strategy: str, gnn_type: str) -> list[str]:
    max_mol = config.supervised_max_molecules if strategy == "supervised" else config.max_molecules
    args = [
        "--strategy", strategy, "--domain", config.domain, "--gnn-type", gnn_type,
        "--num-layer", str(config.num_layer), "--emb-dim", str(config.emb_dim),
        "--epochs", str(config.pretrain_epochs), "--batch-size", str(config.pretrain_batch_size),
        "--device", config.device,
    ]
    if max_mol:
        args += ["--max-molecules", str(max_mol)]
    if config.pretrain_dataset and strategy != "supervised":
        args += ["--dataset", str(config.pretrain_dataset)]
    if config.data_root:
        args += ["--data-root", str(config.data_root)]
    if config.cache:
        args += ["--cache", str(config.cache)]
    return args


def pretrain_dir(config: CompareConfig, chain: Sequence[str], gnn_type: str) -> Path:
    """Run directory of the chain's last step; the hash covers the options of every step."""
    spec = [_pretrain_args(config, s, gnn_type) for s in chain]
    digest = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:8]
    return config.out_dir / "pretrain" / f"{'+'.join(chain)}-{digest}"


def ensure_pretrained(
    config: CompareConfig, chain: Sequence[str], gnn_type: str, log: Callable[[str], None] = print
) -> Path:
    """``model.pth`` of the chain, pre-training each missing step (in order) as a subprocess."""
    previous: Path | None = None
    for i in range(1, len(chain) + 1):
        run = pretrain_dir(config, chain[:i], gnn_type)
        model = run / "model.pth"
        done = run / "done.json"
        if not (done.is_file() and model.is_file()):
            args = _pretrain_args(config, chain[i - 1], gnn_type) + ["--output", str(run), "--resume", "--no-progress"]
            if previous is not None:
                args += ["--input-model-file", str(previous)]
            cmd = [sys.executable, str(_REPO / "scripts" / "pretrain.py"), *args]
            log(f"pre-training {'+'.join(chain[:i])}: {' '.join(cmd[1:])}")
            t0 = time.time()
            proc = subprocess.run(cmd, cwd=str(_REPO), capture_output=True, text=True)
            if proc.returncode != 0 or not model.is_file():
                tail = (proc.stdout + proc.stderr)[-3000:]
                raise RuntimeError(
                    f"pre-training {'+'.join(chain[:i])} failed (exit {proc.returncode}); command:\n  "
                    f"{' '.join(cmd)}\n--- output tail ---\n{tail}"
                )
            atomic_write_json(done, {"command": cmd[1:], "wall_time_s": round(time.time() - t0, 1)})
        previous = model
    assert previous is not None
    return previous


# ------------------------------------------------------------------------------------ fine-tuning
def finetune_config(config: CompareConfig, row: Row, dataset: str, checkpoint: str | None):
    from gnnpretrain.train.finetune import FinetuneConfig

    num_layer, emb_dim = row.dims(config)
    return FinetuneConfig(
        dataset=dataset, domain=config.domain, input_model_file=checkpoint, gnn_type=row.gnn_type,
        num_layer=num_layer, emb_dim=emb_dim, epochs=config.epochs, batch_size=config.batch_size,
        seeds=config.seeds, data_root=config.data_root, cache=config.cache,
        output=str(config.out_dir / "finetune" / row.dirname), name=row.dirname, device=config.device,
        report=config.report, progress=False,
    )


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run_one(ft_config, seed: int) -> dict:
    from gnnpretrain.train.finetune import run_seed

    rec = run_seed(ft_config, seed)
    return {"dataset": rec["dataset"], "seed": rec["seed"], "skipped": rec["skipped"], "wall_time_s": rec["wall_time_s"]}


def plan_finetunes(config: CompareConfig, rows: Sequence[Row], checkpoints: dict[str, str | None]) -> tuple[list, int]:
    """``([(row, ft_config, seed), ...] still to run, number already finished)``."""
    from gnnpretrain.train.finetune import load_finished

    todo, done = [], 0
    for row in rows:
        for ds in config.datasets:
            ftc = finetune_config(config, row, ds, checkpoints[row.name])
            for seed in config.seeds:
                if load_finished(ftc, seed) is not None:
                    done += 1
                else:
                    todo.append((row, ftc, seed))
    return todo, done


def run_comparison(config: CompareConfig, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the whole comparison and write the report; returns the report dict."""
    t0 = time.time()
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    rows = build_rows(config)
    checkpoints: dict[str, str | None] = {}
    for row in rows:
        if row.checkpoint:
            checkpoints[row.name] = row.checkpoint
        elif row.chain:
            checkpoints[row.name] = str(ensure_pretrained(config, row.chain, row.gnn_type, log))
        else:
            checkpoints[row.name] = None
    todo, done = plan_finetunes(config, rows, checkpoints)
    log(f"fine-tuning: {done} runs already finished, {len(todo)} to run with {config.jobs} process(es)")
    if todo:
        if config.jobs == 1:
            _worker_init_threads_main()
            for i, (row, ftc, seed) in enumerate(todo, 1):
                r = _run_one(ftc, seed)
                log(f"[{i}/{len(todo)}] {row.name} {r['dataset']} seed {seed}: {r['wall_time_s']:.0f} s")
        else:
            with ProcessPoolExecutor(max_workers=config.jobs, initializer=_worker_init) as pool:
                futs = {pool.submit(_run_one, ftc, seed): (row, ftc, seed) for row, ftc, seed in todo}
                for i, fut in enumerate(as_completed(futs), 1):
                    row, ftc, seed = futs[fut]
                    r = fut.result()
                    log(f"[{i}/{len(todo)}] {row.name} {r['dataset']} seed {seed}: {r['wall_time_s']:.0f} s")
    report = write_report(config, rows, checkpoints)
    report["wall_time_s"] = round(time.time() - t0, 1)
    report["ran"] = len(todo)
    atomic_write_json(out / "report.json", report)
    return report


def _worker_init_threads_main() -> None:
    """In-process runs (``jobs == 1``) keep the caller's thread count: nothing else competes."""


# ------------------------------------------------------------------------------------------ report
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
