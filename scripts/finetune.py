#!/usr/bin/env python
"""Fine-tune a (pre-trained or fresh) GNN on a downstream dataset over several seeds.

Defaults follow the paper's protocol (batch 32, 100 epochs for chem / 50 for bio, Adam 1e-3, no
weight decay, dropout 0.5, JK last, mean pooling, 5 layers x 300, seeds 0-9, scaffold split).

    python scripts/finetune.py --dataset bbbp --input-model-file chem/runs/pretrain/x/model.pth
    python scripts/finetune.py --dataset mols.csv --smiles-column smiles --target-columns logS,pIC50 \
        --input-model-file gcn_supervised_contextpred        # your CSV (regression here); architecture from the file
    python scripts/finetune.py --dataset moleculeace:CHEMBL1862_Ki            # activity-cliff benchmark
    python scripts/finetune.py --dataset mols.csv --target-columns pIC50 --hpopt 30   # hyperparameter search
    python scripts/finetune.py --config <output>/mols/hpopt/best.json                # its best configuration

Per-seed results go to <output>/<dataset>/seed<k>.json, the summary to <output>/<dataset>/summary.json
(default output: <domain>/runs/finetune/<gnn_type>_<checkpoint stem or "scratch">). Re-running skips
finished seeds; a finished seed computed with other options is an error unless --overwrite is given.

--hpopt N searches lr, dropout, batch size, epochs, freeze and graph pooling with Optuna (or Ray Tune with
--engine ray) until the study holds N finished trials; everything goes to <output>/<dataset>/hpopt/
(study.db, trials.csv, trials.png, best.json for --config). See docs/hpopt.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnnpretrain.raycluster import add_engine_arguments  # noqa: E402
from gnnpretrain.runtime import add_threads_argument, exit_quietly_on_interrupt, prefer_passive_openmp  # noqa: E402

if __name__ == "__main__":
    exit_quietly_on_interrupt()  # one line, exit 130, even for a Ctrl-C during the imports below
prefer_passive_openmp()  # before torch loads OpenMP

from gnnpretrain.train.tasks import accepts_dataset, registered_domains, task_names  # noqa: E402

DOMAIN_EPOCHS = {"chem": 100, "bio": 50}
#: ``--dataset`` when none is given (bio: the STRING human ego-networks built from the data root).
DOMAIN_DATASET = {"chem": "bbbp", "bio": "string_human"}
_BIO_NAMES = "string_human[:key=value,...] (STRING v12 human ego-networks), paper:<folder> (the paper's processed files)"


def _dataset_help(domains: list[str]) -> str:
    parts = []
    for d in domains:
        names = task_names(d)
        parts.append(f"{d}: {', '.join(names) if names else (_BIO_NAMES if d == 'bio' else 'see the domain docs')}")
    return "; ".join(parts)


def _domains() -> list[str]:
    for d in ("chem", "bio"):
        try:
            task_names(d)
        except ValueError:
            pass
    return registered_domains()


def build_parser(domain: str = "chem") -> argparse.ArgumentParser:
    domains = _domains()
    names = task_names(domain) if domain in domains else ()
    from gnnpretrain.cli_help import DefaultsHelpFormatter

    p = argparse.ArgumentParser(
        description="Fine-tune a GNN on a downstream graph classification dataset (paper protocol by default).",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--domain", default="chem", choices=domains, help="task domain")
    p.add_argument("--dataset", default=None, metavar="NAME",
                   help=f"downstream dataset. {_dataset_help(domains)}; chem also takes a CSV path or "
                   f"moleculeace:TARGET (default: {DOMAIN_DATASET['chem']} for chem, {DOMAIN_DATASET['bio']} for bio)")
    p.add_argument("--smiles-column", default=None,
                   help="CSV datasets: the SMILES column (default: the one named smiles, any case)")
    p.add_argument("--target-columns", default=None, help="CSV datasets: comma-separated target columns (a,b)")
    p.add_argument("--task", default=None, choices=["classification", "regression"],
                   help="CSV datasets: task type (default: classification if every target value is 0/1)")
    p.add_argument("--input-model-file", default=None,
                   help="pre-trained encoder checkpoint, or a published model's name (gnnpretrain.hub.list()); "
                   "omit: from scratch")
    p.add_argument("--gnn-type", default=None, choices=["gin", "gcn", "graphsage", "gat"],
                   help="default: the --input-model-file's (metadata or weights), else gin")
    p.add_argument("--num-layer", type=int, default=None, help="default: the checkpoint's, else 5")
    p.add_argument("--emb-dim", type=int, default=None, help="default: the checkpoint's, else 300")
    p.add_argument("--JK", default="last", choices=["last", "concat", "max", "sum"])
    p.add_argument("--graph-pooling", default="mean", help="sum | mean | max | attention | set2set<n>")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=None, help="(default: 100 for chem, 50 for bio, as the paper)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--decay", type=float, default=0.0, help="Adam weight decay")
    p.add_argument("--seeds", default="0-9", help="e.g. 0-9, 0,3,5 or 0-2,7 (model init and batch order)")
    p.add_argument("--split", default="scaffold",
                   help="scaffold | random | random_scaffold | column:NAME (CSV: a train/valid/test column)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of randomised splits (scaffold ignores it)")
    p.add_argument("--featurizer", default="reference", choices=["reference", "ogb"])
    p.add_argument("--data-root", default=None, help="raw data folder (default: $GNNPRETRAIN_DATA or ../shared/data)")
    p.add_argument("--cache", default=None, help="processed-tensor cache (default: $GNNPRETRAIN_CACHE)")
    p.add_argument("--output", default=None, help="output folder (default: <domain>/runs/finetune/<name>)")
    p.add_argument("--name", default=None, help="run name under the default output folder")
    p.add_argument("--device", default="auto")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes for training batches")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="seeds fine-tuned in parallel processes, one torch thread each (default: the free cores, "
                   "at most the number of unfinished seeds)")
    add_threads_argument(p)
    p.add_argument("--report", default="best-valid", choices=["best-valid", "last"],
                   help="which epoch's test ROC-AUC the printed summary leads with (both are recorded)")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute finished seeds computed with other options (default: error)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="let --input-model-file hold Python objects besides tensors (unpickling runs code: "
                   "only for files you trust)")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="train the seeds as one stacked computation (gnnpretrain.train.fused: the same files, results "
                   "equal to separate runs' in distribution — bitwise with --fused-kernels exact; unsupported options "
                   "fall back to separate runs). Default: fused on CPU, where it measured faster in fp32 (sparse kernels: 1.2x "
                   "separate runs at one seed, 1.36x per seed-epoch at ten) and in bf16 (2.3x the reference loop; "
                   "benchmarks/RESULTS.md); not fused on GPUs (not measured yet)")
    p.add_argument("--fuse-max", type=int, default=None, metavar="N",
                   help="at most N models per fused group (default: automatic — 10 on CPU, measured from "
                   "the memory of one step on a GPU)")
    p.add_argument("--fused-kernels", default="auto", choices=["auto", "exact", "sparse", "batched"],
                   help="kernels of fused groups: auto = sparse on CPU (sparse-matrix aggregation, bf16 products in "
                   "fixed-shape blocks, fused Adam: equal to separate runs to float rounding, dropout masks from the "
                   "same distribution), batched on GPUs; exact = CPU kernels bit-equal to separate runs (slower)")
    p.add_argument("--amp", action="store_true",
                   help="bf16 for the model's products where the device multiplies bf16 natively (AVX512-BF16/AMX "
                   "CPUs, CUDA 8.0+; loss, metrics, optimizer stay fp32), else fp32 with a one-line warning; "
                   "changes results slightly, so it is part of the configuration (see chem/README.md)")
    p.add_argument("--amp-dtype", default="auto", choices=("auto", "bf16"),
                   help="with --amp: auto = bf16 where native, else fp32; bf16 = bf16 or an error (exit 2) where "
                   "it is not native (implies --amp)")
    p.add_argument("--freeze", action="store_true",
                   help="freeze the encoder: only the pooling and the linear head train (the encoder keeps its "
                   "weights and runs in eval mode: BatchNorm statistics and dropout fixed); not stacked by --fused")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="JSON object of options (keys: the flag names, e.g. lr, batch_size; an --hpopt search's "
                   "best.json) used as defaults; flags given on the command line win")
    h = p.add_argument_group("hyperparameter search (the optuna extra; docs/hpopt.md)")
    h.add_argument("--hpopt", type=int, default=None, metavar="N",
                   help="search lr, dropout, batch size, epochs (up to --epochs), freeze (with a checkpoint) and graph "
                   "pooling until the study holds N finished trials (a repeated command continues to N); Optuna TPE, "
                   "median pruning on the per-epoch validation score; results in <output>/<dataset>/hpopt/")
    h.add_argument("--hpopt-seeds", default=None, metavar="SEEDS",
                   help="seeds fine-tuned per trial, objective = their mean best-valid validation score (default: 0); "
                   "--seeds is for the final run with --config best.json")
    h.add_argument("--hpopt-params", default=None, metavar="P,Q",
                   help="search only these parameters (of lr, dropout, batch_size, epochs, freeze, graph_pooling); the "
                   "others keep their flags' values (default: all)")
    h.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage URL shared by several processes or machines (e.g. postgresql://user@host/db, "
                   "sqlite:///path.db; default: sqlite under <output>/<dataset>/hpopt/)")
    h.add_argument("--study-name", default=None, help="study in the storage (default: finetune-<dataset>)")
    add_engine_arguments(h, "local: this machine (default); ray: on the Ray cluster at --address (the ray extra) — the "
                         "seeds as Ray tasks of --threads CPUs (fused groups with --fused), or with --hpopt Ray Tune trials "
                         "(ASHA early stopping, Optuna as the searcher), one trial per task of --threads CPUs, --jobs at once",
                         default=None)
    return p


def _cpu_plan(args: argparse.Namespace, seeds: list[int]) -> tuple[int | None, int]:
    """Torch threads per process and parallel seed processes (see ``gnnpretrain.runtime``)."""
    from gnnpretrain.runtime import apply_threads, current_busy, plan_jobs, usable_cores
    from gnnpretrain.utils import resolve_device

    try:
        on_gpu = resolve_device(args.device).type == "cuda"
    except ValueError:
        on_gpu = False  # FinetuneConfig reports the bad device
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if on_gpu:  # one process drives the GPU; CPU threads matter little
        return args.threads, args.jobs or 1
    # fused or not, seeds are dealt to parallel processes of one thread each (fused: each process
    # trains its share of the seeds as fused groups)
    if args.jobs is not None:
        jobs = args.jobs
    else:
        busy = 0.0 if args.threads is not None else current_busy()
        jobs = 1 if args.threads is not None else plan_jobs(usable_cores(), busy, len(seeds))
    plan = apply_threads(args.threads, processes=jobs)
    return plan.threads, jobs


def _parse(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parser and the arguments; a ``--config FILE`` sets the defaults first (flags still win)."""
    from gnnpretrain.cli_help import config_file_defaults

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--domain", default=None)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    parser = build_parser(known.domain or "chem")
    if known.config:
        defaults = config_file_defaults(parser, known.config)
        if known.domain is None and defaults.get("domain", "chem") != "chem":
            parser = build_parser(defaults["domain"])
        parser.set_defaults(**defaults)
    return parser, parser.parse_args(argv)


