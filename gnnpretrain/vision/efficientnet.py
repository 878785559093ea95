"""EfficientNet B0–B7 (Tan & Le, ICML 2019).

The baseline network is the paper's Table 1 (one row per stage). The scaled variants use the
*official* per-variant (width, depth, resolution, dropout) table from the reference TF code, which
rounds the compound-scaling rule; :func:`compound_scaling` gives the rule itself.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

from torch import nn

from .layers import ConvBNAct, MBConv, make_divisible, round_repeats
from .mobilenet import ImageClassifier


class MBConvRow(NamedTuple):
    """One stage of EfficientNet-B0 (paper Table 1): MBConv expansion, kernel, first stride,
    input channels, output channels, number of layers."""

    expand: int
    kernel: int
    stride: int
    in_ch: int
    out_ch: int
    layers: int


_R = MBConvRow
EFFICIENTNET_B0_STAGES: tuple[MBConvRow, ...] = (  # stage 1: Conv3x3, s2, 32 channels (stem)
    _R(1, 3, 1, 32, 16, 1),   # stage 2: MBConv1, k3x3
    _R(6, 3, 2, 16, 24, 2),   # stage 3: MBConv6, k3x3
    _R(6, 5, 2, 24, 40, 2),   # stage 4: MBConv6, k5x5
    _R(6, 3, 2, 40, 80, 3),   # stage 5: MBConv6, k3x3
    _R(6, 5, 1, 80, 112, 3),  # stage 6: MBConv6, k5x5
    _R(6, 5, 2, 112, 192, 4), # stage 7: MBConv6, k5x5
    _R(6, 3, 1, 192, 320, 1), # stage 8: MBConv6, k3x3
)  # stage 9: Conv1x1 -> 1280, pooling, FC
EFFICIENTNET_STEM = 32
EFFICIENTNET_HEAD = 1280  # = 4 x 320; scaled with the width multiplier


class EfficientNetParams(NamedTuple):
    """Official per-variant coefficients: width mult, depth mult, input resolution, dropout."""

    width: float
    depth: float
    resolution: int
    dropout: float


EFFICIENTNET_PARAMS: dict[int, EfficientNetParams] = {
    0: EfficientNetParams(1.0, 1.0, 224, 0.2),
    1: EfficientNetParams(1.0, 1.1, 240, 0.2),
    2: EfficientNetParams(1.1, 1.2, 260, 0.3),
    3: EfficientNetParams(1.2, 1.4, 300, 0.3),
    4: EfficientNetParams(1.4, 1.8, 380, 0.4),
    5: EfficientNetParams(1.6, 2.2, 456, 0.4),
    6: EfficientNetParams(1.8, 2.6, 528, 0.5),
    7: EfficientNetParams(2.0, 3.1, 600, 0.5),
}


def compound_scaling(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> tuple[float, float, float]:
    """The paper's compound-scaling rule (Eq. 3): depth ``alpha**phi``, width ``beta**phi``,
    resolution ``gamma**phi`` multipliers, with ``alpha * beta**2 * gamma**2 ~= 2`` so FLOPs grow ~2^phi.

    This is the rule as stated; the released B1–B7 (and :func:`efficientnet`) use the official,
    hand-rounded table :data:`EFFICIENTNET_PARAMS` instead, which does not follow it exactly.
    """
    if min(alpha, beta, gamma) < 1.0:
        raise ValueError(f"compound scaling needs alpha, beta, gamma >= 1, got {(alpha, beta, gamma)}")
    return alpha**phi, beta**phi, gamma**phi


def efficientnet_from_multipliers(
    width_mult: float,
    depth_mult: float,
    num_classes: int = 1000,
    dropout: float = 0.2,
    stochastic_depth_prob: float = 0.2,
) -> ImageClassifier:
    """Build the B0 table scaled by arbitrary width/depth multipliers (channels via
    ``make_divisible(c * width_mult, 8)``, layers via ``ceil(n * depth_mult)``).

    The drop-connect probability grows linearly with the block's index over the whole network, from 0
    for the first block to ``stochastic_depth_prob * (N-1)/N`` for the last.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if width_mult <= 0 or depth_mult <= 0:
        raise ValueError(f"width/depth multipliers must be positive, got {(width_mult, depth_mult)}")
    if not 0.0 <= dropout < 1.0 or not 0.0 <= stochastic_depth_prob < 1.0:
        raise ValueError(f"dropout and stochastic_depth_prob must be in [0, 1), got {(dropout, stochastic_depth_prob)}")
    c = lambda ch: make_divisible(ch * width_mult, 8)  # noqa: E731
    # Batch-norm settings of the official TF code (epsilon 1e-3, decay 0.99).
    norm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
    total_blocks = sum(round_repeats(r.layers, depth_mult) for r in EFFICIENTNET_B0_STAGES)
    layers: list[nn.Module] = [ConvBNAct(3, c(EFFICIENTNET_STEM), 3, 2, norm_layer=norm, activation_layer=nn.SiLU)]
    block_id = 0
    for r in EFFICIENTNET_B0_STAGES:
        stage: list[nn.Module] = []
        in_ch, out_ch = c(r.in_ch), c(r.out_ch)
        for i in range(round_repeats(r.layers, depth_mult)):
            sd_prob = stochastic_depth_prob * block_id / total_blocks
            stage.append(MBConv(in_ch if i == 0 else out_ch, out_ch, r.kernel, r.stride if i == 0 else 1,
                                r.expand, sd_prob, norm_layer=norm))
            block_id += 1
        seq = nn.Sequential(*stage)
        seq.out_channels = out_ch  # type: ignore[assignment]
        seq.stride = r.stride  # type: ignore[assignment]
        layers.append(seq)
    last_in = c(EFFICIENTNET_B0_STAGES[-1].out_ch)
    head = 4 * last_in
    layers.append(ConvBNAct(last_in, head, 1, norm_layer=norm, activation_layer=nn.SiLU))
    classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(head, num_classes))
    model = ImageClassifier(nn.Sequential(*layers), classifier)
    _init_efficientnet(model)
    return model


