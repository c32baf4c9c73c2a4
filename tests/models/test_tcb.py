"""TCB (spec §1.3-1.4): parameter counts, key layout, blending, memory rules, losses, supports, converters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidseg.errors import ConfigError
from vidseg.models import build
from vidseg.models.base import VideoSegmenter
from vidseg.models.checkpoint import save_weights
from vidseg.models.heads.common import InputShapeError
from vidseg.models.heads.ocr import gather_object_contexts
from vidseg.models.video.tcb import TCBOCR, build_tcb


def _count(m: nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for n, p in m.named_parameters() if n.startswith(prefix))


def _meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return build(name)


def test_param_counts_exact():
    ppm, ocr = _meta("tcb_ppm_r101"), _meta("tcb_ocr_r101")
    assert _count(ppm) == 70_544_568
    assert (_count(ppm, "encoder."), _count(ppm, "ppm_conv."), _count(ppm, "deepsup.")) == (
        42_623_936, 23_137_404, 4_783_228)
    assert _count(ocr) == 58_096_568
    parts = ("encoder.", "conv_3x3.", "spatial_ocr_head.", "head.", "dsn_head.")
    assert [_count(ocr, p) for p in parts] == [42_623_936, 9_438_720, 1_186_560, 63_612, 4_783_740]
    assert _count(_meta("tcb_ocr_mem_r101")) == 58_096_568


def test_official_key_layout():
    ppm, ocr = _meta("tcb_ppm_r101").state_dict(), _meta("tcb_ocr_r101").state_dict()
    for key in ["encoder.conv3.weight", "encoder.bn3.running_var", "encoder.layer4.2.conv3.weight",
                "ppm_conv.ppm.3.0.weight", "ppm_conv.ppm.3.1.bias", "ppm_conv.conv_last_.0.weight",
                "ppm_conv.conv_last_.1.weight", "ppm_conv.conv_last_.4.bias", "deepsup.0.weight", "deepsup.4.bias"]:
        assert key in ppm, key
    for key in ["conv_3x3.0.bias", "conv_3x3.1.weight", "spatial_ocr_head.object_context_block.f_pixel.3.weight",
                "spatial_ocr_head.object_context_block.f_object.4.bias",
                "spatial_ocr_head.object_context_block.f_down.1.weight",
                "spatial_ocr_head.object_context_block.f_up.0.bias", "spatial_ocr_head.conv_bn_dropout.1.bias",
                "head.weight", "dsn_head.0.bias", "dsn_head.4.weight"]:
        assert key in ocr, key
    assert not any(k.startswith(("encoder.fc", "decoder")) for k in ocr)


@pytest.fixture(scope="module")
def r50_models():
    torch.manual_seed(0)
    return {blend: build_tcb(blend=blend, depth=50, num_classes=7).eval() for blend in ("ppm", "ocr")}


def _clip(seed=0, b=1, t=4, h=25, w=33):
    return torch.randn(b, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_protocol_and_supports(r50_models):
    m = r50_models["ocr"]
    assert isinstance(m, VideoSegmenter)
    assert m.support_offsets == (-9, -6, -3) and m.offline_support_offsets == (3, 6, 9)
    assert m.support_indices(20, 100) == [11, 14, 17]
    assert m.support_indices(2, 100) == [0, 0, 0]
    assert m.support_indices(20, 100, "offline") == [23, 26, 29]
    assert m.support_indices(91, 100, "offline") == [88, 85, 82]  # t + 9 >= len: past frames
    assert m.support_indices(90, 100, "offline") == [93, 96, 99]
    assert build_tcb(blend="ppm", depth=50, dilations=(2, 4)).support_offsets == (-4, -2)
    with pytest.raises(ConfigError):
        m.support_indices(0, 10, "sideways")


@pytest.mark.parametrize("blend", ["ppm", "ocr"])
def test_forward_equals_encode_decode_and_is_symmetric(r50_models, blend):
    m = r50_models[blend]
    x = _clip()
    with torch.no_grad():
        out = m(x)
        feats = [m.encode_frame(x[:, i]) for i in range(4)]
        ref = m.decode_clip(feats, (25, 33))
        swapped = m.decode_clip([feats[2], feats[0], feats[1], feats[3]], (25, 33))
        other_target = m.decode_clip([feats[0], feats[1], feats[3], feats[2]], (25, 33))
    assert out.shape == (1, 7, 25, 33)
    assert torch.allclose(out, ref, atol=1e-4)
    assert torch.allclose(ref, swapped, atol=1e-5)  # uniform blending: support order is irrelevant
    assert not torch.allclose(ref, other_target, atol=1e-3)  # but the target is the last frame


@pytest.mark.parametrize("blend", ["ppm", "ocr"])
def test_identical_frames_equal_the_image_model(r50_models, blend):
    m = r50_models[blend]
    image = build("pspnet_r101" if blend == "ppm" else "ocrnet_r101", num_classes=7,
                  backbone="resnet50").eval()
    image.load_state_dict(m.state_dict())
    assert image.support_offsets == ()
    x = _clip(1, t=1)
    with torch.no_grad():
        video = m(x.repeat(1, 4, 1, 1, 1))
        single = image(x)
    assert torch.allclose(video, single, atol=1e-4)


def test_ocr_context_is_the_mean_over_frames(r50_models):
    m = r50_models["ocr"]
    x = _clip(2)
    with torch.no_grad():
        feats = [m.encode_frame(x[:, i]) for i in range(4)]
        ctx = torch.stack([gather_object_contexts(lg, f) for lg, f in feats]).mean(0)
        manual = m.head(m.spatial_ocr_head(feats[-1][1], ctx))
        ours = m.decode_clip(feats, feats[-1][1].shape[-2:])
    assert torch.allclose(manual, ours, atol=1e-5)


def _random_steps(n: int = 3) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per-frame OCR features (dsn logits [1, 7, 3, 4], feats [1, 512, 3, 4]) of n steps of 4 frames."""
    g = torch.Generator().manual_seed(0)
    return [[(3 * torch.randn(1, 7, 3, 4, generator=g), torch.randn(1, 512, 3, 4, generator=g).relu())
             for _ in range(4)] for _ in range(n)]


