"""Model registry: names -> builders, with each model's native input resolution.

``create_model(name, features_only=True, out_indices=...)`` returns a :class:`FeatureExtractor`
yielding the stage outputs at strides 2, 4, 8, 16, 32 (see :mod:`gnnpretrain.vision.features`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

from torch import nn

from .efficientnet import EFFICIENTNET_PARAMS, efficientnet
from .features import FeatureExtractor
from .mobilenet import mobilenet_v1, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small
from .segmentation import lraspp_mobilenet_v3_large


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    resolution: int  # native (training/evaluation) input resolution, square
    task: str = "classification"


def _entries() -> dict[str, ModelEntry]:
    e: list[ModelEntry] = []
    for w, tag in ((1.0, ""), (0.75, "_075"), (0.5, "_050"), (0.25, "_025")):
        e.append(ModelEntry(f"mobilenet_v1{tag}", partial(mobilenet_v1, width_mult=w), 224))
    for w, tag in ((1.0, ""), (1.4, "_140"), (0.75, "_075"), (0.5, "_050"), (0.35, "_035")):
        e.append(ModelEntry(f"mobilenet_v2{tag}", partial(mobilenet_v2, width_mult=w), 224))
    e.append(ModelEntry("mobilenet_v3_large", mobilenet_v3_large, 224))
    e.append(ModelEntry("mobilenet_v3_small", mobilenet_v3_small, 224))
    for phi, p in EFFICIENTNET_PARAMS.items():
        e.append(ModelEntry(f"efficientnet_b{phi}", partial(efficientnet, phi), p.resolution))
    # 520 is the crop the reference segmentation recipes (Pascal VOC / COCO subset) evaluate at.
    e.append(ModelEntry("lraspp_mobilenet_v3_large", lraspp_mobilenet_v3_large, 520, task="segmentation"))
    return {x.name: x for x in e}


MODELS: dict[str, ModelEntry] = _entries()


def list_models(task: str | None = None) -> list[str]:
    """Registered model names (optionally only ``task="classification"`` or ``"segmentation"``)."""
    return sorted(n for n, m in MODELS.items() if task is None or m.task == task)


def default_resolution(name: str) -> int:
    """Native square input resolution of a registered model (e.g. 224, or 600 for EfficientNet-B7)."""
    return _entry(name).resolution


def _entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise KeyError(f"unknown vision model {name!r}; available: {', '.join(list_models())}")
    return MODELS[name]


def create_model(
    name: str,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **kwargs,
) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its builder (``num_classes``, ``dropout``, ...).

    With ``features_only=True`` the classifier is discarded and a :class:`FeatureExtractor` over the
    model's ``features`` is returned (``out_indices`` selects stages; default all, stride 2..32).
    """
    entry = _entry(name)
    if out_indices is not None and not features_only:
        raise ValueError("out_indices only applies with features_only=True")
    if features_only and entry.task != "classification":
        raise ValueError(f"features_only needs a classification backbone; {name!r} is a {entry.task} model")
    model = entry.builder(**kwargs)
    if features_only:
        return FeatureExtractor(model.features, out_indices)
    return model
