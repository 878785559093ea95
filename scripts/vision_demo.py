#!/usr/bin/env python
"""Train a small MobileNet/EfficientNet on scikit-learn's digits (real data, CPU, ~1-2 minutes).

    python scripts/vision_demo.py                      # MobileNetV3-Small, 5 epochs, 32x32 inputs
    python scripts/vision_demo.py --model mobilenet_v2_035 --epochs 3 --out results/vision_demo.json

Prints the model's size, per-epoch training loss (with a progress bar) and the test accuracy on a
stratified 20% held-out split; ``--out`` also writes the numbers as JSON (atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from gnnpretrain.utils import atomic_write_json, seed_everything  # noqa: E402
from gnnpretrain.vision import count_macs, create_model, default_resolution, list_models  # noqa: E402
from gnnpretrain.vision.digits import load_digits_images, train_digits  # noqa: E402


def model_table() -> str:
    """Markdown table: name, native resolution, parameters (1000 classes; 21 for LR-ASPP), MACs."""
    rows = ["| model | input | params | MACs |", "|---|---|---|---|"]
    for name in list_models():
        with torch.device("meta"):  # no weights allocated: counting B7 takes about a second
            model = create_model(name)
        res = default_resolution(name)
        params = sum(p.numel() for p in model.parameters())
        rows.append(f"| {name} | {res} | {params:,} | {count_macs(model, res) / 1e6:,.1f}M |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v3_small", choices=list_models("classification"))
    ap.add_argument("--size", type=int, default=32, help="input resolution the 8x8 digits are upsampled to")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 is fastest on a small, shared CPU: no thread barriers)")
    ap.add_argument("--out", type=Path, default=None, help="optional JSON results file")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--table", action="store_true",
                    help="instead of training, print a markdown table of every registered model's "
                         "parameters and MACs at its native resolution (meta-device builds, ~10 s)")
    args = ap.parse_args(argv)
    if args.table:
        print(model_table())
        return {}
    if args.epochs < 1:
        ap.error(f"--epochs must be >= 1, got {args.epochs}")

    torch.set_num_threads(max(1, args.threads))
    seed_everything(args.seed)
    data = load_digits_images(args.size, seed=args.seed)
    model = create_model(args.model, num_classes=10)
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, args.size)
    print(f"{args.model}: {params:,} parameters, {macs / 1e6:.2f}M MACs at {args.size}x{args.size}; "
          f"digits: {len(data.y_train)} train / {len(data.y_test)} test images")
    result = train_digits(model, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          seed=args.seed, progress=not args.no_progress)
    for h in result["history"]:
        print(f"epoch {h['epoch']}: train loss {h['train_loss']:.4f}")
    print(f"test accuracy: {result['test_accuracy']:.4f} ({len(data.y_test)} images), "
          f"training time {result['seconds']:.0f}s")
    out = {"model": args.model, "size": args.size, "epochs": args.epochs, "batch_size": args.batch_size,
           "lr": args.lr, "seed": args.seed, "params": params, "macs": macs, **result}
    if args.out is not None:
        atomic_write_json(args.out, out)
    return out


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
