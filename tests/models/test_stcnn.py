"""STCNN model: parameter counts and key layouts of the official code, BN modes, detached temporal features.

Official numbers (parameter counts, key counts, layout digests) were obtained by running the official
longyin880815/STCNN network code on CPU with ``/work/official/stcnn_compare.py`` (see also spec §5.7).
"""

from __future__ import annotations

import pytest
import torch
from stcnn_reference import layout_digest

from vidseg.models.vos.discriminator import build_discriminator
from vidseg.models.vos.frame_pred import bilinear_kernel, build_frame_pred_net, crop_like
from vidseg.models.vos.inception import Inception3
from vidseg.models.vos.seg_branch import build_seg_branch
from vidseg.models.vos.stcnn import build_stcnn, freeze_pred_branch

# from /work/official/stcnn_compare.py (official network code, torch 2.13, CPU)
STCNN_DIGEST = "5e772032e1731c1198ff8335948019567538c3a2fa82bf5e1354518971970ca4"  # 1431 keys
NETG_DIGEST = "9101e9f730a8dd41ebdc9f337323c1694251c7c0d40da03ca5ffbbfd7f78edfd"  # 656 keys
NETD_DIGEST = "0af478ff282a44c965945d9a484f00f186fddaae1ab4f389951c57626b08a5e2"  # 566 keys
SEGBRANCH_DIGEST = "868dcbdaff8cca6e57e192863e543fe15b8174754623e94f81f4b096e79cdacf"  # 775 keys

TINY = {"layers": (1, 1, 1, 1), "width": 8, "fpn_dim": 16, "ppm_dim": 16}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions run fastest on one thread on the shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_full_size_parameter_counts_and_layout():
    with torch.device("meta"):
        model = build_stcnn()
        gen = build_frame_pred_net()
        seg = build_seg_branch()
        disc = build_discriminator("inception_v3")
    assert n_params(model) == 129_662_792
    assert [n_params(m) for m in (model.pred_encoder, model.pred_decoder, model.seg_encoder, model.seg_decoder)] \
        == [42_528_384, 15_438_211, 42_500_160, 29_196_037]
    assert n_params(gen) == 57_966_595
    assert n_params(seg) == 42_500_160 + 27_279_109
    assert n_params(disc) == 21_787_617
    assert len(model.state_dict()) == 1431 and len(disc.state_dict()) == 566
    assert layout_digest(model.state_dict()) == STCNN_DIGEST
    assert layout_digest(seg.state_dict()) == SEGBRANCH_DIGEST
    assert layout_digest(disc.state_dict()) == NETD_DIGEST
    flat = {k.split(".", 1)[1]: v for k, v in gen.state_dict().items()}  # official NetG keys are flat
    assert len(flat) == 656 and layout_digest(flat) == NETG_DIGEST


@pytest.mark.parametrize("delta", [3, 5, 6])
def test_delta_changes_only_the_first_conv(delta):
    with torch.device("meta"):
        model = build_stcnn(frame_nums=delta)
    assert model.frame_nums == delta
    assert model.pred_encoder.conv1.weight.shape == (64, 3 * delta, 7, 7)
    assert n_params(model) == 129_662_792 + 64 * 7 * 7 * 3 * (delta - 4)


def test_unsupported_delta_and_bad_inputs():
    with pytest.raises(ValueError, match="frame_nums"):
        build_stcnn(frame_nums=2, **TINY)
    model = build_stcnn(**TINY)
    with pytest.raises(ValueError, match="stack"):
        model(torch.zeros(1, 9, 64, 96), torch.zeros(1, 3, 64, 96))
    with pytest.raises(ValueError, match="too small"):
        model.eval()(torch.zeros(1, 12, 32, 30), torch.zeros(1, 3, 32, 30))
    with pytest.raises(ValueError, match="bn_mode"):
        model.set_bn_mode("train")


def test_forward_shapes_tiny():
    torch.manual_seed(0)
    model = build_stcnn(**TINY).eval()
    logits, pred = model(torch.rand(2, 12, 61, 83) * 2 - 1, torch.randn(2, 3, 61, 83))
    assert len(logits) == 5 and all(o.shape == (2, 1, 61, 83) for o in logits)
    assert pred.shape == (2, 3, 16, 21) and pred.abs().max() <= 1


def test_crop_like_against_slicing():
    x = torch.arange(2 * 3 * 11 * 13, dtype=torch.float64).view(2, 3, 11, 13)
    cropped = crop_like(x, torch.zeros(1, 1, 8, 8))  # d = 3 and 5: floor(d/2) before, ceil(d/2) after
    assert torch.equal(cropped, x[:, :, 1:9, 2:10])
    padded = crop_like(x, torch.zeros(1, 1, 12, 15))  # smaller: ceil(|d|/2) zeros before, floor after
    assert padded.shape[2:] == (12, 15)
    assert torch.equal(padded[:, :, 1:, 1:14], x) and padded[:, :, 0].abs().sum() == 0
    assert padded[:, :, :, 0].abs().sum() == 0 and padded[:, :, :, 14].abs().sum() == 0


