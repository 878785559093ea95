"""Multi-scale feature extraction, for using the classifiers as detection/segmentation backbones.

A *stage* is the run of ``features`` entries that share one output stride (2, 4, 8, 16, 32); its
output is the output of its last entry. For stride 32 that is the final 1x1 conv (960 channels for
MobileNetV3-Large, 1280 for MobileNetV2/EfficientNet-B0), the layer LR-ASPP reads from. Dilated
models (``mobilenet_v3_*(dilated=True)``) stop at stride 16, so they have one stage fewer.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from torch import Tensor, nn


class StageInfo(NamedTuple):
    """One stage: index of its last entry in ``features``, output stride, output channels."""

    index: int
    reduction: int
    channels: int


def feature_info(features: nn.Sequential) -> list[StageInfo]:
    """Stage boundaries of a ``features`` sequence, from each entry's ``stride``/``out_channels``.

    Works without running the model: every entry built by this package records its effective stride.
    """
    stages: list[StageInfo] = []
    reduction = 1
    for i, m in enumerate(features):
        stride = getattr(m, "stride", None)
        channels = getattr(m, "out_channels", None)
        if not isinstance(stride, int) or not isinstance(channels, int):
            raise TypeError(
                f"features[{i}] ({type(m).__name__}) has no int 'stride'/'out_channels' attribute; "
                "feature_info only understands sequences built by gnnpretrain.vision"
            )
        reduction *= stride
        if stages and stages[-1].reduction == reduction:
            stages[-1] = StageInfo(i, reduction, channels)
        else:
            stages.append(StageInfo(i, reduction, channels))
    return stages


class FeatureExtractor(nn.Module):
    """Runs ``features`` stage by stage and returns the outputs of the selected stages (a list,
    shallow to deep). Entries after the deepest selected stage are dropped, so no work is wasted.

    ``out_indices`` index into :func:`feature_info`'s list (0 = stride 2, ..., 4 = stride 32).
    """

    def __init__(self, features: nn.Sequential, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        info = feature_info(features)
        if out_indices is None:
            out_indices = tuple(range(len(info)))
        out_indices = tuple(sorted(set(int(i) for i in out_indices)))
        bad = [i for i in out_indices if not 0 <= i < len(info)]
        if bad or not out_indices:
            raise ValueError(
                f"out_indices {tuple(out_indices)} invalid: this backbone has {len(info)} stages with strides "
                f"{[s.reduction for s in info]}; pass indices in 0..{len(info) - 1}"
            )
        chosen = [info[i] for i in out_indices]
        stages: list[nn.Module] = []
        start = 0
        for s in chosen:
            stages.append(nn.Sequential(*[features[j] for j in range(start, s.index + 1)]))
            start = s.index + 1
        self.stages = nn.ModuleList(stages)
        self.out_indices = list(out_indices)
        self.reductions = [s.reduction for s in chosen]
        self.channels = [s.channels for s in chosen]

    def forward(self, x: Tensor) -> list[Tensor]:
        outs: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
