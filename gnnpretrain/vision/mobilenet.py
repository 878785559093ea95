"""MobileNet V1 (Howard et al. 2017), V2 (Sandler et al. 2018) and V3 (Howard et al. 2019).

Each family is written as a configuration table with one row per row of the paper's architecture
table, plus one builder, so a reader can check every row against the paper. All models expose
``features`` (an ``nn.Sequential`` whose entries carry ``out_channels`` / ``stride``), global average
pooling, and ``classifier``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .layers import ConvBNAct, DepthwiseSeparable, InvertedResidual, InvertedResidualV3, make_divisible


def _check_common(num_classes: int, width_mult: float, dropout: float) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult!r} (the papers use 0.25..1.4)")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def init_weights(model: nn.Module) -> None:
    """The reference initialisation: Kaiming-normal (fan-out) convs, BN = identity, small-normal FC."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ImageClassifier(nn.Module):
    """``features`` -> global average pool -> flatten -> ``classifier`` (shared by all families)."""

    def __init__(self, features: nn.Sequential, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)


# --------------------------------------------------------------------------------------------------
# MobileNet V1 — paper Table 1. Rows: (output channels, stride) of each depthwise-separable block.
# The table's second-to-last "Conv dw / s2" at 7x7 input is a known typo: that depthwise conv has
# stride 1 (the output stays 7x7), which the reference implementations and the MAC count confirm.
# --------------------------------------------------------------------------------------------------
MOBILENET_V1_STEM = 32  # Conv / s2, 3x3x3x32
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),  # "5x" rows
    (1024, 2),
    (1024, 1),  # the last depthwise conv has stride 1
)


def mobilenet_v1(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 1e-3) -> ImageClassifier:
    """MobileNet V1 (paper Table 1) with width multiplier ``alpha = width_mult``.

    Activations are ReLU6 (the TF-slim reference; the paper writes ReLU, which is identical in shape
    and parameters). Channels are ``make_divisible(c * width_mult, 8)``, which equals the paper's
    ``alpha * c`` for alpha in {1, 0.75, 0.5, 0.25}. The default dropout 1e-3 is TF-slim's
    ``dropout_keep_prob=0.999``.
    """
    _check_common(num_classes, width_mult, dropout)
    c = lambda ch: make_divisible(ch * width_mult, 8)  # noqa: E731
    in_ch = c(MOBILENET_V1_STEM)
    layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2, activation_layer=nn.ReLU6)]
    for out, stride in MOBILENET_V1_BLOCKS:
        layers.append(DepthwiseSeparable(in_ch, c(out), stride))
        in_ch = c(out)
    classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_ch, num_classes))
    model = ImageClassifier(nn.Sequential(*layers), classifier)
    init_weights(model)
    return model


# --------------------------------------------------------------------------------------------------
# MobileNet V2 — paper Table 2. Rows: (expansion t, output channels c, repeats n, first stride s).
# --------------------------------------------------------------------------------------------------
MOBILENET_V2_STEM = 32  # conv2d 3x3, s2
MOBILENET_V2_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENET_V2_HEAD = 1280  # conv2d 1x1; never shrunk below its width-1.0 size


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> ImageClassifier:
    """MobileNet V2 (paper Table 2) with width multiplier ``width_mult``.

    Every layer's width is ``make_divisible(c * width_mult, 8)`` except the 1280-channel head, which
    the paper keeps at 1280 for multipliers below 1 (and widens above 1).
    """
    _check_common(num_classes, width_mult, dropout)
    in_ch = make_divisible(MOBILENET_V2_STEM * width_mult, 8)
    head = make_divisible(MOBILENET_V2_HEAD * max(1.0, width_mult), 8)
    layers: list[nn.Module] = [ConvBNAct(3, in_ch, 3, 2, activation_layer=nn.ReLU6)]
    for t, ch, n, s in MOBILENET_V2_BLOCKS:
        out = make_divisible(ch * width_mult, 8)
        for i in range(n):
            layers.append(InvertedResidual(in_ch, out, s if i == 0 else 1, expand_ratio=t))
            in_ch = out
    layers.append(ConvBNAct(in_ch, head, 1, activation_layer=nn.ReLU6))
    classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head, num_classes))
    model = ImageClassifier(nn.Sequential(*layers), classifier)
    init_weights(model)
    return model


# --------------------------------------------------------------------------------------------------
# MobileNet V3 — paper Table 1 (Large) and Table 2 (Small).
# --------------------------------------------------------------------------------------------------
class BneckRow(NamedTuple):
    """One "bneck" row of the V3 tables: input, kernel, expansion size, output, SE, NL (HS?), stride."""

    in_ch: int
    kernel: int
    exp: int
    out: int
    se: bool
    hs: bool
    stride: int


