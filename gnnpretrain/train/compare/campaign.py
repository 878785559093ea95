"""The results campaign: the paper-protocol cells in a fixed order, run a time budget at a time.

Why a campaign: the paper's protocol is 10 seeds x 100 epochs per cell, a whole table row is
core-days of work, and every machine of this project has 2 cores and a few hours at a time. So the
cells are produced the way a lab with one small box produces them: a committed plan
(``chem/results/campaign.csv``: order, stage, data set, row, device), and a runner
(:func:`run_campaign`, ``scripts/campaign.py --hours H``) that takes the next unfinished cells,
fine-tunes them fused on one niced core, appends every finished seed to the committed ledger
(``chem/results/architectures.csv``) and stops cleanly at the budget. Cells accumulate across
sessions and machines; a GPU machine runs the same plan (``scripts/campaign_gpu.sh``).

A *cell* is one (data set, row) at 10 seeds. A *unit* is what one fused computation trains: the
consecutive unfinished cells of the plan with the same data set and architecture (a scratch row and
its published checkpoint fine-tune as one group). A unit too big for the budget left is cut to
fewer models (``fuse_max``) and the cut is remembered (``inflight.json`` in the campaign folder) so
that a later run resumes the same group from its state file instead of starting another; after that
group, the unit's other seeds are planned afresh for the budget then left (a cut made small by the
end of one budget does not keep the rest of the unit in small, slower groups).

The protocol is the ``architectures`` profile of :mod:`.plan` (paper protocol: scaffold split,
100 epochs, batch 32, Adam 1e-3, dropout 0.5, mean pooling, 5 x 300, fp32); the campaign adds only
the order and the budget, so its lines are ordinary ledger lines (same config hashes as
``compare.py --profile architectures`` would write).
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from gnnpretrain.errors import UserError
from gnnpretrain.paths import REPO_ROOT, cache_dir
from gnnpretrain.train.compare.ledger import Ledger
from gnnpretrain.train.compare.plan import CompareConfig, config_from_profile
from gnnpretrain.utils import atomic_write_json

PLAN_PATH = REPO_ROOT / "chem" / "results" / "campaign.csv"
EXPERIMENT = "architectures"
SEEDS = tuple(range(10))
#: Largest fused group on one CPU core (throughput per graph stops improving beyond it).
MAX_GROUP = 10

#: The paper's Table 1 "no pre-training" GIN row (test ROC-AUC, mean and std over 10 seeds). The
#: four marked verified are quoted in issue 19; the rest are recalled from the paper.
PAPER_GIN_SCRATCH: dict[str, tuple[float, float, str]] = {
    "bbbp": (65.8, 4.5, "verified"), "tox21": (74.0, 0.8, "recalled"), "toxcast": (63.4, 0.6, "recalled"),
    "sider": (57.3, 1.6, "verified"), "clintox": (58.0, 4.4, "verified"), "muv": (71.8, 2.5, "recalled"),
    "hiv": (75.3, 1.9, "recalled"), "bace": (70.1, 5.4, "verified"),
}
#: The paper's Table 2 (average test ROC-AUC over the 8 data sets, scratch -> Supervised +
#: Context Pred.), recalled from the paper: comparable only once all 8 data sets are done.
PAPER_ARCH_AVERAGES: dict[str, tuple[float, float]] = {
    "gin": (67.0, 74.2), "gcn": (68.9, 72.2), "graphsage": (68.3, 70.3), "gat": (66.8, 60.3),
}
#: Molecules per data set (for time estimates of cells with no line yet).
DATASET_SIZES = {"bbbp": 2039, "tox21": 7831, "toxcast": 8576, "sider": 1427, "clintox": 1478,
                 "muv": 93087, "hiv": 41127, "bace": 1513}
#: Seconds per "graph pass" (one forward over one graph; a training step counts 3) of one model in a
#: fused CPU group of 10 on one thread, used until the ledger has lines of that architecture.
DEFAULT_PASS_S = {"gin": 1.6e-3, "gcn": 1.0e-3, "graphsage": 1.0e-3, "gat": 2.0e-3}


class CampaignPlanError(UserError, ValueError):
    """The committed plan file is malformed."""


@dataclass(frozen=True)
class Cell:
    order: int
    stage: int
    dataset: str
    row: str
    device: str  # "any", or "cuda" for cells too big for a CPU

    @property
    def arch(self) -> str:
        return row_arch(self.row)


def row_arch(row: str) -> str:
    """The architecture of a plan row: ``none`` is GIN, ``none:<arch>``, ``ref:<arch>_<checkpoint>``."""
    if row == "none":
        return "gin"
    if row.startswith("none:"):
        return row.split(":", 1)[1]
    return row.split(":", 1)[1].split("_", 1)[0]


def load_plan(path: str | Path = PLAN_PATH) -> list[Cell]:
    """The cells of the plan, in order; a malformed file is one error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise CampaignPlanError(f"campaign plan {path} not found; it is committed as chem/results/campaign.csv")
    cells: list[Cell] = []
    seen: set[tuple[str, str]] = set()
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        need = ["order", "stage", "dataset", "row", "device"]
        if reader.fieldnames != need:
            raise CampaignPlanError(f"{path}: header must be {','.join(need)}, got {','.join(reader.fieldnames or [])}")
        for i, rec in enumerate(reader, start=2):
            try:
                cell = Cell(int(rec["order"]), int(rec["stage"]), rec["dataset"].strip(), rec["row"].strip(),
                            rec["device"].strip())
            except (TypeError, ValueError, AttributeError):
                raise CampaignPlanError(f"{path} line {i}: order and stage must be integers") from None
            if cell.device not in ("any", "cuda") or cell.dataset not in DATASET_SIZES:
                raise CampaignPlanError(f"{path} line {i}: unknown device {cell.device!r} or data set {cell.dataset!r}")
            if (cell.dataset, cell.row) in seen:
                raise CampaignPlanError(f"{path} line {i}: cell {cell.dataset}/{cell.row} is listed twice")
            seen.add((cell.dataset, cell.row))
            cells.append(cell)
    return sorted(cells, key=lambda c: c.order)


