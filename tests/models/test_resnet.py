"""CSAIL deep-stem ResNet: parameter count, dilation rule (spec §1.2), shapes, input checks, CSAIL weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidseg.models import build
from vidseg.models.backbones.resnet import DeepStemResNet
from vidseg.models.checkpoint import load_weights
from vidseg.models.convert_tcb import convert_csail_resnet
from vidseg.models.heads.common import InputShapeError
from vidseg.models.video.tcb import build_tcb


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_r101_encoder_param_count_exact():
    with torch.device("meta"):
        assert _count(build("resnet101_deepstem_os8")) == 42_623_936


def test_deep_stem_layout():
    with torch.device("meta"):
        m = DeepStemResNet(depth=101)
    assert [m.conv1.out_channels, m.conv2.out_channels, m.conv3.out_channels] == [64, 64, 128]
    assert m.conv1.stride == (2, 2) and m.layer1[0].conv1.in_channels == 128
    assert [len(m.layer1), len(m.layer2), len(m.layer3), len(m.layer4)] == [3, 4, 23, 3]


def _three_by_three(layer):
    return [(b.conv2.stride, b.conv2.dilation, b.conv2.padding) for b in layer]


def test_dilation_rule_os8():
    with torch.device("meta"):
        m = DeepStemResNet(depth=101, output_stride=8)
    l3, l4 = _three_by_three(m.layer3), _three_by_three(m.layer4)
    assert l3[0] == ((1, 1), (1, 1), (1, 1))  # the formerly strided 3x3 gets dilation 2 // 2 = 1
    assert all(x == ((1, 1), (2, 2), (2, 2)) for x in l3[1:])
    assert l4[0] == ((1, 1), (2, 2), (2, 2))  # the formerly strided 3x3 of layer4 gets 4 // 2 = 2
    assert all(x == ((1, 1), (4, 4), (4, 4)) for x in l4[1:])
    assert m.layer3[0].downsample[0].stride == (1, 1) and m.layer4[0].downsample[0].stride == (1, 1)
    assert m.layer2[0].conv2.stride == (2, 2)


@pytest.mark.parametrize(("os_", "strides"), [(8, (4, 8, 8, 8)), (16, (4, 8, 16, 16)), (32, (4, 8, 16, 32))])
def test_shapes_follow_published_strides(os_, strides):
    m = DeepStemResNet(depth=50, output_stride=os_).eval()
    assert m.out_strides == strides and m.out_channels == (256, 512, 1024, 2048)
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 97, 131))
    for o, c, s in zip(outs, m.out_channels, strides, strict=True):
        assert o.shape[1] == c
        assert o.shape[2] == -(-97 // s) and o.shape[3] == -(-131 // s)


def test_r101_small_input_shapes():
    m = build("resnet101_deepstem_os8").eval()
    with torch.no_grad():
        outs = m(torch.randn(2, 3, 65, 65))
    assert [tuple(o.shape) for o in outs] == [(2, 256, 17, 17), (2, 512, 9, 9), (2, 1024, 9, 9), (2, 2048, 9, 9)]


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (1, 4, 32, 32), (3, 32, 32), (1, 1, 3, 32, 32)])
def test_wrong_input_is_a_clear_error(shape):
    m = DeepStemResNet(depth=50)
    with pytest.raises(InputShapeError, match=r"expected images \[B, 3, H, W\]"):
        m(torch.randn(*shape))


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        DeepStemResNet(depth=34)
    with pytest.raises(ValueError, match="output_stride"):
        DeepStemResNet(depth=50, output_stride=4)


def test_csail_imagenet_weights_load_identically(tmp_path):
    torch.manual_seed(0)
    src = DeepStemResNet(depth=50).eval()
    for mod in src.modules():  # non-trivial BN statistics so that a missed buffer would show
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    official = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    official["fc.weight"], official["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    torch.save(official, tmp_path / "resnet50-imagenet.pth")
    dst = DeepStemResNet(depth=50).eval()
    report = load_weights(dst, tmp_path / "resnet50-imagenet.pth", converter=convert_csail_resnet)
    assert report.missing == [] and report.unexpected == []  # fc.* dropped, no BN counters reported
    x = torch.randn(1, 3, 41, 53)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(src(x), dst(x), strict=True))
    # the same file initialises the encoder of a TCB model
    tcb = build_tcb(blend="ppm", depth=50, pretrained_backbone=str(tmp_path / "resnet50-imagenet.pth"))
    assert torch.equal(tcb.encoder.conv3.weight, src.conv3.weight)