RE, HS = False, True  # the tables' "NL" column
_B = BneckRow
MOBILENET_V3_LARGE: tuple[BneckRow, ...] = (  # stem: conv2d 3x3 s2 -> 16, h-swish
    _B(16, 3, 16, 16, False, RE, 1),
    _B(16, 3, 64, 24, False, RE, 2),
    _B(24, 3, 72, 24, False, RE, 1),
    _B(24, 5, 72, 40, True, RE, 2),
    _B(40, 5, 120, 40, True, RE, 1),
    _B(40, 5, 120, 40, True, RE, 1),
    _B(40, 3, 240, 80, False, HS, 2),
    _B(80, 3, 200, 80, False, HS, 1),
    _B(80, 3, 184, 80, False, HS, 1),
    _B(80, 3, 184, 80, False, HS, 1),
    _B(80, 3, 480, 112, True, HS, 1),
    _B(112, 3, 672, 112, True, HS, 1),
    _B(112, 5, 672, 160, True, HS, 2),
    _B(160, 5, 960, 160, True, HS, 1),
    _B(160, 5, 960, 160, True, HS, 1),
)  # then conv2d 1x1 -> 960 (HS), pool, 1x1 "conv" (a linear layer) -> 1280 (HS), -> k
MOBILENET_V3_LARGE_HEAD = 1280

MOBILENET_V3_SMALL: tuple[BneckRow, ...] = (  # stem: conv2d 3x3 s2 -> 16, h-swish
    _B(16, 3, 16, 16, True, RE, 2),
    _B(16, 3, 72, 24, False, RE, 2),
    _B(24, 3, 88, 24, False, RE, 1),
    _B(24, 5, 96, 40, True, HS, 2),
    _B(40, 5, 240, 40, True, HS, 1),
    _B(40, 5, 240, 40, True, HS, 1),
    _B(40, 5, 120, 48, True, HS, 1),
    _B(48, 5, 144, 48, True, HS, 1),
    _B(48, 5, 288, 96, True, HS, 2),
    _B(96, 5, 576, 96, True, HS, 1),
    _B(96, 5, 576, 96, True, HS, 1),
)  # then conv2d 1x1 -> 576 (SE in the table; none in the released models), pool, -> 1024 (HS), -> k
MOBILENET_V3_SMALL_HEAD = 1024


def _mobilenet_v3(
    rows: tuple[BneckRow, ...],
    head: int,
    num_classes: int,
    width_mult: float,
    dropout: float,
    dilated: bool,
    reduced_tail: bool,
) -> ImageClassifier:
    _check_common(num_classes, width_mult, dropout)
    # The last stage (from the final stride-2 row on) is optionally halved ("reduced tail", used by
    # the detection/segmentation variants) and/or dilated to keep output stride 16.
    last_stage = max(i for i, r in enumerate(rows) if r.stride == 2)
    div = 2 if reduced_tail else 1
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)  # TF defaults of the reference
    c = lambda ch: make_divisible(ch * width_mult, 8)  # noqa: E731
    layers: list[nn.Module] = [ConvBNAct(3, c(rows[0].in_ch), 3, 2, norm_layer=norm, activation_layer=nn.Hardswish)]
    for i, r in enumerate(rows):
        tail = i >= last_stage
        in_ch = r.in_ch // div if tail and i > last_stage else r.in_ch
        exp = r.exp // div if tail and i > last_stage else r.exp
        out = r.out // div if tail else r.out
        layers.append(
            InvertedResidualV3(c(in_ch), r.kernel, c(exp), c(out), r.se, r.hs, r.stride,
                               dilation=2 if (dilated and tail) else 1, norm_layer=norm)
        )
    last_in = layers[-1].out_channels
    last_conv = 6 * last_in
    layers.append(ConvBNAct(last_in, last_conv, 1, norm_layer=norm, activation_layer=nn.Hardswish))
    head_ch = c(head // div)
    classifier = nn.Sequential(
        nn.Linear(last_conv, head_ch),
        nn.Hardswish(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(head_ch, num_classes),
    )
    model = ImageClassifier(nn.Sequential(*layers), classifier)
    init_weights(model)
    return model


def mobilenet_v3_large(
    num_classes: int = 1000,
    width_mult: float = 1.0,
    dropout: float = 0.2,
    dilated: bool = False,
    reduced_tail: bool = False,
) -> ImageClassifier:
    """MobileNetV3-Large (paper Table 1). ``dilated`` keeps output stride 16 in the last stage;
    ``reduced_tail`` halves the last stage's channels (paper Sec. 6.1.2/6.1.3)."""
    return _mobilenet_v3(MOBILENET_V3_LARGE, MOBILENET_V3_LARGE_HEAD, num_classes, width_mult, dropout,
                         dilated, reduced_tail)


def mobilenet_v3_small(
    num_classes: int = 1000,
    width_mult: float = 1.0,
    dropout: float = 0.2,
    dilated: bool = False,
    reduced_tail: bool = False,
) -> ImageClassifier:
    """MobileNetV3-Small (paper Table 2). Options as :func:`mobilenet_v3_large`."""
    return _mobilenet_v3(MOBILENET_V3_SMALL, MOBILENET_V3_SMALL_HEAD, num_classes, width_mult, dropout,
                         dilated, reduced_tail)


__all__ = [
    "ImageClassifier",
    "init_weights",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
]