def _memory_model(base: TCBOCR, rule: str) -> TCBOCR:
    mem = build_tcb(blend="ocr", depth=50, num_classes=7, use_memory=True, memory=rule).eval()
    mem.load_state_dict(base.state_dict())
    return mem


def test_memory_official_rule(r50_models):
    base = r50_models["ocr"]
    m = _memory_model(base, "official")
    steps = _random_steps()
    size = (6, 8)
    with torch.no_grad():
        m.reset_state()
        first = m.decode_clip(steps[0], size)
        assert torch.allclose(first, base.decode_clip(steps[0], size), atol=1e-5)  # step 1: 4 entries
        m.decode_clip(steps[1], size)
        third = m.decode_clip(steps[2], size)
        # effective rule: mean over the 4 contexts of step 1 and the 4 of the current step (8 entries)
        ctx = [gather_object_contexts(lg, f) for lg, f in steps[0] + steps[2]]
        manual = base.head(base.spatial_ocr_head(steps[2][-1][1], torch.stack(ctx).mean(0)))
        assert torch.allclose(third, torch.nn.functional.interpolate(
            manual, size=size, mode="bilinear", align_corners=False), atol=1e-5)
        # QUIRK reproduced: step 2 never enters the memory
        m.reset_state()
        m.decode_clip(steps[0], size)
        assert torch.allclose(m.decode_clip(steps[2], size), third, atol=1e-6)
        assert len(m._memory) == 4


def test_memory_ema_rule_accumulates_and_resets(r50_models):
    base = r50_models["ocr"]
    m = _memory_model(base, "ema")
    steps = _random_steps()
    size = (6, 8)
    with torch.no_grad():
        m.reset_state()
        first = m.decode_clip(steps[0], size)
        assert torch.allclose(first, base.decode_clip(steps[0], size), atol=1e-5)
        m.decode_clip(steps[1], size)
        third = m.decode_clip(steps[2], size)
        m.reset_state()
        m.decode_clip(steps[0], size)
        skipped = m.decode_clip(steps[2], size)
        assert not torch.allclose(third, skipped, atol=1e-4)  # unlike the official rule, step 2 counts
        # weighted averaging: m3 = 0.8 * (0.8 * c1 + 0.2 * c2) + 0.2 * c3
        c = [torch.stack([gather_object_contexts(lg, f) for lg, f in s]).mean(0) for s in steps]
        mem = 0.8 * (0.8 * c[0] + 0.2 * c[1]) + 0.2 * c[2]
        manual = base.head(base.spatial_ocr_head(steps[2][-1][1], mem))
        m.reset_state()
        for s in steps[:2]:
            m.decode_clip(s, size)
        assert torch.allclose(m.decode_clip(steps[2], manual.shape[-2:]), manual, atol=1e-5)
        m.reset_state()
        assert torch.allclose(m.decode_clip(steps[0], size), first, atol=1e-6)