def default_output(cache: str | None = None) -> Path:
    """Run folders of the campaign: in the cache (kept between sessions on one machine), not in the
    checkout (laid anew each session), so a half-finished group's state file survives."""
    return cache_dir(cache) / "campaign" / EXPERIMENT


# ----------------------------------------------------------------------------------- status
def seeds_done(lines: Sequence[dict[str, str]]) -> dict[tuple[str, str], set[int]]:
    """``{(dataset, row): {seed, ...}}`` of the ledger's lines."""
    out: dict[tuple[str, str], set[int]] = {}
    for line in lines:
        out.setdefault((line["dataset"], line["row"]), set()).add(int(line["seed"]))
    return out


def pass_seconds(lines: Sequence[dict[str, str]]) -> dict[str, float]:
    """Measured seconds per graph pass and model, per architecture: the median over the ledger's
    most recent one-thread lines (fused lines record each model's share of the group's time)."""
    by_arch: dict[str, list[float]] = {}
    for line in lines:
        try:
            if line.get("torch_threads") not in ("1", "") or line.get("device", "cpu") != "cpu":
                continue
            passes = int(line["epochs"]) * (3 * int(line["n_train"]) + int(line["n_valid"]) + int(line["n_test"]))
            by_arch.setdefault(line["gnn_type"], []).append(float(line["wall_time_s"]) / passes)
        except (KeyError, ValueError, ZeroDivisionError):
            continue
    rates = dict(DEFAULT_PASS_S)
    rates.update({a: statistics.median(v[-20:]) for a, v in by_arch.items()})
    return rates


