"""Planning a comparison: profiles, :class:`CompareConfig`, table rows and the job graph.

Everything here is pure bookkeeping — which rows exist, which encoder each row needs, where the
pre-training and fine-tuning outputs of a (row, dataset, seed) live, and which of them are still
missing. Nothing here trains; :mod:`.run` executes the plan and :mod:`.report` turns its results
into tables.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from gnnpretrain.paths import REPO_ROOT, checkpoints_root, data_root
from gnnpretrain.utils import parse_seeds

GNN_TYPES = ("gin", "gcn", "graphsage", "gat")
REPORT_MODES = ("best-valid", "last")
ENGINES = ("local", "ray")
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
            # the two families follow-up work measures against (issue 23), chained the same way
            "graphcl", "graphmae", "graphcl+supervised", "graphmae+supervised",
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
    # The paper's architecture comparison from its published weights: scratch vs the three published
    # checkpoints of GCN, GraphSAGE and GAT (each against scratch of the same architecture), plus GIN
    # from scratch, the Table-1 baseline row. Nothing is pre-trained here.
    "architectures": {
        "strategies": ["none"],
        "datasets": ["bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace"],
        "seeds": list(range(10)),
        "epochs": 100,
        "emb_dim": 300,
        "num_layer": 5,
        "pretrain_epochs": 100,
        "max_molecules": None,
        "supervised_max_molecules": None,
        "reference_checkpoints": [
            f"{arch}_{ckpt}" for arch in ("gcn", "graphsage", "gat")
            for ckpt in ("supervised_contextpred", "contextpred", "supervised")
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
    rows: list[str] | None = None  # run only these rows (and their baselines); None = all
    ledger: str | None = None  # the results ledger (default: see ledger_path)
    fused: bool = False  # fine-tune each (architecture, dataset)'s cells as fused groups (train.fused)
    fuse_max: int | None = None  # models per fused group (None: automatic)
    fused_kernels: str = "auto"  # kernels of fused groups (FinetuneConfig.fused_kernels)
    # where fine-tunes run: "local" (this machine: in-process or --jobs worker processes) or "ray"
    # (Ray tasks on a cluster, gnnpretrain.train.rayengine; `address` as gnnpretrain.raycluster.connect)
    engine: str = "local"
    address: str | None = None
    task_threads: int = 1  # torch threads (and Ray CPUs) per Ray task

    def __post_init__(self) -> None:
        self.seeds = parse_seeds(self.seeds)
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine != "ray" and self.address is not None:
            raise ValueError("--address names a Ray cluster: it needs --engine ray")
        if self.engine == "ray" and self.jobs != 1:
            raise ValueError("--jobs sets local worker processes; with --engine ray the cluster's CPUs set the "
                             "parallelism (use --threads for torch threads per Ray task)")
        if int(self.task_threads) < 1:
            raise ValueError(f"threads per Ray task must be >= 1, got {self.task_threads}")
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
        return REPO_ROOT / self.domain / "runs" / "compare" / (self.profile or "custom")

    @property
    def experiment(self) -> str:
        """Name recorded in every ledger line: the profile, or ``custom``."""
        return self.profile or "custom"

    @property
    def ledger_path(self) -> Path:
        """``--ledger``; else ``<domain>/results/<profile>.csv`` in the checkout for a profile run
        with the default output folder (the committed record), else ``<output>/ledger.csv``."""
        if self.ledger:
            return Path(self.ledger)
        if self.profile and not self.output:
            return REPO_ROOT / self.domain / "results" / f"{self.profile}.csv"
        return self.out_dir / "ledger.csv"

    @property
    def ref_dir(self) -> Path:
        """``--reference-dir``; else the library's checkpoint folder (:func:`gnnpretrain.paths.checkpoints_root`,
        ``$GNNPRETRAIN_CHECKPOINTS`` or ``shared/reference-checkpoints`` beside the checkout) when it
        holds this domain; else ``reference-checkpoints/<domain>`` beside the data root."""
        if self.reference_dir:
            return Path(self.reference_dir)
        shared = checkpoints_root() / self.domain
        if shared.is_dir():
            return shared
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
    if config.rows is not None:
        unknown = [n for n in config.rows if n not in have]
        if unknown:
            raise ValueError(f"--rows {unknown[0]!r} is not a row of this comparison; its rows are: "
                             f"{', '.join(r.name for r in rows)}")
        keep = set(config.rows) | {r.baseline for r in rows if r.name in config.rows and r.pretrained}
        rows = [r for r in rows if r.name in keep]
    # baselines first, like the paper's table
    return sorted(rows, key=lambda r: (r.pretrained, [x.name for x in rows].index(r.name)))


# ------------------------------------------------------------------------------------ pre-training
def pretrain_args(config: CompareConfig, strategy: str, gnn_type: str) -> list[str]:
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
    spec = [pretrain_args(config, s, gnn_type) for s in chain]
    digest = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:8]
    return config.out_dir / "pretrain" / f"{'+'.join(chain)}-{digest}"


# ------------------------------------------------------------------------------------ fine-tuning
def finetune_config(config: CompareConfig, row: Row, dataset: str, checkpoint: str | None):
    from gnnpretrain.train.run.config import FinetuneConfig

    num_layer, emb_dim = row.dims(config)
    return FinetuneConfig(
        dataset=dataset, domain=config.domain, input_model_file=checkpoint, gnn_type=row.gnn_type,
        num_layer=num_layer, emb_dim=emb_dim, epochs=config.epochs, batch_size=config.batch_size,
        seeds=config.seeds, data_root=config.data_root, cache=config.cache,
        output=str(config.out_dir / "finetune" / row.dirname), name=row.dirname, device=config.device,
        report=config.report, progress=False, fused_kernels=config.fused_kernels,
    )


@dataclass
class FinetunePlan:
    """What the fine-tuning stage has to do, decided before any training starts."""

    todo: list  # [(row, ft_config, seed), ...] to compute
    backfill: list[dict[str, str]]  # ledger lines of finished seed files the ledger lacks
    done: int  # cells already in the ledger with this configuration


def plan_finetunes(config: CompareConfig, rows: Sequence[Row], checkpoints: dict[str, str | None],
                   ledger=None) -> FinetunePlan:
    """Decide, per (dataset, seed, row), whether the cell is in the ledger, only in a finished seed
    file (copied into the ledger without training), or still to run.

    The order is data set, then seed, then row, so a run stopped early leaves every row of a data set
    with about the same number of seeds. Every configuration is checked against the ledger here
    (:meth:`Ledger.check`), so a mixed configuration fails before any training.
    """
    from gnnpretrain.train.compare.ledger import Ledger, expected_line, line_from_record
    from gnnpretrain.train.run.config import sha256_file
    from gnnpretrain.train.run.records import load_finished

    ledger = ledger if ledger is not None else Ledger(config.ledger_path)
    lines = ledger.read()
    have = ledger.done(lines)
    shas = {name: sha256_file(ckpt) for name, ckpt in checkpoints.items()}
    plan = FinetunePlan([], [], 0)
    expected = []
    for ds in config.datasets:
        ftcs = {row.name: finetune_config(config, row, ds, checkpoints[row.name]) for row in rows}
        for seed in config.seeds:
            for row in rows:
                ftc = ftcs[row.name]
                recorded = {**ftc.to_dict(), "input_model_sha256": shas[row.name]}
                exp = {**expected_line(recorded, row.name), "seed": str(seed)}
                expected.append(exp)
                key = (row.name, ds, str(seed))
                if have.get(key) == exp["config_hash"]:
                    plan.done += 1
                    continue
                if key in have:
                    continue  # a mismatch: reported by the check below
                rec = load_finished(ftc, seed, recorded)
                if rec is not None:
                    plan.backfill.append(line_from_record(
                        rec, experiment=config.experiment, row=row.name,
                        baseline=row.baseline if row.pretrained else None, checkpoint=checkpoints[row.name]))
                else:
                    plan.todo.append((row, ftc, seed))
    ledger.check(expected + plan.backfill, lines)
    return plan
