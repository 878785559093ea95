#!/usr/bin/env python
"""Pre-train a GNN encoder with one strategy (context prediction, attribute masking, edge prediction,
deep graph infomax or supervised), with the defaults of Hu et al. (2020).

Examples:
    python scripts/pretrain.py --strategy contextpred --max-molecules 20000 --epochs 2
    python scripts/pretrain.py --strategy supervised --input-model-file chem/runs/pretrain/contextpred/model.pth
    torchrun --nproc_per_node 2 scripts/pretrain.py --strategy attrmasking   # DistributedDataParallel
    python scripts/pretrain.py --strategy contextpred --resume               # continue an interrupted run

The run directory (``--output``, default ``<domain>/runs/pretrain/<strategy>``) receives config.json,
metrics.jsonl, model.pth (encoder state dict for ``finetune.py --input-model-file``) and
checkpoint.pth (for ``--resume``). All training logic lives in ``gnnpretrain.train.pretrain``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from gnnpretrain.runtime import add_threads_argument, exit_quietly_on_interrupt, prefer_passive_openmp  # noqa: E402

if __name__ == "__main__":
    exit_quietly_on_interrupt()  # one line, exit 130, even for a Ctrl-C during the imports below
prefer_passive_openmp()  # before torch loads OpenMP

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from gnnpretrain.nn import GNN_TYPES, JK_MODES  # noqa: E402
from gnnpretrain.strategies import get_strategy_class, strategy_names, strategy_option_names  # noqa: E402
from gnnpretrain.chem.chembl import DEFAULT_MIN_ACTIVES, DEFAULT_MIN_INACTIVES  # noqa: E402
from gnnpretrain.cli_help import RawDefaultsHelpFormatter  # noqa: E402
from gnnpretrain.train.pretrain import pretrain  # noqa: E402
from gnnpretrain.train.pretrain_data import dataset_num_tasks, load_pretrain_dataset, make_pretrain_loader  # noqa: E402
from gnnpretrain.utils import resolve_device, seed_everything  # noqa: E402

DOMAINS = ("chem", "bio")
#: CLI flag (dest) -> strategy keyword; None default means "not given" (the strategy's default applies).
STRATEGY_FLAGS = ("csize", "mode", "neg_samples", "context_pooling", "mask_rate", "mask_edge", "batch_auc")
CHEMBL_FLAGS = ("active_threshold", "min_actives", "min_inactives", "exclude_downstream")


def _register_domains() -> None:
    """Import the modules that register non-chem strategies/datasets (bio), if they exist yet."""
    for mod in ("gnnpretrain.bio.strategies", "gnnpretrain.bio.pretrain_data"):
        try:
            __import__(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def build_parser() -> argparse.ArgumentParser:
    _register_domains()
    p = argparse.ArgumentParser(
        description="Pre-train a GNN encoder (Hu et al. 2020 strategies).",
        formatter_class=RawDefaultsHelpFormatter,
    )
    p.add_argument("--strategy", required=True, choices=strategy_names(), help="pre-training strategy")
    p.add_argument("--domain", default="chem", choices=DOMAINS)
    g = p.add_argument_group("encoder")
    g.add_argument("--gnn-type", default="gin", choices=GNN_TYPES)
    g.add_argument("--num-layer", type=int, default=5)
    g.add_argument("--emb-dim", type=int, default=300)
    g.add_argument("--JK", "--jk", dest="JK", default="last", choices=JK_MODES)
    g.add_argument("--dropout", type=float, default=0.0, help="dropout ratio")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=100)
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--decay", type=float, default=0.0, help="weight decay")
    g.add_argument("--num-workers", type=int, default=0,
                   help="loader prefetch; also the featurization processes when > 0 (0: the free cores)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g.add_argument("--seed", type=int, default=0)
    add_threads_argument(g)
    g.add_argument("--amp", action="store_true",
                   help="bf16 autocast where the device multiplies bf16 natively (CUDA compute capability 8.0+, CPUs "
                   "with AVX512-BF16/AMX-BF16); elsewhere fp32, said in one line")
    g.add_argument("--amp-dtype", default="auto", choices=("auto", "bf16"),
                   help="with --amp: auto = bf16 where native, else fp32; bf16 = bf16 or an error (exit 2) where "
                   "it is not native (implies --amp)")
    g.add_argument("--resume", action="store_true", help="continue the run in --output from its last finished epoch")
    g.add_argument("--overwrite", action="store_true", help="start afresh even if --output holds a run")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("files")
    g.add_argument("--output", default=None, help="run directory (default: <domain>/runs/pretrain/<strategy>)")
    g.add_argument("--output-model-file", default=None, help="encoder state dict (default: <output>/model.pth)")
    g.add_argument("--input-model-file", default=None, help="start the encoder from this state dict")
    g.add_argument("--trust-pickle", action="store_true",
                   help="let --input-model-file / --resume read a checkpoint holding Python objects besides tensors "
                   "(unpickling runs code: only for files you trust)")
    g.add_argument("--data-root", default=None, help="raw data folder (default: $GNNPRETRAIN_DATA, else shared/data "
                   "beside the checkout)")
    g.add_argument("--cache", default=None, help="processed-tensor cache (default: $GNNPRETRAIN_CACHE, else "
                   "~/.cache/gnnpretrain)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=None,
                   help="zinc | zinc_standard_agent | chembl | PATH.csv (default: zinc, or chembl for supervised)")
    g.add_argument("--smiles-column", default=None, help="SMILES column of a CSV corpus")
    g.add_argument("--max-molecules", type=int, default=None, help="use a fixed-seed sample of N molecules (default: all)")
    g.add_argument("--featurizer", default="reference", choices=("reference", "ogb"), help="chem atom/bond features")
    g.add_argument("--active-threshold", type=float, default=None, help="chembl: pChEMBL >= this is active (default: 6.0)")
    g.add_argument("--min-actives", type=int, default=None, help=f"chembl: keep tasks with at least this many actives (default: {DEFAULT_MIN_ACTIVES})")
    g.add_argument("--min-inactives", type=int, default=None, help=f"chembl: ... and inactives (default: {DEFAULT_MIN_INACTIVES})")
    g.add_argument("--no-exclude-downstream", dest="exclude_downstream", action="store_const", const=False,
                   default=None, help="chembl: keep molecules of the downstream test sets")
    g = p.add_argument_group("strategy options (only those of the chosen strategy may be given)")
    g.add_argument("--csize", type=int, default=None, help="contextpred: context ring width (default: 3)")
    g.add_argument("--mode", default=None, choices=("cbow", "skipgram"), help="contextpred (default: cbow)")
    g.add_argument("--neg-samples", type=int, default=None, help="contextpred: negatives per positive (default: 1)")
    g.add_argument("--context-pooling", default=None, choices=("mean", "sum", "max"),
                   help="contextpred (default: mean)")
    g.add_argument("--mask-rate", type=float, default=None, help="attrmasking: fraction of atoms masked (default: 0.15)")
    g.add_argument("--mask-edge", action="store_const", const=True, default=None, help="attrmasking: also mask bonds")
    g.add_argument("--batch-auc", action="store_const", const=True, default=None, help="supervised: log batch ROC-AUC")
    return p


def _strategy_options(args, cls, parser: argparse.ArgumentParser) -> dict:
    accepted = set(strategy_option_names(cls))
    opts = {}
    for flag in STRATEGY_FLAGS:
        value = getattr(args, flag)
        if value is None:
            continue
        if flag not in accepted:
            parser.error(f"--{flag.replace('_', '-')} does not apply to strategy {args.strategy!r} (its options: {sorted(accepted)})")
        opts[flag] = value
    return opts


def _output(args) -> Path:
    return Path(args.output) if args.output else Path(args.domain) / "runs" / "pretrain" / args.strategy


def _encoder_input(args) -> str:
    if args.domain == "bio":
        return "bio"
    return args.featurizer


def main(argv: list[str] | None = None):
    """Parse arguments and pre-train; returns ``(strategy, history)`` (used by tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cls = get_strategy_class(args.strategy, args.domain)
    except ValueError as e:
        parser.error(str(e))
    strategy_opts = _strategy_options(args, cls, parser)
    for name in ("epochs", "batch_size", "num_layer", "emb_dim"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.max_molecules is not None and args.max_molecules < 1:
        parser.error(f"--max-molecules must be a positive integer, got {args.max_molecules}")
    if not 0.0 <= args.dropout < 1.0:
        parser.error(f"--dropout must be in [0, 1), got {args.dropout}")

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(args.device)
    if args.amp_dtype == "bf16":  # refused in the first second (one line, exit 2), not after loading data
        from gnnpretrain.hardware import resolve_amp

        resolve_amp("force", device)
    if device.type == "cpu":
        from gnnpretrain.runtime import apply_threads

        local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
        apply_threads(args.threads, processes=local, log=print if rank == 0 else (lambda _m: None))
    elif args.threads is not None:
        torch.set_num_threads(args.threads)
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _run(args, cls, strategy_opts, device, rank, world_size)
    finally:
        if world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _check_files(args, cls, output: Path) -> None:
    """Everything that can fail on the user's files, checked before the (long) data loading:
    the output folder (writable, not holding a run unless --resume/--overwrite) and the checkpoints
    that will be read (safe to load, not truncated)."""
    from gnnpretrain.errors import OutputExistsError
    from gnnpretrain.outputs import ensure_writable
    from gnnpretrain.safeload import load_torch
    from gnnpretrain.train.pretrain import CHECKPOINT_NAME

    ensure_writable(output, option="--output")
    if args.output_model_file:
        ensure_writable(Path(args.output_model_file).parent, option="--output-model-file")
    ckpt = output / CHECKPOINT_NAME
    if ckpt.exists() and not (args.resume or args.overwrite):
        raise OutputExistsError(
            f"{output} already holds a pre-training run ({CHECKPOINT_NAME}); pass --resume to continue it, "
            "--overwrite to start it again, or choose another --output directory"
        )
    if args.resume and ckpt.exists():
        load_torch(ckpt, trust_pickle=args.trust_pickle, what="pre-training checkpoint")
        from gnnpretrain.train.pretrain import check_resume_config_early

        check_resume_config_early(output, {
            "strategy": args.strategy, "domain": args.domain,
            "encoder": {"num_layer": args.num_layer, "emb_dim": args.emb_dim, "JK": args.JK,
                        "drop_ratio": args.dropout, "gnn_type": args.gnn_type, "input": _encoder_input(args)},
            "training": {"lr": float(args.lr), "weight_decay": float(args.decay), "seed": int(args.seed)},
            "batch_size": args.batch_size,
            "data": {"dataset": args.dataset or cls.default_dataset, "max_molecules": args.max_molecules,
                     "smiles_column": args.smiles_column, "featurizer": args.featurizer},
        })
    if args.input_model_file:
        if Path(args.input_model_file).suffix != ".safetensors":
            load_torch(args.input_model_file, trust_pickle=args.trust_pickle, what="--input-model-file checkpoint")


def _run(args, cls, strategy_opts: dict, device: torch.device, rank: int, world_size: int):
    output = _output(args)
    if rank != 0:
        return _run_locked(args, cls, strategy_opts, device, rank, world_size, output)
    from gnnpretrain.outputs import output_lock

    _check_files(args, cls, output)
    with output_lock(output, command="pretrain.py " + " ".join(sys.argv[1:]) if argv_is_cli() else None):
        return _run_locked(args, cls, strategy_opts, device, rank, world_size, output)


def _run_locked(args, cls, strategy_opts: dict, device: torch.device, rank: int, world_size: int, output: Path):
    dataset_name = args.dataset or cls.default_dataset
    data_opts = {k: getattr(args, k) for k in CHEMBL_FLAGS if getattr(args, k) is not None}
    seed_everything(args.seed)

    def load():
        return load_pretrain_dataset(
            dataset_name, args.domain, data_root=args.data_root, cache=args.cache, max_molecules=args.max_molecules,
            smiles_column=args.smiles_column, featurizer=args.featurizer,
            num_workers=args.num_workers or None, **data_opts,
        )

    # Rank 0 builds the processed cache first; the others then read it instead of racing to write it.
    if world_size > 1 and rank != 0:
        dist.barrier()
    dataset = load()
    if world_size > 1 and rank == 0:
        dist.barrier()
    if rank == 0:
        meta = getattr(dataset, "meta", None)
        skipped = getattr(dataset, "num_skipped", None) or (meta.get("num_skipped") if isinstance(meta, dict) else None)
        print(f"pre-training data: {dataset_name} ({len(dataset)} graphs"
              + (f", {skipped} unparseable SMILES skipped" if skipped else "") + ")")

    encoder_kwargs = dict(num_layer=args.num_layer, emb_dim=args.emb_dim, JK=args.JK, drop_ratio=args.dropout,
                          gnn_type=args.gnn_type, input=_encoder_input(args))
    if "num_tasks" in strategy_option_names(cls):
        strategy_opts["num_tasks"] = dataset_num_tasks(dataset)
    seed_everything(args.seed)  # same initial weights on every rank and for every dataset size
    strategy = cls(encoder_kwargs, **strategy_opts)
    if args.input_model_file:
        from gnnpretrain.nn import load_encoder_state

        load_encoder_state(strategy.encoder, args.input_model_file, trust_pickle=args.trust_pickle)

    loader = make_pretrain_loader(dataset, args.batch_size, shuffle=True, seed=args.seed, rank=rank,
                                  world_size=world_size, num_workers=args.num_workers)
    config = {
        "data": {"dataset": dataset_name, "max_molecules": args.max_molecules, "smiles_column": args.smiles_column,
                 "featurizer": args.featurizer, "num_graphs": len(dataset), **data_opts},
        "batch_size": args.batch_size,
        "input_model_file": args.input_model_file,
        "num_workers": args.num_workers,
        "device": str(device),
        "data_root": args.data_root,
        "cache": args.cache,
        "command": "pretrain.py " + " ".join(sys.argv[1:]) if argv_is_cli() else None,
    }
    history = pretrain(
        strategy, loader, epochs=args.epochs, lr=args.lr, weight_decay=args.decay, device=device, out_dir=output,
        resume=args.resume, amp=_amp_request(args), config=config, output_model_file=args.output_model_file, seed=args.seed,
        overwrite=args.overwrite, progress=not args.no_progress, trust_pickle=args.trust_pickle,
    )
    return strategy, history


def _amp_request(args) -> bool | str:
    """``--amp`` -> bf16 where native (``True``); ``--amp-dtype bf16`` -> bf16 or an error (``"force"``)."""
    if args.amp_dtype == "bf16":
        return "force"
    return bool(args.amp)


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name == Path(__file__).name


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