def seed_seconds(cell: Cell, rates: dict[str, float], epochs: int = 100) -> float:
    """Estimated CPU seconds of one seed of ``cell`` (one model's share of a fused group)."""
    n = DATASET_SIZES[cell.dataset]
    return rates[cell.arch] * epochs * (3 * 0.8 * n + 0.2 * n)


def status(cells: Sequence[Cell], lines: Sequence[dict[str, str]], device: str = "cpu",
           seeds: Sequence[int] = SEEDS) -> dict[str, Any]:
    """Where the campaign stands: cells done (all of ``seeds`` in the ledger), per data set, the
    cells still to run on ``device`` in plan order, and the estimated core-hours they take."""
    target = set(int(s) for s in seeds)
    done = seeds_done(lines)
    rates = pass_seconds(lines)
    per_ds: dict[str, list[int]] = {}
    left_s = 0.0
    gpu_left = 0
    todo: list[Cell] = []
    for c in cells:
        have = len(done.get((c.dataset, c.row), set()) & target)
        d = per_ds.setdefault(c.dataset, [0, 0])
        d[1] += 1
        if have >= len(target):
            d[0] += 1
            continue
        if c.device == "cuda" and device != "cuda":
            gpu_left += 1
            continue
        todo.append(c)
        left_s += (len(target) - have) * seed_seconds(c, rates)
    n_done = sum(v[0] for v in per_ds.values())
    return {"cells": len(cells), "done": n_done, "per_dataset": per_ds, "todo": todo, "gpu_only_left": gpu_left,
            "core_hours_left": left_s / 3600, "rates": rates, "seeds_done": done}


def status_line(st: dict[str, Any]) -> str:
    parts = ", ".join(f"{ds.upper()} {d}/{n}" for ds, (d, n) in st["per_dataset"].items() if d or ds in
                      {c.dataset for c in st["todo"][:1]})
    nxt = st["todo"][:3]
    nxt_s = "; ".join(f"{c.dataset}/{c.row} ({len(st['seeds_done'].get((c.dataset, c.row), ()))}/10 seeds)"
                      for c in nxt) or "nothing"
    gpu = f" (+{st['gpu_only_left']} GPU-only cells)" if st["gpu_only_left"] else ""
    return (f"cells done {st['done']}/{st['cells']} ({parts or 'none yet'}); next {nxt_s}; at this machine's "
            f"speed the rest takes ~{st['core_hours_left']:.0f} core-hours{gpu}")


# ------------------------------------------------------------------------------------ units
def next_unit(todo: Sequence[Cell]) -> list[Cell]:
    """The first unfinished cell and the unfinished cells right after it with the same data set and
    architecture (one fused computation)."""
    if not todo:
        return []
    first = todo[0]
    unit = [first]
    for c in todo[1:]:
        if c.dataset != first.dataset or c.arch != first.arch:
            break
        unit.append(c)
    return unit


def unit_config(unit: Sequence[Cell], *, ledger: str | Path, output: str | Path, device: str = "cpu",
                fuse_max: int | None = None, epochs: int | None = None, seeds: Sequence[int] = SEEDS,
                data_root: str | None = None, cache: str | None = None,
                reference_dir: str | None = None) -> CompareConfig:
    """The :class:`CompareConfig` of one unit: the ``architectures`` profile restricted to the unit's
    data set and rows (the rows' baselines come along and are skipped when already in the ledger)."""
    overrides: dict[str, Any] = {}
    if epochs is not None:  # tiny runs for tests only: another protocol, so another ledger
        overrides["epochs"] = epochs
    # only the unit's published checkpoints need to be present (a GPU pack carries just those)
    refs = [c.row.split(":", 1)[1] for c in unit if c.row.startswith("ref:")]
    return config_from_profile(
        EXPERIMENT, datasets=[unit[0].dataset], rows=[c.row for c in unit], seeds=list(seeds), ledger=str(ledger),
        reference_checkpoints=refs, strategies=[c.row for c in unit if not c.row.startswith("ref:")] or ["none"],
        output=str(output), device=device, fused=True, fuse_max=fuse_max, data_root=data_root, cache=cache,
        reference_dir=reference_dir, **overrides,
    )


