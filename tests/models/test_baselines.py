"""Image baselines: protocol (T = 1), counts, shapes at awkward sizes, aux heads, gradients, errors, training."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import ConfigError
from vidseg.models import build
from vidseg.models.base import VideoSegmenter
from vidseg.models.baselines import build_baseline
from vidseg.models.heads.common import InputShapeError

NAMES = ["pspnet_r101", "ocrnet_r101", "deeplabv3plus_r101", "upernet_r101", "upernet_swin_t"]


def _count(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_counts_on_meta():
    with torch.device("meta"):
        counts = {n: _count(build(n)) for n in NAMES}
    # PSPNet / OCRNet are the TCB networks without support frames (no blending parameters)
    assert counts["pspnet_r101"] == 70_544_568 and counts["ocrnet_r101"] == 58_096_568
    assert 60e6 < counts["deeplabv3plus_r101"] < 65e6
    assert 85e6 < counts["upernet_r101"] < 87e6


def test_aux_head_is_on_layer3():
    with torch.device("meta"):
        m = build("upernet_r101")
    assert m.auxiliary_head[0].in_channels == 1024 and m.aux_weight == 0.4
    assert m.backbone.output_stride == 32
    with torch.device("meta"):
        d = build("deeplabv3plus_r101")
    assert d.backbone.output_stride == 8
    assert [b[0].dilation for b in d.decode_head.aspp[1:]] == [(12, 12), (24, 24), (36, 36)]


@pytest.mark.parametrize("name", ["deeplabv3plus_r101", "upernet_r101", "upernet_swin_t"])
def test_eval_shape_awkward_size_and_last_frame(name):
    torch.manual_seed(0)
    m = build(name, num_classes=11).eval()
    assert isinstance(m, VideoSegmenter) and m.support_offsets == ()
    x = torch.randn(1, 2, 3, 97, 131)
    with torch.no_grad():
        out = m(x)
        last = m(x[:, -1:])
        decoded = m.decode_clip([m.encode_frame(x[:, -1])], (97, 131))
    assert out.shape == (1, 11, 97, 131)
    assert torch.allclose(out, last, atol=1e-5)  # image models segment the last frame only
    assert torch.allclose(out, decoded, atol=1e-5)


@pytest.mark.parametrize("name", ["deeplabv3plus_r101", "upernet_swin_t"])
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    m = build(name, num_classes=5, backbone="resnet50") if "r101" in name else build(name, num_classes=5)
    m.train()
    out = m(torch.randn(2, 1, 3, 49, 49))
    terms = m.losses(out, torch.randint(0, 5, (2, 1, 49, 49)))
    assert set(terms) == {"loss_seg", "loss_aux"}
    sum(terms.values()).backward()
    assert [n for n, p in m.named_parameters() if p.grad is None] == []


def test_errors():
    with pytest.raises(ConfigError, match="head"):
        build_baseline(head="fcn")
    with pytest.raises(ConfigError, match="backbone"):
        build_baseline(head="upernet", backbone="vgg16")
    with pytest.raises(ConfigError):
        build_baseline(head="psp", backbone="swin_t")
    m = build_baseline(head="deeplabv3plus", backbone="resnet50", num_classes=3).eval()
    with pytest.raises(InputShapeError, match=r"\[B, T, 3, H, W\]"):
        m(torch.randn(1, 3, 33, 33))
    with pytest.raises(InputShapeError, match="float"):
        m.encode_frame(torch.zeros(1, 3, 33, 33, dtype=torch.uint8))


def test_whole_model_checkpoint_round_trip(tmp_path):
    from vidseg.models.checkpoint import save_weights

    torch.manual_seed(0)
    src = build_baseline(head="deeplabv3plus", backbone="resnet50", num_classes=3).eval()
    save_weights(src, tmp_path / "w.safetensors")
    dst = build_baseline(head="deeplabv3plus", backbone="resnet50", num_classes=3,
                         pretrained=str(tmp_path / "w.safetensors")).eval()
    x = torch.randn(1, 1, 3, 33, 33)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_short_training_run_loss_falls():
    torch.manual_seed(0)
    m = build("upernet_swin_t", num_classes=3).train()
    x = torch.randn(2, 1, 3, 32, 32)
    labels = torch.zeros(2, 1, 32, 32, dtype=torch.long)
    labels[..., 16:] = 1
    labels[..., 24:, :] = 2
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = sum(m.losses(m(x), labels).values())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_shape_480p(name):
    m = build(name).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 1, 3, 481, 857)).shape == (1, 124, 481, 857)
