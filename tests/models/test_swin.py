"""Swin backbones (transformers, config in code): variants, counts vs the UperNet-Swin papers, shapes, weights."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import ConfigError
from vidseg.models import build
from vidseg.models.backbones.swin import SWIN_VARIANTS, SwinEncoder, build_swin, convert_hf_swin
from vidseg.models.checkpoint import load_weights, save_weights
from vidseg.models.heads.common import InputShapeError


def test_variant_table():
    assert SWIN_VARIANTS["l"] == (192, (2, 2, 18, 2), (6, 12, 24, 48), 12)
    assert SWIN_VARIANTS["t"][:3] == (96, (2, 2, 6, 2), (3, 6, 12, 24))


def test_swin_l_config_and_window():
    with torch.device("meta"):
        m = build("swin_l")
    cfg = m.model.config
    assert (cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.window_size) == (192, [2, 2, 18, 2], [6, 12, 24, 48], 12)
    table = m.model.swin.encoder.layers[0].blocks[0].attention.relative_position_bias.relative_position_bias_table
    assert table.shape == ((2 * 12 - 1) ** 2, 6)
    assert m.out_channels == (192, 384, 768, 1536)
    with torch.device("meta"):
        assert build("swin_l", window_size=7).model.config.window_size == 7


@pytest.mark.parametrize(("variant", "published_m"), [("t", 60), ("s", 81), ("b", 121)])
def test_upernet_swin_params_match_published(variant, published_m):
    """UperNet-Swin on ADE20K (150 classes, window 7): 60M / 81M / 121M in the Swin segmentation release."""
    with torch.device("meta"):
        m = build(f"upernet_swin_{variant}", num_classes=150)
    n = sum(p.numel() for p in m.parameters())
    assert abs(n / 1e6 - published_m) < 0.5, n


def test_shapes_at_awkward_size():
    m = SwinEncoder(variant="t").eval()
    assert m.out_strides == (4, 8, 16, 32)
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 65, 97))
    assert [tuple(o.shape) for o in outs] == [(1, 96, 17, 25), (1, 192, 9, 13), (1, 384, 5, 7), (1, 768, 3, 4)]


def test_input_errors_and_bad_variant():
    m = SwinEncoder(variant="t")
    with pytest.raises(InputShapeError, match="Swin-T"):
        m(torch.randn(1, 1, 32, 32))
    with pytest.raises(ConfigError, match="variant"):
        SwinEncoder(variant="xl")


def test_hf_layout_loads_identically(tmp_path):
    """A Hugging Face ``SwinForImageClassification`` state dict (``swin.*`` + classifier) and a ``SwinModel`` one."""
    torch.manual_seed(0)
    src = SwinEncoder(variant="t").eval()
    ours = src.state_dict()
    hf_cls = {k[len("model."):]: v for k, v in ours.items() if k.startswith("model.swin.")}
    hf_cls["swin.layernorm.weight"], hf_cls["swin.layernorm.bias"] = torch.ones(768), torch.zeros(768)
    hf_cls["classifier.weight"], hf_cls["classifier.bias"] = torch.zeros(1000, 768), torch.zeros(1000)
    (tmp_path / "hf").mkdir()
    save_weights(hf_cls, tmp_path / "hf" / "model.safetensors")
    dst = build_swin(variant="t", pretrained=str(tmp_path / "hf")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(src(x), dst(x), strict=True))
    # the stage norms are not in a classification checkpoint: reported missing, by name
    report = load_weights(SwinEncoder(variant="t"), tmp_path / "hf", converter=convert_hf_swin)
    assert report.unexpected == []
    assert sorted(report.missing) == sorted(f"model.hidden_states_norms.stage{i}.{p}"
                                            for i in range(1, 5) for p in ("weight", "bias"))
    # a SwinModel state dict (no ``swin.`` prefix) maps to the same keys
    plain = {k[len("swin."):]: v for k, v in hf_cls.items() if k.startswith("swin.")}
    assert convert_hf_swin(plain) == convert_hf_swin(hf_cls)
