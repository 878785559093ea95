"""A small, real, CPU-sized image task: scikit-learn's handwritten digits as RGB images.

``load_digits`` ships inside scikit-learn (1,797 8x8 grey images, 10 classes), so this needs no
download. The images are upsampled bilinearly (default 32x32, enough for a stride-32 network to end
on a 1x1 map) and repeated to 3 channels so the ImageNet-shaped models take them unchanged. Used by
``scripts/vision_demo.py`` and the vision tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass
class DigitsSplit:
    x_train: Tensor  # [N, 3, S, S] float, standardised
    y_train: Tensor  # [N] long
    x_test: Tensor
    y_test: Tensor


def load_digits_images(size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """Stratified train/test split of the digits, upsampled to ``size`` x ``size`` x 3 channels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if size < 8:
        raise ValueError(f"size must be >= 8 (the digits are 8x8), got {size}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8], 0..1
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    y = torch.tensor(d.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        torch.arange(len(y)).numpy(), test_size=test_fraction, random_state=seed, stratify=y.numpy()
    )
    idx_train, idx_test = torch.as_tensor(idx_train), torch.as_tensor(idx_test)
    mean, std = x[idx_train].mean(), x[idx_train].std()
    x = (x - mean) / std
    return DigitsSplit(x[idx_train], y[idx_train], x[idx_test], y[idx_test])


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy in eval mode."""
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(y)


def train_digits(
    model: nn.Module,
    data: DigitsSplit,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train ``model`` (10 outputs) with AdamW + cosine schedule; return losses, accuracy and time.

    The digits set is tiny, so the batch-norm running averages of models built with the slow TF
    momentum (0.01) would still be dominated by their initial values after a few hundred steps; the
    running statistics are therefore re-estimated on the training set (a standard "BN recalibration")
    before evaluation.
    """
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(data.y_train) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    history: list[dict] = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(data.y_train), generator=g)
        total, seen = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=True)
        for step in bar:
            idx = perm[step * batch_size : (step + 1) * batch_size]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        history.append({"epoch": epoch + 1, "train_loss": total / seen})
    recalibrate_bn(model, data.x_train, batch_size=256)
    acc = evaluate(model, data.x_test, data.y_test)
    return {"history": history, "test_accuracy": acc, "seconds": time.perf_counter() - t0}


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: Tensor, batch_size: int = 256) -> None:
    """Re-estimate every BatchNorm's running mean/var as a cumulative average over ``x``."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.eval()  # dropout / stochastic depth off ...
    for m in bns:
        m.train()  # ... while only the BN layers collect statistics
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
