"""STCNN's temporal coherence branch: predict the next frame from the previous delta frames (spec §5.2).

* :func:`build_frame_pred_encoder`: Caffe-style ResNet whose first conv takes the ``3 * delta`` channels of
  the stacked frames; outputs at 1/4, 1/8, 1/16, 1/32.
* :class:`FramePredDecoder`: 1x1 lateral convs, three "conv3x3 + BN (+ ReLU) + ConvT x2" stages (transposed
  convs initialised to bilinear upsampling), each cropped to the next encoder level with :func:`crop_like`,
  and a final 1x1 conv + tanh: the predicted frame is at **1/4** of the input resolution.
* :class:`FramePredNet`: encoder + decoder, the generator of the adversarial pretraining stage.

The ReLU decision (the quirk of spec §5.2). The official code has two copies of the decoder: the released
generator (``framepred.py``) has a ReLU after each BN, the copy inside the joint model (``joint_pred_seg.py``)
has none, so the ``nn.Sequential`` indices differ. vidseg reproduces both with one class and a ``relu`` flag:

* ``stcnn_r101`` uses ``relu=False`` (the joint model as released, so the official joint checkpoints
  ``STCNN_frame_*_epoch-*.pth`` load key for key and the outputs match the official test);
* :class:`FramePredNet` defaults to ``relu=True`` (the released generator, so ``NetG_epoch-90.pth`` loads key
  for key). ``relu=False`` builds the ReLU-free generator whose weights move into the joint model unchanged;
  :func:`vidseg.models.convert_stcnn.generator_to_joint_pred` moves either and reports the shifted keys.

Module names follow the official code so state-dict keys are the official ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vidseg.models.vos.norm import PredBatchNorm2d
from vidseg.models.vos.resnet_caffe import CaffeResNet

SUPPORTED_DELTAS = (3, 4, 5, 6)


def crop_like(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Crop (or zero-pad) ``x`` spatially to ``target``'s size, as the official ``crop_like``.

    With ``d = size(x) - size(target)`` per axis, ``floor(d / 2)`` rows/columns are removed before and
    ``ceil(d / 2)`` after; when ``x`` is smaller (d < 0), ``ceil(-d / 2)`` zeros are added before and
    ``floor(-d / 2)`` after.

    Args:
        x: [B, C, H, W].
        target: [B', C', H', W'].

    Returns:
        [B, C, H', W'].
    """
    if x.shape[2:] == target.shape[2:]:
        return x
    pads = []
    for axis in (3, 2):  # F.pad order: last dim first
        half = (target.shape[axis] - x.shape[axis]) / 2
        pads += [math.ceil(half), math.floor(half)]
    return nn.functional.pad(x, pads)


def bilinear_kernel(size: int) -> torch.Tensor:
    """The [size, size] bilinear upsampling filter of the official ``upsample_filt`` (FCN's)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt_1d = 1 - (og - center).abs() / factor
    return (filt_1d[:, None] * filt_1d[None, :]).float()


def init_bilinear_(deconv: nn.ConvTranspose2d) -> None:
    """Official ``interp_surgery``: zero the weight, then a bilinear filter on the channel diagonal."""
    out_c, in_c, kh, kw = deconv.weight.shape
    if out_c != in_c or kh != kw:
        raise ValueError("init_bilinear_: needs equal in/out channels and a square kernel")
    with torch.no_grad():
        deconv.weight.zero_()
        idx = torch.arange(out_c)
        deconv.weight[idx, idx] = bilinear_kernel(kh).to(deconv.weight)


def init_frame_pred_(module: nn.Module) -> None:
    """The official init of the temporal branch: He-normal convs (fan-out), zero biases, BN 1/0, bilinear ConvT."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.ConvTranspose2d):
            init_bilinear_(m)


def check_delta(frame_nums: int) -> int:
    """Raise ValueError unless ``frame_nums`` (delta) is one of the supported 3-6."""
    if frame_nums not in SUPPORTED_DELTAS:
        raise ValueError(f"STCNN: frame_nums (delta) must be one of {SUPPORTED_DELTAS}, got {frame_nums}")
    return frame_nums


def build_frame_pred_encoder(*, frame_nums: int = 4, layers: Sequence[int] = (3, 4, 23, 3),
                             width: int = 64) -> CaffeResNet:
    """Temporal encoder: input [B, 3 * frame_nums, H, W] -> maps at 1/4, 1/8, 1/16, 1/32 (4w..32w channels)."""
    encoder = CaffeResNet(in_channels=3 * check_delta(frame_nums), layers=layers, width=width,
                          strides=(2, 2, 2), ceil_mode=False, norm_layer=PredBatchNorm2d)
    init_frame_pred_(encoder)
    return encoder


