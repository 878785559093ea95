"""``python -m gnnpretrain.data [--data-root DIR]``: which raw files are present, which are missing, where
each was looked for and how to get it. ``python -m gnnpretrain.data fetch zinc moleculenet`` downloads
(sha256-checked, with a progress bar); ``fetch zinc_standard_agent`` fetches the paper's corpus (2.5 GB
archive) on request. See :mod:`gnnpretrain.datafiles`."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    from gnnpretrain.datafiles import GROUPS, fetch_group, status_report

    p = argparse.ArgumentParser(prog="python -m gnnpretrain.data", description=__doc__.split("\n\n")[0])
    p.add_argument("action", nargs="?", default="status", choices=("status", "fetch"),
                   help="status (default): the table; fetch: download the groups named after it")
    p.add_argument("groups", nargs="*", help=f"with fetch: any of {', '.join(GROUPS[:3])}")
    p.add_argument("--data-root", default=None, help="raw data folder (default: $GNNPRETRAIN_DATA, else shared/data "
                   "beside the checkout, else ~/.gnnpretrain/data)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.action == "fetch":
        if not args.groups:
            p.error("fetch needs one or more groups, e.g. `fetch zinc moleculenet`")
        for group in args.groups:
            files = fetch_group(group, args.data_root, progress=not args.no_progress)
            print(f"{group}: {len(files)} file(s) present: {', '.join(str(f) for f in files)}")
        return
    if args.groups:
        p.error("status takes no groups (did you mean `fetch`?)")
    print(status_report(args.data_root))


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
