#!/usr/bin/env python
"""Compare pre-training strategies downstream (the paper's Table 1) and flag negative transfer.

Examples:
    python scripts/compare.py --profile quick                       # ~20 min on a 2-core CPU
    python scripts/compare.py --profile paper --jobs 8 --device cuda
    python scripts/compare.py --strategies none,contextpred,contextpred+supervised \\
        --datasets bbbp,tox21 --seeds 0-9 --epochs 100
    python scripts/compare.py --profile quick --checkpoint mine=path/to/model.pth
    python scripts/compare.py --profile quick --reference-checkpoints gcn_supervised_contextpred,gat_supervised_contextpred
    python scripts/compare.py --profile architectures --datasets bace --rows none:gcn,ref:gcn_supervised_contextpred
    python scripts/compare.py --report-only --ledger chem/results/architectures.csv --output /tmp/tables
    python scripts/compare.py --suite moleculeace --seeds 0-2 --epochs 30      # activity cliffs (regression)
    python scripts/compare.py --profile quick --fused --engine ray --address auto   # on a running Ray cluster

Pre-trains whatever checkpoint is missing, fine-tunes every (strategy, dataset, seed) that has no
line in the results ledger (``<domain>/results/<profile>.csv`` for a profile run, else
``<output>/ledger.csv``; ``--ledger`` to choose), appends each finished seed to it, then writes
``results.md`` / ``results.csv`` (and both report modes as ``results_best-valid.*``,
``results_last.*``), ``gain.png``, ``gain_grid.png`` and ``report.json`` into the output folder
(default ``<domain>/runs/compare/<profile>``), all rebuilt from the ledger. Re-running resumes; a
finished comparison re-runs in seconds. Row names, the ledger and the job graph are documented in
``gnnpretrain/train/compare/__init__.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from gnnpretrain.raycluster import add_engine_arguments  # noqa: E402
from gnnpretrain.runtime import add_threads_argument, exit_quietly_on_interrupt, prefer_passive_openmp  # noqa: E402

if __name__ == "__main__":
    exit_quietly_on_interrupt()  # one line, exit 130, even for a Ctrl-C during the imports below
prefer_passive_openmp()  # before torch loads OpenMP

from gnnpretrain.train.compare import (  # noqa: E402
    GNN_TYPES,
    PROFILES,
    REPORT_MODES,
    config_from_profile,
    report_from_ledger,
    run_comparison,
)
from gnnpretrain.train.fused import fused_by_default  # noqa: E402
from gnnpretrain.utils import parse_seeds  # noqa: E402


def _csv(s: str | None) -> list[str] | None:
    if s is None:
        return None
    return [x.strip() for x in s.split(",") if x.strip()]


def _checkpoints(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    out = {}
    for item in items:
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"--checkpoint expects NAME=PATH, got {item!r}")
        name, path = item.split("=", 1)
        out[name.strip()] = path.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default=None, choices=["moleculeace"],
                   help="moleculeace: regression on MoleculeACE targets (--datasets = targets), RMSE on all and on "
                        "activity-cliff test molecules; rows none:<arch>, ref:<hub name>, NAME=PATH via --checkpoint "
                        "(see gnnpretrain/train/compare/moleculeace.py)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="defaults for everything below (quick: small CPU run; paper: full protocol; "
                        "architectures: scratch vs the published gcn/graphsage/gat checkpoints, GIN scratch)")
    p.add_argument("--strategies", default=None, help="comma list of rows: none, none:gcn, contextpred, a+b, ref:<stem>")
    p.add_argument("--datasets", default=None, help="comma list of downstream data sets")
    p.add_argument("--rows", default=None,
                   help="run only these rows of the comparison (comma list; their baselines are kept)")
    p.add_argument("--ledger", default=None,
                   help="results ledger CSV (default <domain>/results/<profile>.csv, or <output>/ledger.csv)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rebuild the tables and figures from --ledger into --output")
    p.add_argument("--seeds", default=None, help="fine-tuning seeds, e.g. 0-9")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs")
    p.add_argument("--pretrain-epochs", type=int, default=None)
    p.add_argument("--num-layer", type=int, default=None, help="encoder depth of our own rows (reference rows stay 5)")
    p.add_argument("--emb-dim", type=int, default=None, help="encoder width of our own rows (reference rows stay 300)")
    p.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch size (paper: 32)")
    p.add_argument("--max-molecules", type=int, default=None, help="pre-training corpus size (first N molecules)")
    p.add_argument("--supervised-max-molecules", type=int, default=None, help="ChEMBL molecules for supervised steps")
    p.add_argument("--reference-checkpoints", default=None,
                   help="comma list of reference checkpoint stems to add as rows (with none:<arch> baselines); '' for none")
    p.add_argument("--reference-dir", default=None, help="folder of the paper's .pth files (default <data_root>/../reference-checkpoints/<domain>)")
    p.add_argument("--checkpoint", action="append", default=None, metavar="NAME=PATH",
                   help="use this encoder file for row NAME instead of pre-training (repeatable)")
    p.add_argument("--domain", default=None, help="chem (default) or bio")
    p.add_argument("--gnn-type", default=None, choices=GNN_TYPES)
    p.add_argument("--jobs", type=int, default=None,
                   help="parallel fine-tuning processes (1 torch thread each) of the local engine")
    add_threads_argument(p)
    add_engine_arguments(p, "where fine-tunes run: local = this machine (in-process, or --jobs processes); ray = one "
                         "Ray task per fused group (with --fused) or per seed, on a Ray cluster (pip install -e '.[ray]'; "
                         "--threads = torch threads and Ray CPUs per task, default 1). Same seed files and ledger lines")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="fine-tune the cells of each (architecture, data set) as fused groups of models "
                   "(gnnpretrain.train.fused; same seed files and ledger lines as separate runs, results equal in "
                   "distribution). Default: fused on CPU, where it measured faster (benchmarks/RESULTS.md); "
                   "not on GPUs unless asked")
    p.add_argument("--fuse-max", type=int, default=None, metavar="N", help="models per fused group (default: automatic)")
    p.add_argument("--fused-kernels", default=None, choices=["auto", "exact", "sparse", "batched"],
                   help="kernels of fused groups: auto (default) = sparse on CPU (fast; equal to separate runs to float "
                   "rounding), batched on GPUs; exact = CPU, bit-equal to separate runs")
    p.add_argument("--report", default=None, choices=REPORT_MODES, help="which epoch the main table reports")
    p.add_argument("--alpha", type=float, default=None, help="significance level of the negative-transfer test")
    p.add_argument("--device", default=None, help="cpu (default), cuda, auto")
    p.add_argument("--output", default=None, help="output folder")
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache", default=None)
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    from gnnpretrain.runtime import apply_threads

    if args.engine == "ray" and not args.report_only:
        from gnnpretrain.raycluster import require_ray

        require_ray()  # one line naming the extra, before any work
    if not getattr(args, "report_only", False):  # tables only: no training, leave the caller's threads alone
        apply_threads(args.threads if args.engine == "local" else 1)  # this process (pre-training runs in its own process and plans its own)
    if args.suite == "moleculeace":
        return _moleculeace(parser, args)
    if args.report_only:
        if not args.ledger or not args.output:
            parser.error("--report-only needs --ledger PATH (the ledger to read) and --output DIR (where tables go)")
        summary = report_from_ledger(args.ledger, args.output, report=args.report or "best-valid",
                                     alpha=args.alpha or 0.05, datasets=_csv(args.datasets),
                                     rows=_csv(args.rows))
        out = Path(args.output)
        print((out / "results.md").read_text())
        print(f"wrote {out / 'results.md'}, {out / 'results.csv'}, {out / 'gain.png'}, {out / 'gain_grid.png'} "
              f"from {args.ledger} ({len(summary['rows'])} rows, {len(summary['datasets'])} data sets)")
        return summary
    refs = args.reference_checkpoints
    try:
        config = config_from_profile(
            args.profile,
            strategies=_csv(args.strategies),
            datasets=_csv(args.datasets),
            seeds=parse_seeds(args.seeds) if args.seeds is not None else None,
            epochs=args.epochs,
            pretrain_epochs=args.pretrain_epochs,
            num_layer=args.num_layer,
            emb_dim=args.emb_dim,
            batch_size=args.batch_size,
            max_molecules=args.max_molecules,
            supervised_max_molecules=args.supervised_max_molecules,
            reference_checkpoints=_csv(refs) if refs is not None else None,
            reference_dir=args.reference_dir,
            checkpoints=_checkpoints(args.checkpoint),
            domain=args.domain,
            gnn_type=args.gnn_type,
            jobs=args.jobs,
            report=args.report,
            alpha=args.alpha,
            device=args.device,
            output=args.output,
            data_root=args.data_root,
            cache=args.cache,
            rows=_csv(args.rows),
            ledger=args.ledger,
            fused=args.fused if args.fused is not None else fused_by_default(args.device),
            fuse_max=args.fuse_max,
            fused_kernels=args.fused_kernels,
            engine=args.engine,
            address=args.address,
            task_threads=args.threads if args.engine == "ray" and args.threads else None,
        )
    except (ValueError, argparse.ArgumentTypeError) as err:
        parser.error(str(err))
    report = run_comparison(config)
    out = config.out_dir
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.md'}, {out / 'results.csv'}, {out / 'gain.png'} from the ledger {report['ledger']} "
          f"({report['ran']} runs executed, {report['wall_time_s']:.0f} s)")
    return report


def _moleculeace(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    from gnnpretrain.train.compare.moleculeace import MoleculeACEConfig, moleculeace_report, run_moleculeace

    if args.report_only:
        if not args.ledger or not args.output:
            parser.error("--report-only needs --ledger PATH (the ledger to read) and --output DIR (where tables go)")
        report = moleculeace_report(args.ledger, args.output, alpha=args.alpha or 0.05)
        print(report["markdown"])
        return report
    given = {k: v for k, v in {
        "targets": _csv(args.datasets), "rows": _csv(args.strategies), "seeds": args.seeds, "epochs": args.epochs,
        "batch_size": args.batch_size, "num_layer": args.num_layer, "emb_dim": args.emb_dim, "output": args.output,
        "ledger": args.ledger, "device": args.device, "data_root": args.data_root, "cache": args.cache,
        "checkpoints": _checkpoints(args.checkpoint),
    }.items() if v is not None}
    try:
        config = MoleculeACEConfig(**given)
    except ValueError as err:
        parser.error(str(err))
    report = run_moleculeace(config)
    print(report["markdown"])
    print(f"wrote {config.out_dir / 'results.md'} and the ledger {report['ledger']} "
          f"({report['ran']} runs executed, {report['wall_time_s']:.0f} s)")
    return report


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