def _check_hpopt(args: argparse.Namespace) -> None:
    """Search options without --hpopt, a bad N, or a missing extra: one line, before any work."""
    from gnnpretrain.errors import UserError

    search_only = {"--storage": args.storage, "--study-name": args.study_name, "--hpopt-seeds": args.hpopt_seeds,
                   "--hpopt-params": args.hpopt_params}
    given = [k for k, v in search_only.items() if v is not None]
    if args.address is not None and args.engine != "ray":
        raise UserError("--address is the Ray cluster of --engine ray")
    if args.hpopt is None:
        if given:
            raise UserError(f"{', '.join(given)} only {'applies' if len(given) == 1 else 'apply'} to a "
                            "hyperparameter search: add --hpopt N")
        if args.engine == "ray":  # the seeds as Ray tasks
            if args.jobs is not None:
                raise UserError("--jobs sets local worker processes; with --engine ray the cluster's CPUs set the "
                                "parallelism (--threads = torch threads per Ray task)")
            from gnnpretrain.raycluster import require_ray

            require_ray()
        return
    if args.hpopt < 1:
        raise UserError(f"--hpopt N: N is the number of trials, at least 1 (got {args.hpopt})")
    if args.jobs is not None and args.engine != "ray":
        raise UserError("--jobs with --hpopt is the Ray trials at once (--engine ray); the local engine runs one trial "
                        "at a time: for more, run the same command in several processes with one --storage URL")
    from gnnpretrain.raycluster import require_optuna, require_ray

    require_optuna()
    if args.engine == "ray":
        require_ray()


