#!/usr/bin/env python
"""Embed the molecules of a CSV with a pre-trained encoder (a hub name or an encoder file).

    python scripts/embed.py --input mols.csv --smiles-column smiles --model gin_supervised_contextpred \
        --output emb.npy

Writes one row per input row (``.npy``: float32 ``[n, d]``; ``.csv``/``.parquet``: the SMILES column plus
``emb0..emb{d-1}``). Rows whose SMILES cannot be featurized are NaN; their count is printed and they are
listed (row, smiles) in ``<output stem>.failed.csv``. ``.parquet`` needs pyarrow.

As in scikit-learn, an input with no rows, or one in which no SMILES can be featurized, is an error
(exit code 2; for the latter the failure list is written and named) and no output is written. The
output's folder is checked before the encoder is loaded; the output is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnnpretrain.runtime import add_threads_argument, exit_quietly_on_interrupt, prefer_passive_openmp  # noqa: E402

if __name__ == "__main__":
    exit_quietly_on_interrupt()  # one line, exit 130, even for a Ctrl-C during the imports below
prefer_passive_openmp()  # before torch loads OpenMP

FORMATS = (".npy", ".csv", ".parquet")


def build_parser() -> argparse.ArgumentParser:
    from gnnpretrain.cli_help import DefaultsHelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("--input", required=True, help="CSV file with a SMILES column")
    p.add_argument("--smiles-column", default=None, help="name of the SMILES column (default: the one named smiles, any case)")
    p.add_argument("--model", required=True, help="hub name (see gnnpretrain.hub.list()) or encoder file path")
    p.add_argument("--output", required=True, help="output file: .npy, .csv or .parquet")
    p.add_argument("--pooling", default="mean", choices=["mean", "sum", "max"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_argument(p)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    out = Path(args.output)
    if out.suffix not in FORMATS:
        raise ValueError(f"--output {out}: unknown format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    if out.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError("--output .parquet needs pyarrow (pip install pyarrow); or write .npy / .csv") from None

    import numpy as np
    import pandas as pd

    from gnnpretrain.chem.csvtable import read_molecule_table
    from gnnpretrain.embeddings import embed, resolve_encoder
    from gnnpretrain.errors import EmptyInputError
    from gnnpretrain.outputs import ensure_writable
    from gnnpretrain.runtime import apply_threads
    from gnnpretrain.utils import atomic_write, atomic_write_text

    if args.device == "cpu" or args.threads is not None:
        apply_threads(args.threads)
    # before the encoder is loaded: the folder the user named can be written (the error names it, not a temporary file)
    ensure_writable(out.parent, what=f"--output {out}: its folder", option="--output")
    df, smiles_column = read_molecule_table(args.input, args.smiles_column)
    if len(df) == 0:
        raise EmptyInputError(f"--input {args.input} has a header but no rows: found 0 molecules to embed, while a "
                              "minimum of 1 is required")
    smiles = df[smiles_column].fillna("").tolist()
    failed_path = out.with_name(out.stem + ".failed.csv")

    def write_failed(failed: list[int]) -> None:
        atomic_write_text(failed_path, pd.DataFrame({"row": failed, "smiles": [smiles[i] for i in failed]}).to_csv(index=False))

    encoder = resolve_encoder(args.model)
    try:
        arr, failed = embed(smiles, encoder, pooling=args.pooling, batch_size=args.batch_size, device=args.device,
                            progress=not args.no_progress)
    except EmptyInputError as err:
        if not err.failed:
            raise
        write_failed(err.failed)
        raise EmptyInputError(
            f"none of the {len(smiles)} SMILES in column {smiles_column!r} of {args.input} could be featurized, so "
            f"nothing was written to {out}; they are listed in {failed_path} (check --smiles-column)",
            failed=err.failed) from None

    if out.suffix == ".npy":
        atomic_write(out, lambda fh: np.save(fh, arr))
    else:
        table = pd.concat([df[[smiles_column]].reset_index(drop=True),
                           pd.DataFrame(arr, columns=[f"emb{i}" for i in range(arr.shape[1])])], axis=1)
        if out.suffix == ".csv":
            atomic_write_text(out, table.to_csv(index=False))
        else:
            atomic_write(out, lambda fh: table.to_parquet(fh, index=False))
    if failed:
        write_failed(failed)
    elif failed_path.exists():
        failed_path.unlink()  # a stale list from an earlier run would mislead
    print(f"embedded {len(smiles) - len(failed)} of {len(smiles)} molecules -> {out} {tuple(arr.shape)}")
    if failed:
        print(f"{len(failed)} of {len(smiles)} SMILES could not be featurized (NaN rows); listed in {failed_path}")


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
