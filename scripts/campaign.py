#!/usr/bin/env python
"""Run the results campaign for a time budget: the next unfinished paper-protocol cells, fused, on
one niced core, every finished seed appended to the committed ledger.

Examples:
    python scripts/campaign.py --status                      # where the campaign stands, nothing runs
    nohup python scripts/campaign.py --hours 2.5 > campaign.log 2>&1 &   # standing work of a session
    python scripts/campaign.py --pack gpu-pack                # what a GPU machine needs (scripts/campaign_gpu.sh)
    python scripts/campaign.py --merge gpu-out/architectures.csv   # its ledger lines back into the committed one

The plan is ``chem/results/campaign.csv`` (order, stage, data set, row, device); the ledger is
``chem/results/architectures.csv``; run folders and the state of a half-finished group live in the
cache (``$GNNPRETRAIN_CACHE/campaign/architectures``), so a later run on the same machine resumes the
group from its last saved epoch. The protocol is the ``architectures`` profile of
``scripts/compare.py`` (the paper's: 10 seeds, 100 epochs, batch 32, lr 1e-3, dropout 0.5, scaffold
split, fp32). One line per epoch goes to stdout; at the budget the group in flight saves its state and
the run ends with the campaign's status line (exit 0).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from gnnpretrain.runtime import add_threads_argument, exit_quietly_on_interrupt, prefer_passive_openmp  # noqa: E402

if __name__ == "__main__":
    exit_quietly_on_interrupt()
prefer_passive_openmp()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=None, help="wall-time budget of this run (required unless --status)")
    p.add_argument("--status", action="store_true", help="print where the campaign stands and exit")
    p.add_argument("--pack", default=None, metavar="DIR",
                   help="write what a GPU machine without RDKit needs for the next cells into DIR and exit "
                        "(task packs + published checkpoints; see scripts/campaign_gpu.sh)")
    p.add_argument("--max-mib", type=float, default=56.0, help="size cap of --pack (default 56 MiB)")
    p.add_argument("--task-pack", default=None, metavar="DIR", help="read the tasks from packs in DIR (no RDKit needed)")
    p.add_argument("--results", action="store_true",
                   help="rebuild the campaign section of chem/RESULTS.md (and chem/figures/campaign_gain.png) "
                        "from the ledger, and exit")
    p.add_argument("--merge", nargs="+", default=None, metavar="LEDGER",
                   help="merge these ledgers (e.g. a GPU run's) into --ledger under the ledger's rules (scripts/merge_ledgers.py), and exit")
    p.add_argument("--ledger", default=None, help="ledger to grow (default chem/results/architectures.csv)")
    p.add_argument("--plan", default=None, help="plan table (default chem/results/campaign.csv)")
    p.add_argument("--output", default=None, help="run folders (default $GNNPRETRAIN_CACHE/campaign/architectures)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: GPU-only cells (HIV, MUV) run only on cuda")
    p.add_argument("--nice", type=int, default=10, help="niceness added to this process (default 10; 0 = none)")
    p.add_argument("--max-units", type=int, default=None, help="stop after this many fused units")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the protocol's 100 epochs (tests only: needs its own --ledger)")
    p.add_argument("--seeds", default=None, help="override the protocol's seeds 0-9 (tests only)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache", default=None)
    p.add_argument("--reference-dir", default=None, help="folder of the published .pth files")
    add_threads_argument(p)
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    from gnnpretrain.paths import REPO_ROOT
    from gnnpretrain.train.compare import campaign
    from gnnpretrain.train.compare.ledger import Ledger
    from gnnpretrain.utils import parse_seeds

    plan = args.plan or campaign.PLAN_PATH
    default_ledger = REPO_ROOT / "chem" / "results" / f"{campaign.EXPERIMENT}.csv"
    ledger = Path(args.ledger) if args.ledger else default_ledger
    seeds = parse_seeds(args.seeds) if args.seeds is not None else list(campaign.SEEDS)
    if args.status:
        st = campaign.status(campaign.load_plan(plan), Ledger(ledger).read(), args.device, seeds)
        print(campaign.status_line(st))
        return st
    if args.results:
        from gnnpretrain.train.compare.campaign_report import write_results

        print(write_results(REPO_ROOT / "chem" / "RESULTS.md", Ledger(ledger).read(),
                            REPO_ROOT / "chem" / "figures" / "campaign_gain.png", plan))
        return {}
    if args.merge:
        from gnnpretrain.train.compare.ledger import merge_ledgers

        added = merge_ledgers(args.merge, ledger)["added"]  # strict: a conflicting cell is refused, naming both lines
        st = campaign.status(campaign.load_plan(plan), Ledger(ledger).read(), args.device, seeds)
        print(f"merged {added} new line(s) into {ledger}")
        print(campaign.status_line(st))
        return st
    if args.pack:
        return campaign.make_pack(args.pack, ledger=ledger, plan=plan, max_mib=args.max_mib, data_root=args.data_root,
                                  cache=args.cache, reference_dir=args.reference_dir)
    if args.hours is None or args.hours <= 0:
        parser.error("--hours H (a positive wall-time budget) is required, e.g. --hours 2.5; or --status")
    if (args.epochs is not None or args.seeds is not None) and ledger.resolve() == default_ledger.resolve():
        parser.error("--epochs/--seeds change the protocol: pass a --ledger of their own (the committed "
                     "ledger holds the paper protocol only)")
    if args.nice:
        os.nice(args.nice)
    from gnnpretrain.runtime import apply_threads

    apply_threads(args.threads if args.threads is not None else 1)  # one core: the other is the user's

    def log(line: str) -> None:
        print(line, flush=True)

    return campaign.run_campaign(
        args.hours, ledger=ledger, plan=plan, output=args.output, device=args.device, epochs=args.epochs,
        seeds=seeds, max_units=args.max_units, data_root=args.data_root, cache=args.cache,
        reference_dir=args.reference_dir, task_pack=args.task_pack, log=log,
    )


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