def _run_search(args: argparse.Namespace, config) -> dict:
    from gnnpretrain.train.hpopt import HpoptOptions, run_hpopt

    options = HpoptOptions(trials=args.hpopt, storage=args.storage, study_name=args.study_name,
                           seeds=args.hpopt_seeds or "0", params=args.hpopt_params, engine=args.engine or "local",
                           address=args.address, jobs=args.jobs, threads=args.threads or 1)
    summary = run_hpopt(config, options)
    best = summary["best"]
    if best is None:
        print(f"no complete trial yet ({summary['finished']} finished); trials in {summary['trials_csv']}")
    else:
        test = best["test_score"]
        print(f"best: trial {best['number']}, valid {summary['metric']} {best['value']:.4f}"
              f"{'' if test is None else f' (test {test:.4f}, not used for the choice)'}, "
              + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items()))
        print(f"fine-tune it on every seed: python scripts/finetune.py --config {summary['best_json']}")
    print(f"search: {summary['folder']} (trials.csv, trials.png)")
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser, args = _parse(argv)
    _check_hpopt(args)

    from gnnpretrain.train import FinetuneConfig, output_dir, run_finetune, summary_line
    from gnnpretrain.utils import parse_seeds

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as err:
        parser.error(str(err))
    if args.dataset is None:
        names = task_names(args.domain)
        args.dataset = DOMAIN_DATASET.get(args.domain) or (names[0] if names else None)
        if args.dataset is None:
            parser.error(f"--dataset is required for --domain {args.domain}")
    if not accepts_dataset(args.domain, args.dataset):
        names = task_names(args.domain)
        parser.error(f"argument --dataset: invalid choice: {args.dataset!r} (choose from {', '.join(names)}"
                     f"{', a .csv path or moleculeace:TARGET' if args.domain == 'chem' else ''})")
    csv_only = {"--smiles-column": args.smiles_column, "--target-columns": args.target_columns, "--task": args.task}
    if not args.dataset.lower().endswith((".csv", ".csv.gz")) and any(v is not None for v in csv_only.values()):
        parser.error(f"{', '.join(k for k, v in csv_only.items() if v is not None)} only apply to a CSV --dataset")
    if args.epochs is None:
        args.epochs = DOMAIN_EPOCHS.get(args.domain, 100)
    if args.hpopt is not None:  # trials one at a time (local: this process's threads; ray: --threads per trial)
        from gnnpretrain.runtime import apply_threads

        seeds = args.hpopt_seeds or "0"
        threads = apply_threads(args.threads, processes=1).threads if args.engine != "ray" else None
        jobs, args.fused = 1, False
    elif args.engine == "ray":  # --threads per Ray task; the cluster's CPUs set the parallelism
        threads, jobs = args.threads or 1, 1
    else:
        threads, jobs = _cpu_plan(args, seeds)
    if args.fused is None:  # fused where it is measured faster: on CPU, fp32 and bf16 (benchmarks/RESULTS.md)
        from gnnpretrain.train.fused import fused_by_default

        args.fused = fused_by_default(args.device)
    try:
        config = FinetuneConfig(
            dataset=args.dataset, domain=args.domain, input_model_file=args.input_model_file,
            gnn_type=args.gnn_type, num_layer=args.num_layer, emb_dim=args.emb_dim, JK=args.JK,
            graph_pooling=args.graph_pooling, dropout=args.dropout, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, decay=args.decay, seeds=seeds, split=args.split,
            split_seed=args.split_seed, featurizer=args.featurizer, data_root=args.data_root,
            cache=args.cache, output=args.output, name=args.name, device=args.device,
            num_workers=args.num_workers, num_threads=threads, jobs=jobs, report=args.report, overwrite=args.overwrite,
            progress=not args.no_progress, trust_pickle=args.trust_pickle, smiles_column=args.smiles_column,
            target_columns=args.target_columns, task_type=args.task,
            amp="force" if args.amp_dtype == "bf16" else args.amp, fuse_max=args.fuse_max,
            fused_kernels=args.fused_kernels,
            fused=args.fused, freeze=args.freeze,
        )
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if args.hpopt is not None:
        return _run_search(args, config)
    summary = run_finetune(config, engine=args.engine or "local", address=args.address)
    print(summary_line(summary))
    print(f"results: {output_dir(config)}")
    return summary


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
