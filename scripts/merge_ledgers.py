#!/usr/bin/env python
"""Merge the results ledgers of several machines into one (comparison ledgers, ``chem/results/*.csv``).

    python scripts/merge_ledgers.py machine_a.csv machine_b.csv --ledger chem/results/quick.csv

Every input is read as strictly as a ledger is written (``gnnpretrain.train.compare.ledger``): a
malformed value is one error naming file, line and column; a cell (row x data set x seed) present in
several inputs with the same result is kept once (one warning line); with different results the merge
is refused naming both files and lines, and nothing is written; so are lines of another fine-tuning
protocol. ``--ledger`` may already exist (its lines come first, the inputs are added); it is written
atomically under its lock, so a comparison appending to it meanwhile loses nothing. Format-1 inputs
are written out in format 2 with their values unchanged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_parser() -> argparse.ArgumentParser:
    from gnnpretrain.cli_help import DefaultsHelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="LEDGER", help="ledger CSV files to merge")
    p.add_argument("--ledger", required=True, help="the merged ledger (created, or grown if it exists)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from gnnpretrain.train.compare.ledger import merge_ledgers

    result = merge_ledgers(args.inputs, args.ledger)
    read = ", ".join(f"{Path(p).name} {n}" for p, n in result["inputs"].items())
    print(f"merged {len(args.inputs)} ledger(s) ({read} lines) into {result['output']}: {result['lines']} lines, "
          f"{result['added']} new")
    return result


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
