"""TCB-PPM on a MiT encoder (``build_tcb(encoder="mit_b0")``): shapes, widths, encode/decode == forward, gradients."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import ConfigError
from vidseg.models.video.tcb import TCBPPM, build_tcb


def _small(**kw: object) -> TCBPPM:
    torch.manual_seed(0)
    model = build_tcb(num_classes=5, blend="ppm", encoder="mit_b0", channels=16, aux_channels=8,
                      drop_path_rate=0.0, **kw)
    assert isinstance(model, TCBPPM)
    return model


def test_mit_tcb_uses_the_encoders_published_widths() -> None:
    model = _small()
    assert tuple(model.encoder.out_channels) == (32, 64, 160, 256)
    assert model.ppm_conv.ppm[0][0].in_channels == 256 and model.ppm_conv.ppm[0][0].out_channels == 16
    assert model.ppm_conv.conv_last_[0].in_channels == 256 + 4 * 16
    assert model.deepsup[0].in_channels == 160 and model.deepsup[0].out_channels == 8
    assert model.deepsup[-1].out_channels == 5 and model.ppm_conv.conv_last_[-1].out_channels == 5


def test_mit_tcb_shapes_and_eval_forward_equals_encode_decode() -> None:
    model = _small().eval()
    frames = torch.randn(2, 4, 3, 64, 96)
    with torch.no_grad():
        out = model(frames)
        feats = [model.encode_frame(frames[:, i]) for i in range(4)]
        ref = model.decode_clip(feats, (64, 96))
    assert out.shape == (2, 5, 64, 96)
    assert feats[0][0].shape == (2, 256, 2, 3)  # last MiT stage at stride 32
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # the blend is a uniform mean over frames: changing a support frame changes the target's logits
    other = frames.clone()
    other[:, 0] = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert not torch.allclose(model(other), out)


def test_mit_tcb_train_outputs_losses_and_gradients() -> None:
    model = _small().train()
    frames = torch.randn(2, 4, 3, 64, 64)
    labels = torch.randint(0, 5, (2, 4, 64, 64))
    labels[0, 0, :8] = 255
    outputs = model(frames)
    assert outputs["logits"].shape == (2, 5, 2, 2)
    assert outputs["aux"].shape == (2, 4, 5, 4, 4)  # deep supervision on the 3rd stage (stride 16) of every frame
    terms = model.losses(outputs, labels)
    assert set(terms) == {"loss_seg", "loss_aux"}
    sum(terms.values()).backward()
    for name in ("encoder", "ppm_conv", "deepsup"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name


def test_mit_tcb_support_rules_and_bad_options() -> None:
    model = _small(dilations=(2, 4))
    assert model.support_offsets == (-4, -2) and model.num_frames == 3
    assert model.support_indices(1, 10) == [0, 0]
    with pytest.raises(ConfigError):
        build_tcb(num_classes=5, blend="ocr", encoder="mit_b0")
    with pytest.raises(ConfigError):
        build_tcb(num_classes=5, encoder="mit_b9")


def test_default_resnet_path_keeps_the_paper_widths() -> None:
    model = build_tcb(num_classes=124, blend="ppm", depth=50)
    assert model.ppm_conv.ppm[0][0].in_channels == 2048 and model.ppm_conv.ppm[0][0].out_channels == 512
    assert model.deepsup[0].in_channels == 1024 and model.deepsup[0].out_channels == 512