# ----------------------------------------------------------------------------------- runner
def run_campaign(
    hours: float,
    *,
    ledger: str | Path | None = None,
    plan: str | Path = PLAN_PATH,
    output: str | Path | None = None,
    device: str = "cpu",
    epochs: int | None = None,
    seeds: Sequence[int] = SEEDS,
    max_units: int | None = None,
    data_root: str | None = None,
    cache: str | None = None,
    reference_dir: str | None = None,
    task_pack: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the next units of the plan until ``hours`` of wall time are spent (or the plan is done).

    Each unit is fused fine-tuning through :func:`~gnnpretrain.train.compare.run.run_comparison`
    (ledger lines appended atomically as each group finishes); at the deadline the group in flight
    saves its state and the run ends with the status line. Returns the final status.

    On CUDA a unit is one group as large as the GPU's memory allows (no CPU time estimates);
    ``task_pack`` serves the tasks from a pack (:mod:`gnnpretrain.train.taskpack`, no RDKit needed).
    """
    from gnnpretrain.train.compare.run import run_comparison
    from gnnpretrain.train.fused import BudgetReached

    t0 = time.time()
    stop_at = t0 + hours * 3600
    if task_pack is not None:
        from gnnpretrain.train.taskpack import use_pack

        log(f"tasks from the pack {task_pack}: {', '.join(use_pack(task_pack))}")
    on_gpu = str(device).startswith("cuda")
    cells = load_plan(plan)
    ledger_path = Path(ledger) if ledger is not None else REPO_ROOT / "chem" / "results" / f"{EXPERIMENT}.csv"
    out = Path(output) if output is not None else default_output(cache)
    out.mkdir(parents=True, exist_ok=True)
    inflight_path = out / "inflight.json"
    book = Ledger(ledger_path)
    units_run = 0
    while True:
        st = status(cells, book.read(), device, seeds)
        log(status_line(st))
        unit = next_unit(st["todo"])
        if not unit or (max_units is not None and units_run >= max_units):
            return st
        remaining = stop_at - time.time()
        per_seed = seed_seconds(unit[0], st["rates"], epochs or 100)
        missing = sum(len(set(seeds) - st["seeds_done"].get((c.dataset, c.row), set())) for c in unit)
        key = [unit[0].dataset, [c.row for c in unit]]
        inflight = _read_json(inflight_path)
        unit_seeds = list(seeds)
        if on_gpu:
            fuse_max = None  # as many models as the GPU's memory holds (fused.auto_group_size)
        elif inflight.get("unit") == key:
            fuse_max = inflight.get("fuse_max")  # the same cut as before: its state file resumes
            # only the group in flight keeps that cut: this run takes just the first seeds (as many as its
            # members need), then the unit's other seeds are planned afresh for the budget left, so a cut
            # made small by the end of one budget does not stay small for the rest of the unit
            unit_seeds = _first_seeds(unit, seeds, st["seeds_done"], fuse_max)
            log(f"resuming unit {unit[0].dataset}/{'+'.join(c.row for c in unit)} (groups of {fuse_max}) "
                f"with its group in flight (seeds {', '.join(map(str, unit_seeds))}); the rest is planned after it")
        else:
            fit = int(remaining // max(per_seed, 1e-9))
            if fit < 1:
                log(f"stopping: the next group needs ~{per_seed / 60:.0f} min, {remaining / 60:.0f} min of the "
                    f"budget are left")
                return st
            fuse_max = max(1, min(MAX_GROUP, missing, fit))
            atomic_write_json(inflight_path, {"unit": key, "fuse_max": fuse_max, "started": time.time()})
        log(f"unit {unit[0].dataset}/{'+'.join(c.row for c in unit)}: {missing} seed(s) to run in groups of "
            f"{fuse_max or 'GPU-memory size'}, ~{math.ceil(missing * per_seed / 60)} CPU-min estimated; budget "
            f"left {remaining / 60:.0f} min")
        config = unit_config(unit, ledger=ledger_path, output=out, device=device, fuse_max=fuse_max,
                             epochs=epochs, seeds=unit_seeds, data_root=data_root, cache=cache,
                             reference_dir=reference_dir)
        try:
            run_comparison(config, log=log, stop_at=stop_at, progress=log)
        except BudgetReached as stop:
            log(f"budget reached: {stop}; the next run resumes this group")
            st = status(cells, book.read(), device, seeds)
            log(status_line(st))
            return st
        units_run += 1
        inflight_path.unlink(missing_ok=True)
        if time.time() >= stop_at:
            st = status(cells, book.read(), device, seeds)
            log("budget reached between groups")
            log(status_line(st))
            return st


def _first_seeds(unit: Sequence[Any], seeds: Sequence[int], done: dict, group: int) -> list[int]:
    """The first seeds whose missing (seed, row) members fill ``group`` models: the comparison orders a
    unit's members seed by seed (its rows together), so the first group it cuts from these seeds is the
    group in flight, whose state file then resumes."""
    out, members = [], 0
    for seed in seeds:
        missing = sum(seed not in done.get((c.dataset, c.row), set()) for c in unit)
        if missing:
            out.append(seed)
            members += missing
        if members >= max(int(group or 1), 1):
            break
    return out or list(seeds)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def make_pack(folder: str | Path, *, ledger: str | Path, plan: str | Path = PLAN_PATH, device: str = "cuda",
              max_mib: float = 56.0, data_root: str | None = None, cache: str | None = None,
              reference_dir: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """What a GPU machine without RDKit needs for the next unfinished cells: their tasks as packs
    (``<folder>/tasks``) and the published checkpoints of their rows (``<folder>/checkpoints``), in
    plan order until ``max_mib`` would be passed (what travels to the GPU is capped at 64 MiB)."""
    import shutil

    from gnnpretrain.train.taskpack import pack_name, pack_task
    from gnnpretrain.train.tasks import get_task

    folder = Path(folder)
    (folder / "tasks").mkdir(parents=True, exist_ok=True)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    todo = status(load_plan(plan), Ledger(ledger).read(), device)["todo"]
    budget = int(max_mib * (1 << 20))
    used = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    packed: list[str] = []
    ref_dir = unit_config(todo[:1] or [Cell(0, 0, "bace", "none", "any")], ledger=ledger, output=folder,
                          reference_dir=reference_dir).ref_dir
    for cell in todo:
        need: list[tuple[Path, Path]] = []
        target = folder / "tasks" / pack_name(cell.dataset)
        if cell.row.startswith("ref:"):
            src = ref_dir / f"{cell.row.split(':', 1)[1]}.pth"
            if not (folder / "checkpoints" / src.name).is_file():
                need.append((src, folder / "checkpoints" / src.name))
        size = sum(src.stat().st_size for src, _ in need)
        if not target.is_file():
            size += pack_task(get_task("chem", cell.dataset, data_root=data_root, cache=cache), target)
        if used + size > budget:
            if target.is_file() and cell.dataset not in packed:
                target.unlink()
            log(f"pack full at {used / (1 << 20):.1f} MiB: {cell.dataset}/{cell.row} and later cells stay here")
            break
        for src, dst in need:
            shutil.copy2(src, dst)
        used += size
        if cell.dataset not in packed:
            packed.append(cell.dataset)
    log(f"packed {', '.join(packed) or 'nothing'} ({used / (1 << 20):.1f} MiB) into {folder}")
    return {"datasets": packed, "bytes": used}
