"""Multiply-add counting by the convention of the MobileNet/EfficientNet papers.

The papers count the multiply-adds of convolutions and fully connected layers only (no BN,
activations, pooling, residual adds or SE gating products). ``torch.utils.flop_counter`` counts
exactly those matrix ops (convolution, mm/addmm/bmm) as 2 FLOPs per multiply-add, so
MACs = FLOPs / 2.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _input_shape(input_size: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_size, int):
        return (1, 3, input_size, input_size)
    shape = tuple(int(s) for s in input_size)
    if len(shape) == 2:
        return (1, 3) + shape
    if len(shape) == 3:
        return (1,) + shape
    if len(shape) == 4:
        return shape
    raise ValueError(
        f"input_size must be an int resolution, (H, W), (C, H, W) or (N, C, H, W); got {input_size!r}"
    )


def count_macs(model: nn.Module, input_size: int | Sequence[int] = 224) -> int:
    """Multiply-adds of one forward pass *per image* for an input of ``input_size``.

    The model runs in eval mode under ``torch.no_grad`` on a zero input placed on the model's device;
    build the model under ``with torch.device("meta"):`` to count large models in milliseconds
    without allocating weights. The model's train/eval mode is restored afterwards.
    """
    shape = _input_shape(input_size)
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    x = torch.zeros(shape, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2 // shape[0])