def _init_efficientnet(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def efficientnet(
    phi: int,
    num_classes: int = 1000,
    dropout: float | None = None,
    stochastic_depth_prob: float = 0.2,
) -> ImageClassifier:
    """EfficientNet-B``phi`` (phi = 0..7) with the official width/depth/dropout of that variant.

    ``dropout=None`` takes the variant's dropout from :data:`EFFICIENTNET_PARAMS`. The variant's
    native input resolution is ``EFFICIENTNET_PARAMS[phi].resolution`` (also in the registry).
    """
    if phi not in EFFICIENTNET_PARAMS:
        raise ValueError(f"efficientnet: phi must be one of {sorted(EFFICIENTNET_PARAMS)}, got {phi!r}; "
                         "for other multipliers use efficientnet_from_multipliers(width, depth)")
    p = EFFICIENTNET_PARAMS[phi]
    return efficientnet_from_multipliers(p.width, p.depth, num_classes,
                                         p.dropout if dropout is None else dropout, stochastic_depth_prob)


def _variant(phi: int):
    def build(num_classes: int = 1000, dropout: float | None = None, stochastic_depth_prob: float = 0.2) -> ImageClassifier:
        return efficientnet(phi, num_classes, dropout, stochastic_depth_prob)

    p = EFFICIENTNET_PARAMS[phi]
    build.__name__ = build.__qualname__ = f"efficientnet_b{phi}"
    build.__doc__ = (f"EfficientNet-B{phi}: width {p.width}, depth {p.depth}, resolution {p.resolution}, "
                     f"dropout {p.dropout} (official table).")
    return build


efficientnet_b0 = _variant(0)
efficientnet_b1 = _variant(1)
efficientnet_b2 = _variant(2)
efficientnet_b3 = _variant(3)
efficientnet_b4 = _variant(4)
efficientnet_b5 = _variant(5)
efficientnet_b6 = _variant(6)
efficientnet_b7 = _variant(7)
