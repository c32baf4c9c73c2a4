"""MiT backbones: parameter counts, output shapes/strides, LayerNorm eps, input checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vidseg.models import build
from vidseg.models.backbones.mit import MiT, build_mit

# specs/models.md section 3.1 (no classification head)
OFFICIAL_PARAMS = {"b0": 3_319_392, "b1": 13_151_424, "b2": 24_196_288, "b3": 44_072_128, "b4": 60_842_688,
                   "b5": 81_443_008}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("variant", sorted(OFFICIAL_PARAMS))
def test_param_counts_match_official(variant):
    with torch.device("meta"):
        model = build_mit(variant=variant)
    assert n_params(model) == OFFICIAL_PARAMS[variant]


def test_registry_builds_backbone():
    model = build("mit_b0")
    assert isinstance(model, MiT) and n_params(model) == OFFICIAL_PARAMS["b0"]


def test_output_shapes_at_awkward_size():
    model = build_mit(variant="b0").eval()
    h, w = 67, 93
    with torch.no_grad():
        feats = model(torch.randn(2, 3, h, w))
    assert model.out_channels == (32, 64, 160, 256) and model.out_strides == (4, 8, 16, 32)
    assert model.output_shape() == {"c1": (32, 4), "c2": (64, 8), "c3": (160, 16), "c4": (256, 32)}
    for f, c, s in zip(feats, model.out_channels, model.out_strides):
        assert tuple(f.shape) == (2, c, math.ceil(h / s), math.ceil(w / s))


def test_official_layernorm_eps():
    model = build_mit(variant="b1")
    for stage in model.stages:
        assert stage.patch_embeddings.layer_norm.eps == 1e-5
        assert stage.layer_norm.eps == 1e-6
        for block in stage.blocks:
            assert block.layernorm_before.eps == 1e-6 and block.layernorm_after.eps == 1e-6
            if hasattr(block.attention, "sequence_reduction"):
                assert block.attention.sequence_reduction.layer_norm.eps == 1e-5
    hf = build_mit(variant="b0", official_eps=False)
    assert all(m.eps == 1e-5 for m in hf.modules() if isinstance(m, nn.LayerNorm))


def test_eps_changes_outputs():
    """The eps patch is live (not just an attribute): same weights, different eps -> different output."""
    torch.manual_seed(0)
    a = build_mit(variant="b0", official_eps=True).eval()
    b = build_mit(variant="b0", official_eps=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        diff = (a(x)[-1] - b(x)[-1]).abs().max()
    assert 0 < diff < 1e-2


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (1, 4, 64, 64), (3, 64, 64), (1, 1, 3, 64, 64)])
def test_wrong_input_shapes_raise(shape):
    model = build_mit(variant="b0")
    with pytest.raises(ValueError, match="expects images"):
        model(torch.randn(*shape))


def test_in_channels_option():
    model = build_mit(variant="b0", in_channels=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 32, 32))[0].shape == (1, 32, 8, 8)


def test_unknown_variant():
    from vidseg.errors import ConfigError

    with pytest.raises(ConfigError, match="b6"):
        build_mit(variant="b6")