def _de_layer(in_c: int, out_c: int, relu: bool, last_out: int | None = None) -> nn.Sequential:
    """conv3x3 + BN (+ ReLU) + ConvT(k4, s2) [+ conv1x1 -> last_out]; indices as the official Sequential."""
    mods: list[nn.Module] = [nn.Conv2d(in_c, out_c, 3, padding=1), PredBatchNorm2d(out_c)]
    if relu:
        mods.append(nn.ReLU(inplace=True))
    mods.append(nn.ConvTranspose2d(out_c, out_c, 4, stride=2, bias=False))
    if last_out is not None:
        mods.append(nn.Conv2d(out_c, last_out, 1))
    return nn.Sequential(*mods)


class FramePredDecoder(nn.Module):
    """Decoder of the temporal branch.

    Args:
        in_channels: the encoder's four output widths ``(c1, c2, c3, c4)``, (256, 512, 1024, 2048) for
            ResNet-101.
        relu: ReLU after each decoder BN (the released generator) or not (the joint model).

    Attributes:
        feature_channels: widths of the three decoder features handed to the spatial branch, coarse to fine:
            ``(c2, c1, c1 / 4)`` = (512, 256, 64), at 1/16, 1/8, 1/4 of the input.
    """

    def __init__(self, *, in_channels: Sequence[int] = (256, 512, 1024, 2048), relu: bool = False) -> None:
        super().__init__()
        c1, c2, c3, c4 = in_channels
        self.relu = relu
        self.convC_1 = nn.Conv2d(c4, c3, 1)
        self.convC_2 = nn.Conv2d(c3, c2, 1)
        self.convC_3 = nn.Conv2d(c2, c1, 1)
        self.de_layer1 = _de_layer(c3, c2, relu)
        self.de_layer2 = _de_layer(2 * c2, c1, relu)
        self.de_layer3 = _de_layer(2 * c1, c1 // 4, relu, last_out=3)
        self.feature_channels = (c2, c1, c1 // 4)
        init_frame_pred_(self)

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Predict the next frame.

        Args:
            feats: the encoder's four maps (1/4, 1/8, 1/16, 1/32).

        Returns:
            ``(frame, features)``: the predicted frame [B, 3, H/4, W/4] in [-1, 1] (tanh) and the decoder
            features ``[f16 [B, c2, H/16, W/16], f8 [B, c1, H/8, W/8], f4 [B, c1/4, H/4, W/4]]``.
        """
        x1, x2, x3, x4 = feats
        out1 = crop_like(self.de_layer1(self.convC_1(x4)), x3)
        out2 = crop_like(self.de_layer2(torch.cat([out1, self.convC_2(x3)], 1)), x2)
        out3 = crop_like(self.de_layer3[:-1](torch.cat([out2, self.convC_3(x2)], 1)), x1)
        frame = torch.tanh(self.de_layer3[-1](out3))
        return frame, [out1, out2, out3]


class FramePredNet(nn.Module):
    """The frame-prediction generator: ``encoder`` + ``decoder`` (keys ``encoder.*``, ``decoder.*``).

    Official ``NetG`` checkpoints use flat keys (``conv1.*``, ``layer1.*``, ``convC_1.*``, ``de_layer1.*``);
    :func:`vidseg.models.convert_stcnn.convert_netg` maps them.

    Args:
        encoder: from :func:`build_frame_pred_encoder`.
        decoder: a :class:`FramePredDecoder`.
    """

    def __init__(self, *, encoder: CaffeResNet, decoder: FramePredDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.frame_nums = encoder.conv1.in_channels // 3

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3 * delta, H, W] in [-1, 1] -> predicted next frame [B, 3, H/4, W/4] in [-1, 1]."""
        return self.decoder(self.encoder(frames))[0]


def build_frame_pred_net(*, frame_nums: int = 4, relu: bool = True, layers: Sequence[int] = (3, 4, 23, 3),
                         width: int = 64) -> FramePredNet:
    """The pretraining generator; defaults: ResNet-101, delta 4, the released ReLU decoder (57,966,595 params)."""
    encoder = build_frame_pred_encoder(frame_nums=frame_nums, layers=layers, width=width)
    return FramePredNet(encoder=encoder, decoder=FramePredDecoder(in_channels=encoder.out_channels, relu=relu))
