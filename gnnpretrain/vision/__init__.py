"""MobileNet V1/V2/V3 (+ LR-ASPP) and EfficientNet B0–B7 in plain PyTorch.

Independent of the graph code: nothing here imports torch_geometric or other gnnpretrain modules.
See docs/vision.md for the model table (parameters / MACs) and usage.
"""

from .efficientnet import (
    EFFICIENTNET_PARAMS,
    compound_scaling,
    efficientnet,
    efficientnet_b0,
    efficientnet_b1,
    efficientnet_b2,
    efficientnet_b3,
    efficientnet_b4,
    efficientnet_b5,
    efficientnet_b6,
    efficientnet_b7,
    efficientnet_from_multipliers,
)
from .features import FeatureExtractor, StageInfo, feature_info
from .layers import (
    ConvBNAct,
    DepthwiseSeparable,
    InvertedResidual,
    InvertedResidualV3,
    MBConv,
    SqueezeExcitation,
    StochasticDepth,
    make_divisible,
    round_repeats,
)
from .macs import count_macs
from .mobilenet import ImageClassifier, mobilenet_v1, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small
from .registry import MODELS, create_model, default_resolution, list_models
from .segmentation import LRASPP, LRASPPHead, lraspp_mobilenet_v3_large

__all__ = [
    "EFFICIENTNET_PARAMS",
    "MODELS",
    "ConvBNAct",
    "DepthwiseSeparable",
    "FeatureExtractor",
    "ImageClassifier",
    "InvertedResidual",
    "InvertedResidualV3",
    "LRASPP",
    "LRASPPHead",
    "MBConv",
    "SqueezeExcitation",
    "StageInfo",
    "StochasticDepth",
    "compound_scaling",
    "count_macs",
    "create_model",
    "default_resolution",
    "efficientnet",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_from_multipliers",
    "feature_info",
    "list_models",
    "lraspp_mobilenet_v3_large",
    "make_divisible",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "round_repeats",
]
