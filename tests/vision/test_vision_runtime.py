"""Runtime checks for gnnpretrain.vision: output shapes, feature stages, channels_last, TorchScript,
determinism, and a short real training run on scikit-learn's digits. Inputs are small (<= 96 px)
and the networks narrow where a width multiplier exists, so the file runs in well under a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gnnpretrain.vision import (
    FeatureExtractor,
    create_model,
    efficientnet_b0,
    lraspp_mobilenet_v3_large,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3_large,
    mobilenet_v3_small,
)
from gnnpretrain.vision.digits import load_digits_images, train_digits

SMALL_MODELS = {
    "v1": lambda: mobilenet_v1(num_classes=5, width_mult=0.25),
    "v2": lambda: mobilenet_v2(num_classes=5, width_mult=0.35),
    "v3_large": lambda: mobilenet_v3_large(num_classes=5),
    "v3_small": lambda: mobilenet_v3_small(num_classes=5),
    "b0": lambda: efficientnet_b0(num_classes=5),
}


@pytest.fixture(scope="module", params=sorted(SMALL_MODELS))
def model(request) -> nn.Module:
    torch.manual_seed(0)
    return SMALL_MODELS[request.param]().eval()


@torch.no_grad()
def test_output_shapes_at_several_resolutions(model):
    for h, w in ((32, 32), (57, 43), (80, 64)):
        assert model(torch.randn(2, 3, h, w)).shape == (2, 5)
    # stride 32 with "same" padding: the last feature map is ceil(size / 32)
    assert model.features(torch.randn(1, 3, 65, 33)).shape[-2:] == (3, 2)


@torch.no_grad()
def test_eval_is_deterministic_and_channels_last_matches(model):
    x = torch.randn(2, 3, 64, 64)
    a, b = model(x), model(x)
    assert torch.equal(a, b)
    cl = model.to(memory_format=torch.channels_last)
    try:
        c = cl(x.contiguous(memory_format=torch.channels_last))
    finally:
        model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-4)


def test_train_mode_is_stochastic_for_efficientnet():
    torch.manual_seed(0)
    m = efficientnet_b0(num_classes=3).train()
    x = torch.randn(4, 3, 32, 32)
    assert not torch.equal(m(x), m(x))  # dropout and stochastic depth are live in training


@torch.no_grad()
def test_features_only_stages():
    x = torch.randn(1, 3, 96, 64)
    for name in ("mobilenet_v1_025", "mobilenet_v2_035", "mobilenet_v3_small", "efficientnet_b0"):
        fx = create_model(name, features_only=True).eval()
        assert isinstance(fx, FeatureExtractor) and fx.reductions == [2, 4, 8, 16, 32]
        outs = fx(x)
        assert [o.shape[1] for o in outs] == fx.channels
        assert [tuple(o.shape[-2:]) for o in outs] == [(-(-96 // r), -(-64 // r)) for r in fx.reductions]
    picked = create_model("mobilenet_v3_large", features_only=True, out_indices=(2, 3, 4))
    assert picked.reductions == [8, 16, 32] and picked.channels == [40, 112, 960]
    with pytest.raises(ValueError, match="stages"):
        create_model("mobilenet_v3_large", features_only=True, out_indices=(5,))


@torch.no_grad()
def test_features_only_shares_the_classifier_features():
    torch.manual_seed(0)
    m = mobilenet_v3_small().eval()
    fx = FeatureExtractor(m.features)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(fx(x)[-1], m.features(x))


@torch.no_grad()
def test_lraspp_segmentation_output():
    torch.manual_seed(0)
    m = lraspp_mobilenet_v3_large(num_classes=4).eval()
    assert m.features.reductions == [8, 16] and m.features.channels == [40, 960]
    for h, w in ((64, 64), (65, 97)):
        assert m(torch.randn(1, 3, h, w)).shape == (1, 4, h, w)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_matches_eager():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 48, 40)
    for m in (mobilenet_v3_small(num_classes=5).eval(), efficientnet_b0(num_classes=5).eval()):
        scripted = torch.jit.script(m)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), m(x))
    fx = create_model("mobilenet_v2_035", features_only=True).eval()
    sfx = torch.jit.script(fx)
    with torch.no_grad():
        for a, b in zip(sfx(x), fx(x)):
            torch.testing.assert_close(a, b)


def test_digits_training_learns():
    """Real data, real training: four short epochs (16x16 inputs, the narrowest MobileNet) must take
    the digits far above chance (10%). The full-size demo (scripts/vision_demo.py) reaches ~95%."""
    torch.manual_seed(0)
    data = load_digits_images(size=16)
    assert data.x_train.shape == (1437, 3, 16, 16) and data.x_test.shape == (360, 3, 16, 16)
    assert sorted(data.y_test.unique().tolist()) == list(range(10))
    model = mobilenet_v1(num_classes=10, width_mult=0.25)
    res = train_digits(model, data, epochs=4, batch_size=32, lr=2e-2, progress=False)
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    assert res["test_accuracy"] > 0.5, res


def test_subpackage_imports_nothing_from_the_graph_side():
    code = (
        "import sys, gnnpretrain.vision, gnnpretrain.vision.digits\n"
        "bad = [m for m in sys.modules if m.startswith(('torch_geometric', 'rdkit', 'ogb'))"
        " or (m.startswith('gnnpretrain.') and not m.startswith(('gnnpretrain.vision',)))]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)


def test_export_and_post_training_quantization():
    """Built-in activations only, so the graph exporters and PyTorch's FX quantization handle the
    models: torch.export (the graph ONNX's exporter consumes) reproduces the eager output, and
    post-training int8 quantization swaps in quantized convolutions and still runs."""
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from gnnpretrain.vision.digits import recalibrate_bn

    torch.manual_seed(0)
    m = mobilenet_v3_small(num_classes=5)
    x = torch.randn(4, 3, 48, 48)
    recalibrate_bn(m, x)  # realistic BN statistics, so activations have a meaningful range
    with torch.no_grad():
        ref = m(x)
        exported = torch.export.export(m, (x,))
        torch.testing.assert_close(exported.module()(x), ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FX quantization is deprecated in favour of torch.ao / pt2e
        prepared = prepare_fx(m, get_default_qconfig_mapping("x86"), (x,))
        prepared(x)  # calibrate
        q = convert_fx(prepared)
    n_qconv = sum(1 for n in q.modules() if type(n).__module__.startswith("torch.ao.nn.quantized")
                  and "Conv" in type(n).__name__)
    assert n_qconv >= 30, f"expected the convolutions to be quantized, found {n_qconv}"
    with torch.no_grad():
        out = q(x)
    assert out.shape == ref.shape and torch.isfinite(out).all()
