"""Building blocks shared by the MobileNet and EfficientNet families.

Every block that can sit in a model's ``features`` sequence carries two plain ``int`` attributes,
``out_channels`` and ``stride`` (the *effective* spatial stride, 1 for a dilated block), so that
:func:`gnnpretrain.vision.features.feature_info` can find the stage boundaries (strides 2..32)
without running the model.

Only PyTorch's built-in activation modules are used (``nn.ReLU``, ``nn.ReLU6``, ``nn.Hardswish``,
``nn.Hardsigmoid``, ``nn.SiLU``, ``nn.Sigmoid``) so that the models script with TorchScript, export
to ONNX and can be fused/quantized by the standard PyTorch tooling.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

ActLayer = Callable[..., nn.Module]
NormLayer = Callable[..., nn.Module]


def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never going below 90% of ``v``.

    This is the rounding the TensorFlow reference implementations of MobileNet V2/V3 and
    EfficientNet apply after multiplying channels by a width multiplier; hardware likes multiples of 8
    and the 90% floor stops small layers from losing too much capacity.
    """
    if divisor <= 0:
        raise ValueError(f"make_divisible: divisor must be a positive int, got {divisor!r}")
    if v <= 0:
        raise ValueError(f"make_divisible: channel count must be positive, got {v!r}")
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # rounding down removed more than 10%: go one step up
        new_v += divisor
    return int(new_v)


def round_repeats(repeats: int, depth_mult: float) -> int:
    """EfficientNet's depth scaling: the number of blocks in a stage, rounded *up* (ceil)."""
    if depth_mult <= 0:
        raise ValueError(f"depth multiplier must be positive, got {depth_mult!r}")
    return int(math.ceil(repeats * depth_mult))


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> optional activation, with "same" padding.

    ``padding = (kernel_size - 1) // 2 * dilation`` keeps the spatial size for stride 1 and halves it
    (rounding up) for stride 2, as in the reference implementations.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: Optional[NormLayer] = nn.BatchNorm2d,
        activation_layer: Optional[ActLayer] = nn.ReLU,
    ) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation=dilation,
                groups=groups,
                bias=norm_layer is None,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True) if _takes_inplace(activation_layer) else activation_layer())
        super().__init__(*layers)
        self.out_channels = out_channels
        self.stride = stride


def _takes_inplace(layer: ActLayer) -> bool:
    return layer in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation: global average pool -> 1x1 conv (squeeze) -> act -> 1x1 conv -> gate.

    MobileNetV3 uses ReLU + hard-sigmoid gate, EfficientNet SiLU + sigmoid. The 1x1 convs have biases
    (as in both reference implementations), which matters for the exact parameter counts.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        activation: ActLayer = nn.ReLU,
        scale_activation: ActLayer = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x: Tensor) -> Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(scale))))
        return x * scale


class StochasticDepth(nn.Module):
    """Drop the whole residual branch per sample with probability ``p`` while training.

    Survivors are scaled by ``1 / (1 - p)`` so the expected output is unchanged, and evaluation is
    the identity (EfficientNet's "drop connect", Huang et al. 2016's stochastic depth, "row" mode).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"stochastic depth probability must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = [x.shape[0]] + [1] * (x.dim() - 1)
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DepthwiseSeparable(nn.Sequential):
    """MobileNet V1 block: 3x3 depthwise conv-BN-act, then 1x1 pointwise conv-BN-act."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation_layer: ActLayer = nn.ReLU6,
    ) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels,
                      norm_layer=norm_layer, activation_layer=activation_layer),
            ConvBNAct(in_channels, out_channels, 1, norm_layer=norm_layer, activation_layer=activation_layer),
        )
        self.out_channels = out_channels
        self.stride = stride


class InvertedResidual(nn.Module):
    """MobileNet V2 block: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection.

    The projection has no activation ("linear bottleneck"); the identity shortcut is used when the
    block keeps both resolution and width. With ``expand_ratio == 1`` the expansion conv is omitted.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, norm_layer=norm_layer, activation_layer=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, norm_layer=norm_layer, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            norm_layer(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class InvertedResidualV3(nn.Module):
    """MobileNet V3 bneck: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 linear projection.

    ``use_hs`` selects h-swish instead of ReLU for the expand and depthwise activations. The
    squeeze-and-excite module sits after the depthwise conv and before the projection, squeezing to
    ``make_divisible(expanded / 4, 8)`` channels with a hard-sigmoid gate. With ``dilation > 1`` the
    block keeps its resolution (stride 1) and dilates the depthwise conv instead.
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int,
        expanded_channels: int,
        out_channels: int,
        use_se: bool,
        use_hs: bool,
        stride: int,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidualV3 stride must be 1 or 2, got {stride}")
        act: ActLayer = nn.Hardswish if use_hs else nn.ReLU
        eff_stride = 1 if dilation > 1 else stride
        layers: list[nn.Module] = []
        if expanded_channels != in_channels:
            layers.append(ConvBNAct(in_channels, expanded_channels, 1, norm_layer=norm_layer, activation_layer=act))
        layers.append(
            ConvBNAct(expanded_channels, expanded_channels, kernel_size, eff_stride, groups=expanded_channels,
                      dilation=dilation, norm_layer=norm_layer, activation_layer=act)
        )
        if use_se:
            squeeze = make_divisible(expanded_channels / 4, 8)
            layers.append(SqueezeExcitation(expanded_channels, squeeze, nn.ReLU, nn.Hardsigmoid))
        layers.append(ConvBNAct(expanded_channels, out_channels, 1, norm_layer=norm_layer, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels
        self.stride = eff_stride
        # True where the paper's table has stride 2 (a new resolution level), even when dilated.
        self.is_stage_start = stride > 1

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = out + x
        return out


class MBConv(nn.Module):
    """EfficientNet's mobile inverted bottleneck with squeeze-and-excite and stochastic depth.

    1x1 expand (SiLU) -> kxk depthwise (SiLU) -> SE (squeeze to ``max(1, int(in_channels * 0.25))``
    channels, computed from the *block input* width as in the official code) -> 1x1 linear projection;
    the residual branch is dropped per sample with probability ``stochastic_depth_prob`` in training.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: float,
        stochastic_depth_prob: float,
        se_ratio: float = 0.25,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"MBConv stride must be 1 or 2, got {stride}")
        expanded = make_divisible(in_channels * expand_ratio, 8) if expand_ratio != 1 else in_channels
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvBNAct(in_channels, expanded, 1, norm_layer=norm_layer, activation_layer=nn.SiLU))
        layers.append(
            ConvBNAct(expanded, expanded, kernel_size, stride, groups=expanded,
                      norm_layer=norm_layer, activation_layer=nn.SiLU)
        )
        squeeze = max(1, int(in_channels * se_ratio))
        layers.append(SqueezeExcitation(expanded, squeeze, nn.SiLU, nn.Sigmoid))
        layers.append(ConvBNAct(expanded, out_channels, 1, norm_layer=norm_layer, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out
