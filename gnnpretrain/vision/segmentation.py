"""LR-ASPP (Lite Reduced Atrous Spatial Pyramid Pooling), the MobileNetV3 paper's segmentation head.

The backbone is MobileNetV3-Large with its last stage dilated (output stride 16). The head
(paper Fig. 10): on the stride-16 features, a 1x1 conv-BN-ReLU branch is gated by a global-pool ->
1x1 conv -> sigmoid branch (a squeeze-and-excite-like attention), upsampled to stride 8, classified
by a 1x1 conv and added to a 1x1-conv classification of the stride-8 features; the sum is upsampled
bilinearly to the input size.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .features import FeatureExtractor, feature_info
from .mobilenet import init_weights, mobilenet_v3_large


class LRASPPHead(nn.Module):
    def __init__(self, low_channels: int, high_channels: int, num_classes: int, inter_channels: int = 128) -> None:
        super().__init__()
        self.cbr = nn.Sequential(
            nn.Conv2d(high_channels, inter_channels, 1, bias=False),
            nn.BatchNorm2d(inter_channels),
            nn.ReLU(inplace=True),
        )
        self.scale = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(high_channels, inter_channels, 1, bias=False),
            nn.Sigmoid(),
        )
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class LRASPP(nn.Module):
    """Segmentation model: ``features`` returns [stride-8, stride-16] maps, ``classifier`` is the head.

    ``forward`` returns per-pixel logits ``[B, num_classes, H, W]`` at the input resolution.
    """

    def __init__(self, features: FeatureExtractor, classifier: LRASPPHead) -> None:
        super().__init__()
        if len(features.stages) != 2:
            raise ValueError(f"LRASPP needs a 2-stage FeatureExtractor (low, high), got {len(features.stages)}")
        self.features = features
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        feats = self.features(x)
        out = self.classifier(feats[0], feats[1])
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def lraspp_mobilenet_v3_large(num_classes: int = 21, inter_channels: int = 128) -> LRASPP:
    """LR-ASPP on a dilated MobileNetV3-Large (low = end of the stride-8 stage, 40 channels;
    high = the final 1x1 conv at stride 16, 960 channels)."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    backbone = mobilenet_v3_large(dilated=True).features
    info = feature_info(backbone)
    reductions = [s.reduction for s in info]
    low, high = reductions.index(8), reductions.index(16)
    features = FeatureExtractor(backbone, out_indices=(low, high))
    head = LRASPPHead(features.channels[0], features.channels[1], num_classes, inter_channels)
    init_weights(head)
    return LRASPP(features, head)
