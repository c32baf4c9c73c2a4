"""SegFormer image baselines: parameter counts, protocol (T = 1 case), shapes, gradients, errors, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidseg.models import build
from vidseg.models.base import VideoSegmenter
from vidseg.models.losses import seg_cross_entropy
from vidseg.models.segformer import build_segformer


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_segformer_b0_param_count():
    model = build("segformer_b0")  # 124 classes, MLP embed 256 (VSPW configs)
    assert n_params(model) == 3_746_012  # specs/models.md 2.3 (no conv_seg)
    assert n_params(model.decode_head) == 426_620
    with_seg = build_segformer(variant="b0", with_conv_seg=True)
    assert n_params(with_seg) == 3_746_012 + 128 * 124 + 124  # 3.762M with the unused conv_seg


@pytest.mark.parametrize("variant,backbone", [("b1", 13_151_424), ("b2", 24_196_288), ("b5", 81_443_008)])
def test_larger_variants_param_counts(variant, backbone):
    with torch.device("meta"):
        model = build_segformer(variant=variant)
    # head: 4 linear embeddings to 256 + fuse (1024->256, BN) + pred (256->124)
    head = (64 + 128 + 320 + 512) * 256 + 4 * 256 + 1024 * 256 + 2 * 256 + 256 * 124 + 124
    assert n_params(model) == backbone + head


def test_protocol_and_shapes():
    model = build_segformer(variant="b0", num_classes=7).eval()
    assert isinstance(model, VideoSegmenter)
    assert model.support_offsets == () and model.num_classes == 7
    frames = torch.randn(2, 2, 3, 67, 93)
    with torch.no_grad():
        out = model(frames)
        feats = model.encode_frame(frames[:, -1])
        via_protocol = model.decode_clip([feats], (67, 93))
        single = model(frames[:, -1])  # [B, 3, H, W] is the T = 1 case
    assert out.shape == (2, 7, 67, 93) and feats.shape == (2, 7, 17, 24)
    assert (out - via_protocol).abs().max() <= 1e-5
    assert torch.equal(out, single)
    model.train()
    assert model(frames).shape == (2, 7, 17, 24)


@pytest.mark.slow
def test_shapes_large_awkward_size():
    model = build_segformer(variant="b0").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 3, 481, 857)).shape == (1, 124, 481, 857)


@pytest.mark.parametrize("shape", [(1, 1, 4, 32, 32), (1, 1, 1, 3, 32, 32), (3, 32, 32)])
def test_wrong_inputs_raise(shape):
    model = build_segformer(variant="b0", num_classes=3)
    with pytest.raises(ValueError, match="expects frames"):
        model(torch.randn(*shape))


def test_losses_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_segformer(variant="b0", num_classes=5, with_conv_seg=True).train()
    frames = torch.randn(2, 1, 3, 64, 64)
    labels = torch.randint(0, 5, (2, 1, 64, 64))
    labels[:, :, :8] = 255
    losses = model.losses(model(frames), labels)
    assert set(losses) == {"loss_ce"}
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if name.startswith("decode_head.conv_seg."):
            assert not p.requires_grad and p.grad is None  # official unused layer: frozen, no gradient
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_segmentation_ce_upsamples_and_ignores():
    logits = torch.randn(2, 4, 5, 6)
    labels = torch.randint(0, 4, (2, 10, 12))
    labels[0] = 255
    up = torch.nn.functional.interpolate(logits, size=(10, 12), mode="bilinear", align_corners=False)
    valid = labels != 255
    logp = up.log_softmax(1).permute(0, 2, 3, 1)[valid]
    expected = -logp.gather(1, labels[valid][:, None]).mean()
    assert torch.allclose(seg_cross_entropy(logits, labels), expected, atol=1e-6)
    assert seg_cross_entropy(logits, torch.full((2, 10, 12), 255)).item() == 0.0


def _synthetic_batch(gen: torch.Generator, b: int = 2, size: int = 48, t: int = 1):
    """Images whose colour per quadrant encodes the class (learnable in a few steps)."""
    classes = torch.randint(0, 3, (b, 2, 2), generator=gen)
    labels = classes.repeat_interleave(size // 2, 1).repeat_interleave(size // 2, 2)  # [B, H, W]
    colours = torch.tensor([[1.5, -1.0, -1.0], [-1.0, 1.5, -1.0], [-1.0, -1.0, 1.5]])
    images = colours[labels].permute(0, 3, 1, 2) + 0.3 * torch.randn(b, 3, size, size, generator=gen)
    return images[:, None].expand(b, t, 3, size, size).contiguous(), labels[:, None].expand(b, t, size, size)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_short_training_run_loss_falls(one_thread):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = build_segformer(variant="b0", num_classes=3).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(12):
        frames, labels = _synthetic_batch(gen)
        loss = sum(model.losses(model(frames), labels).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert sum(history[-3:]) / 3 < 0.6 * sum(history[:3]) / 3, history