def test_memory_is_not_used_in_training():
    m = build_tcb(blend="ocr", depth=50, num_classes=5, use_memory=True).train()
    m(_clip(0, b=2, t=2, h=17, w=17))
    assert m._memory == []


def test_train_outputs_and_deep_supervision_on_all_frames():
    torch.manual_seed(0)
    m = build_tcb(blend="ppm", depth=50, num_classes=5).train()
    x = _clip(3, b=2, h=25, w=25)
    labels = torch.randint(0, 5, (2, 4, 25, 25))
    out = m(x)
    assert out["logits"].shape == (2, 5, 4, 4) and out["aux"].shape == (2, 4, 5, 4, 4)
    terms = m.losses(out, labels)
    assert set(terms) == {"loss_seg", "loss_aux"}
    changed = labels.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 5
    terms2 = m.losses(out, changed)
    assert torch.equal(terms["loss_seg"], terms2["loss_seg"])  # main loss: target only
    assert not torch.allclose(terms["loss_aux"], terms2["loss_aux"])  # deep supervision: every frame
    ignore_supports = labels.clone()
    ignore_supports[:, :3] = 255
    from vidseg.models.losses import upsampled_log_prob_nll  # official: one DataParallel chunk of 2 clips
    expected = 0.4 * upsampled_log_prob_nll(out["aux"][:, 3], labels[:, 3])
    assert torch.allclose(m.losses(out, ignore_supports)["loss_aux"], expected, atol=1e-6)


@pytest.mark.parametrize("blend", ["ppm", "ocr"])
def test_gradients_reach_every_parameter(blend):
    torch.manual_seed(0)
    m = build_tcb(blend=blend, depth=50, num_classes=5).train()
    out = m(_clip(4, b=2, t=2, h=25, w=25))
    sum(m.losses(out, torch.randint(0, 5, (2, 2, 25, 25))).values()).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_input_errors(r50_models):
    m = r50_models["ppm"]
    with pytest.raises(InputShapeError, match=r"\[B, T, 3, H, W\]"):
        m(torch.randn(1, 3, 33, 33))
    with pytest.raises(InputShapeError, match=r"\[B, T, 3, H, W\]"):
        m(torch.randn(1, 4, 1, 33, 33))
    with pytest.raises(InputShapeError, match="labels"):
        m.losses({"logits": torch.zeros(1, 7, 5, 5), "aux": torch.zeros(1, 4, 7, 5, 5)}, torch.zeros(1, 33, 33).long())
    with pytest.raises(ConfigError):
        build_tcb(blend="ppm", use_memory=True)
    with pytest.raises(ConfigError):
        build_tcb(blend="ocr", memory="fifo")
    with pytest.raises(ConfigError):
        build_tcb(blend="lstm")


@pytest.mark.parametrize("blend", ["ppm", "ocr"])
def test_official_checkpoint_loads_identically(tmp_path, r50_models, blend):
    src = r50_models[blend]
    official = {f"module.{k}": v for k, v in src.state_dict().items()}  # DataParallel layout
    torch.save(official, tmp_path / "model_epoch_120.pth")
    dst = build_tcb(blend=blend, depth=50, num_classes=7, pretrained=str(tmp_path / "model_epoch_120.pth")).eval()
    x = _clip(5, h=17, w=17)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    save_weights(dst, tmp_path / "ours.safetensors")
    again = build_tcb(blend=blend, depth=50, num_classes=7, pretrained=str(tmp_path / "ours.safetensors")).eval()
    with torch.no_grad():
        assert torch.equal(src(x), again(x))


def test_r101_output_shape_small_input():
    m = build("tcb_ocr_mem_r101").eval()
    with torch.no_grad():
        out = m(torch.randn(1, 4, 3, 65, 65))
    assert out.shape == (1, 124, 65, 65) and torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tcb_ppm_r101", "tcb_ocr_r101"])
def test_r101_output_shape_480p(name):
    m = build(name).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 4, 3, 481, 857))
    assert out.shape == (1, 124, 481, 857)


def test_short_training_run_loss_falls():
    torch.manual_seed(0)
    m = build_tcb(blend="ocr", depth=50, num_classes=3, dilations=(3,)).train()
    x = _clip(6, b=2, t=2, h=25, w=25)
    labels = torch.zeros(2, 2, 25, 25, dtype=torch.long)
    labels[..., 12:] = 1
    labels[..., 18:, :] = 2
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = sum(m.losses(m(x), labels).values())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
