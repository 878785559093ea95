"""Architecture checks for gnnpretrain.vision: exact parameter counts, MACs, block structure.

Large models are built under ``torch.device("meta")``: no weights are allocated, so counting the
parameters and MACs of EfficientNet-B7 takes about a second. One test checks that a real (CPU) build
gives the same counts as a meta build, so the shortcut cannot hide a difference.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gnnpretrain.vision import (
    EFFICIENTNET_PARAMS,
    InvertedResidualV3,
    MBConv,
    SqueezeExcitation,
    StochasticDepth,
    compound_scaling,
    count_macs,
    create_model,
    default_resolution,
    efficientnet,
    efficientnet_b0,
    feature_info,
    list_models,
    lraspp_mobilenet_v3_large,
    make_divisible,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3_large,
    mobilenet_v3_small,
    round_repeats,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta(builder, *args, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return builder(*args, **kwargs)


# ---------------------------------------------------------------------------- rounding rules
@pytest.mark.parametrize(
    "v, expected",
    [(32, 32), (11.2, 16), (18, 24), (22.4, 24), (1792.0, 1792), (36, 40), (4, 8), (60, 64), (44.8, 48)],
)
def test_make_divisible_values(v, expected):
    assert make_divisible(v, 8) == expected


def test_make_divisible_properties():
    for tenth in range(10, 40000, 7):
        v = tenth / 10
        r = make_divisible(v, 8)
        assert r % 8 == 0 and r >= 8
        assert r >= 0.9 * v, (v, r)
        assert abs(r - v) <= 8, (v, r)  # at most one step away from v
    with pytest.raises(ValueError, match="positive"):
        make_divisible(0)


def test_round_repeats_is_ceil():
    assert [round_repeats(n, 1.1) for n in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert round_repeats(3, 1.0) == 3 and round_repeats(4, 1.8) == 8 and round_repeats(1, 3.1) == 4
    with pytest.raises(ValueError):
        round_repeats(3, 0)


def test_compound_scaling_rule():
    assert compound_scaling(0) == (1.0, 1.0, 1.0)
    d, w, r = compound_scaling(1)
    assert (d, w, r) == pytest.approx((1.2, 1.1, 1.15))
    # the paper's constraint alpha * beta^2 * gamma^2 ~= 2: FLOPs roughly double per unit of phi
    assert d * w**2 * r**2 == pytest.approx(1.92, abs=0.01)
    d3, w3, r3 = compound_scaling(3)
    assert d3 == pytest.approx(1.2**3) and w3 == pytest.approx(1.1**3) and r3 == pytest.approx(1.15**3)
    with pytest.raises(ValueError):
        compound_scaling(1, alpha=0.9)


# ---------------------------------------------------------------------------- parameter counts
PARAM_COUNTS = [
    ("mobilenet_v1", dict(width_mult=1.0), 4_231_976),
    ("mobilenet_v1", dict(width_mult=0.75), 2_585_560),
    ("mobilenet_v1", dict(width_mult=0.5), 1_331_592),
    ("mobilenet_v1", dict(width_mult=0.25), 470_072),
    ("mobilenet_v2", dict(width_mult=1.0), 3_504_872),
    ("mobilenet_v2", dict(width_mult=1.4), 6_108_776),
    ("mobilenet_v2", dict(width_mult=0.75), 2_636_424),
    ("mobilenet_v2", dict(width_mult=0.5), 1_968_680),
    ("mobilenet_v2", dict(width_mult=0.35), 1_677_128),
    ("mobilenet_v3_large", {}, 5_483_032),
    ("mobilenet_v3_small", {}, 2_542_856),
    ("efficientnet_b0", {}, 5_288_548),
    ("efficientnet_b1", {}, 7_794_184),
    ("efficientnet_b2", {}, 9_109_994),
    ("efficientnet_b3", {}, 12_233_232),
    ("efficientnet_b4", {}, 19_341_616),
    ("efficientnet_b5", {}, 30_389_784),
    ("efficientnet_b6", {}, 43_040_704),
    ("efficientnet_b7", {}, 66_347_960),
]
BUILDERS = {
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
    **{f"efficientnet_b{i}": (lambda i=i, **kw: efficientnet(i, **kw)) for i in range(8)},
}


@pytest.mark.parametrize("name, kwargs, expected", PARAM_COUNTS, ids=[f"{n}-{k}" for n, k, _ in PARAM_COUNTS])
def test_parameter_count(name, kwargs, expected):
    assert n_params(meta(BUILDERS[name], num_classes=1000, **kwargs)) == expected


def test_lraspp_parameter_count():
    assert n_params(meta(lraspp_mobilenet_v3_large, 21)) == 3_221_538


def test_registry_names_match_counts():
    # width-multiplier variants registered under their own names build the same networks
    assert n_params(meta(create_model, "mobilenet_v2_035")) == 1_677_128
    assert n_params(meta(create_model, "mobilenet_v1_025")) == 470_072
    assert n_params(meta(create_model, "efficientnet_b7")) == 66_347_960


def test_real_build_matches_meta_build():
    real = mobilenet_v3_small()
    assert n_params(real) == 2_542_856
    assert count_macs(real, 96) == count_macs(meta(mobilenet_v3_small), 96)


# ---------------------------------------------------------------------------- MACs
MACS = [  # (builder name, kwargs, resolution, paper/reference MACs)
    ("mobilenet_v1", {}, 224, 569e6),
    ("mobilenet_v2", {}, 224, 301e6),
    ("mobilenet_v3_large", {}, 224, 217e6),
    ("mobilenet_v3_small", {}, 224, 56.5e6),
    ("efficientnet_b0", {}, 224, 386e6),
    ("efficientnet_b1", {}, 240, 687e6),
    ("efficientnet_b2", {}, 260, 994e6),
    ("efficientnet_b3", {}, 300, 1827e6),
    ("efficientnet_b4", {}, 380, 4394e6),
]


@pytest.mark.parametrize("name, kwargs, res, expected", MACS, ids=[m[0] for m in MACS])
def test_macs_at_native_resolution(name, kwargs, res, expected):
    assert default_resolution(name) == res
    macs = count_macs(meta(BUILDERS[name], **kwargs), res)
    assert abs(macs - expected) / expected < 0.02, f"{name}: {macs / 1e6:.1f}M MACs, expected {expected / 1e6}M"


def test_count_macs_input_forms_and_scaling():
    m = meta(mobilenet_v1, width_mult=0.25)
    a = count_macs(m, 128)
    assert a == count_macs(m, (128, 128)) == count_macs(m, (3, 128, 128)) == count_macs(m, (4, 3, 128, 128))
    # convolution MACs scale with the number of pixels; only the classifier does not
    fc = 256 * 1000
    assert count_macs(m, 256) - fc == 4 * (a - fc)
    with pytest.raises(ValueError, match="input_size"):
        count_macs(m, (1, 2, 3, 4, 5))


# ---------------------------------------------------------------------------- structure
def _se_blocks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (InvertedResidualV3, MBConv))
            and any(isinstance(c, SqueezeExcitation) for c in m.block)]


def test_se_sits_between_depthwise_and_projection():
    for model in (meta(mobilenet_v3_large), meta(mobilenet_v3_small), meta(efficientnet_b0)):
        blocks = _se_blocks(model)
        assert blocks
        for blk in blocks:
            kids = list(blk.block)
            i = next(k for k, c in enumerate(kids) if isinstance(c, SqueezeExcitation))
            dw_conv = kids[i - 1][0]
            assert isinstance(dw_conv, nn.Conv2d) and dw_conv.groups == dw_conv.in_channels == dw_conv.out_channels > 1
            proj = kids[i + 1][0]
            assert i + 1 == len(kids) - 1 and proj.kernel_size == (1, 1) and proj.groups == 1
            assert len(kids[i + 1]) == 2, "the projection is linear (conv + BN, no activation)"
            assert kids[i].fc1.in_channels == dw_conv.out_channels


def test_se_squeeze_widths_and_gates():
    v3 = meta(mobilenet_v3_large)
    ses = [m for m in v3.modules() if isinstance(m, SqueezeExcitation)]
    assert len(ses) == 8  # rows with SE in Table 1: 3 (40-ch) + 2 (112-ch) + 3 (160-ch)
    assert [s.fc1.out_channels for s in ses] == [make_divisible(s.fc1.in_channels / 4, 8) for s in ses]
    assert ses[0].fc1.out_channels == 24  # exp 72 -> 18 -> rounded to 24 (never below 90%)
    assert all(isinstance(s.scale_activation, nn.Hardsigmoid) and isinstance(s.activation, nn.ReLU) for s in ses)
    assert len([m for m in meta(mobilenet_v3_small).modules() if isinstance(m, SqueezeExcitation)]) == 9

    b0 = meta(efficientnet_b0)
    mb = [m for m in b0.modules() if isinstance(m, MBConv)]
    assert len(mb) == 16
    for blk in mb:
        se = next(c for c in blk.block if isinstance(c, SqueezeExcitation))
        block_in = blk.block[0][0].in_channels
        assert se.fc1.out_channels == max(1, int(block_in * 0.25))
        assert isinstance(se.scale_activation, nn.Sigmoid) and isinstance(se.activation, nn.SiLU)
    assert mb[1].block[2].fc1.out_channels == 4  # in 16, expanded 96: squeeze from the block input


def test_v3_hswish_only_in_later_half():
    blocks = [m for m in meta(mobilenet_v3_large).features if isinstance(m, InvertedResidualV3)]
    acts = [type(blk.block[0][-1]) for blk in blocks]  # activation of the first conv of each block
    assert acts[:6] == [nn.ReLU] * 6 and acts[6:] == [nn.Hardswish] * 9


def test_stochastic_depth_linear_in_block_index():
    mb = [m for m in meta(efficientnet_b0).modules() if isinstance(m, MBConv)]
    probs = [m.stochastic_depth.p for m in mb]
    assert probs == pytest.approx([0.2 * i / 16 for i in range(16)])
    mb7 = [m for m in meta(efficientnet, 7).modules() if isinstance(m, MBConv)]
    assert len(mb7) == sum(math.ceil(n * 3.1) for n in (1, 2, 2, 3, 3, 4, 1)) == 55


def test_efficientnet_table_and_dropout():
    assert [(p.width, p.depth, p.resolution, p.dropout) for p in EFFICIENTNET_PARAMS.values()] == [
        (1.0, 1.0, 224, 0.2), (1.0, 1.1, 240, 0.2), (1.1, 1.2, 260, 0.3), (1.2, 1.4, 300, 0.3),
        (1.4, 1.8, 380, 0.4), (1.6, 2.2, 456, 0.4), (1.8, 2.6, 528, 0.5), (2.0, 3.1, 600, 0.5),
    ]
    b6 = meta(efficientnet, 6)
    assert b6.classifier[0].p == 0.5 and b6.classifier[1].in_features == 4 * make_divisible(320 * 1.8, 8)
    with pytest.raises(ValueError, match="phi"):
        efficientnet(8)


def test_v1_last_depthwise_stride_one_and_v2_head():
    v1 = meta(mobilenet_v1)
    assert [blk.stride for blk in v1.features[1:]] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert meta(mobilenet_v2, width_mult=0.5).classifier[1].in_features == 1280  # head not shrunk
    assert meta(mobilenet_v2, width_mult=1.4).classifier[1].in_features == 1792


def test_v3_dilated_and_reduced_tail():
    plain, dil = meta(mobilenet_v3_large), meta(mobilenet_v3_large, dilated=True)
    assert n_params(plain) == n_params(dil)  # dilation changes no weights
    assert [s.reduction for s in feature_info(dil.features)] == [2, 4, 8, 16]
    red = meta(mobilenet_v3_large, reduced_tail=True)
    assert red.features[-1].out_channels == 480 and red.classifier[0].out_features == 640
    assert meta(mobilenet_v3_small, reduced_tail=True).features[-1].out_channels == 288


def test_registry():
    names = list_models()
    for n in ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
              "lraspp_mobilenet_v3_large", *[f"efficientnet_b{i}" for i in range(8)]):
        assert n in names
    assert list_models("segmentation") == ["lraspp_mobilenet_v3_large"]
    assert default_resolution("efficientnet_b7") == 600 and default_resolution("mobilenet_v2") == 224
    assert meta(create_model, "mobilenet_v2", num_classes=7).classifier[-1].out_features == 7
    with pytest.raises(KeyError, match="available"):
        create_model("resnet50")
    with pytest.raises(ValueError, match="out_indices"):
        create_model("mobilenet_v2", out_indices=(1,))
    with pytest.raises(ValueError, match="num_classes"):
        mobilenet_v2(num_classes=0)


def test_stochastic_depth_layer():
    torch.manual_seed(0)
    sd = StochasticDepth(0.5)
    x = torch.ones(4000, 3, 2, 2)
    y = sd.train()(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # whole samples dropped, survivors x 1/(1-p)
    assert (per_sample == per_sample[:, :1]).all()
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(sd.eval()(x), x)
    with pytest.raises(ValueError):
        StochasticDepth(1.0)