def test_bilinear_deconv_init():
    k = bilinear_kernel(4)
    expected_1d = torch.tensor([0.25, 0.75, 0.75, 0.25])  # FCN upsample_filt(4): 1 - |i - 1.5| / 2
    assert torch.allclose(k, expected_1d[:, None] * expected_1d[None, :])
    model = build_stcnn(**TINY)
    w = model.pred_decoder.de_layer1[2].weight  # ReLU-free layout: conv, BN, ConvT
    assert torch.equal(w[0, 0], k) and w[0, 1].abs().sum() == 0
    # a bilinear ConvT maps a constant map to a constant interior
    up = torch.nn.functional.conv_transpose2d(torch.ones(1, w.shape[0], 5, 5), w, stride=2)
    assert torch.allclose(up[0, 0, 2:-2, 2:-2], torch.ones(8, 8))


def _randomise_bn(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def test_bn_modes_official_eval_and_train():
    torch.manual_seed(0)
    model = build_stcnn(**TINY)
    _randomise_bn(model)
    stack, frame = torch.rand(2, 12, 64, 96) * 2 - 1, torch.randn(2, 3, 64, 96)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.eval()
        official, pred_official = model(stack, frame)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())  # nothing updated
        model.set_bn_mode("eval")
        evaluated, _ = model(stack, frame)
        model.train()
        trained, pred_train = model(stack, frame)
    # official test mode = the temporal branch with batch statistics = its train-mode forward
    assert torch.allclose(official[-1], trained[-1], atol=1e-5) and torch.allclose(pred_official, pred_train)
    assert (official[-1] - evaluated[-1]).abs().max() > 1e-3
    assert torch.equal(official[0], evaluated[0])  # the PPM side output does not read the temporal branch
    state = model.state_dict()
    pred_changed = [k for k in state if k.startswith("pred_") and k.endswith("running_mean")
                    and not torch.equal(state[k], buffers[k])]
    seg_changed = [k for k in state if k.startswith("seg_") and k.endswith(("running_mean", "running_var"))
                   and not torch.equal(state[k], buffers[k])]
    assert pred_changed and not seg_changed  # spatial-branch statistics stay frozen in train mode


def test_temporal_features_are_detached():
    torch.manual_seed(0)
    model = build_stcnn(**TINY).train()
    logits, pred = model(torch.rand(1, 12, 64, 96) * 2 - 1, torch.randn(1, 3, 64, 96))
    sum(o.sum() for o in logits).backward(retain_graph=True)
    assert all(p.grad is None for p in model.pred_parameters())
    assert all(p.grad is not None for p in model.seg_parameters())
    model.zero_grad(set_to_none=True)
    pred.sum().backward()
    assert all(p.grad is None for p in model.seg_parameters())
    assert model.pred_decoder.convC_1.weight.grad.abs().sum() > 0


def test_freeze_pred_branch():
    model = build_stcnn(**TINY)
    frozen = freeze_pred_branch(model)
    assert len(frozen) == len(list(model.pred_parameters())) and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in model.seg_parameters())


def test_generator_relu_variants_differ_and_shapes():
    torch.manual_seed(0)
    gen = build_frame_pred_net(relu=True, layers=(1, 1, 1, 1), width=8)
    gen_free = build_frame_pred_net(relu=False, layers=(1, 1, 1, 1), width=8)
    gen_free.load_state_dict({k.replace("de_layer1.3", "de_layer1.2").replace("de_layer2.3", "de_layer2.2")
                              .replace("de_layer3.3", "de_layer3.2").replace("de_layer3.4", "de_layer3.3"): v
                              for k, v in gen.state_dict().items()})
    x = torch.rand(2, 12, 64, 96) * 2 - 1
    a, b = gen(x), gen_free(x)
    assert a.shape == (2, 3, 16, 24) and not torch.allclose(a, b)
    assert isinstance(gen.decoder.de_layer1[2], torch.nn.ReLU)


def test_discriminators():
    small = build_discriminator("small")
    p = small(torch.rand(3, 3, 16, 24) * 2 - 1)
    assert p.shape == (3, 1) and ((p > 0) & (p < 1)).all()
    with pytest.raises(ValueError, match="discriminator"):
        build_discriminator("patchgan")
    with torch.device("meta"):
        inception = Inception3()
    with pytest.raises(ValueError, match="75x75"):
        inception(torch.zeros(1, 3, 60, 200))
