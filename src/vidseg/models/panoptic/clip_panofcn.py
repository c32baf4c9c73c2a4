"""Clip-PanoFCN (VIPSeg, Miao et al. CVPR 2022): PanopticFCN run on a clip, in the official detectron2 layout.

Network (spec models.md §4.2): detectron2 ResNet-50 (frozen BN, stride in 1x1) + FPN P2-P5 + P6/P7 from P5;
``SemanticFPN`` on P2-P5 -> ``FeatureEncoder`` (CoordConv + 3 conv3x3, ReLU after each, 64 ch) = ``encode_feat``
at 1/4; shared heads on P3-P7: ``PositionHead`` (3 x DCNv2 3x3 + GN + ReLU, then ``out_inst`` thing centres and
``out_sem`` stuff regions with a "thing" channel 0) and ``KernelHead`` (CoordConv + 3 conv3x3 + GN + ReLU, then
``out_conv``); ``thing_generator`` / ``stuff_generator`` hold the 1x1 ``embed_extractor`` turning 256-d kernel
features into 64-d dynamic kernels. 36,978,766 parameters for R50 with 58 thing and 66 stuff classes; the state
dict has exactly the official 346 keys (``backbone.bottom_up.*``, ``position_head.position_head.*``, ...).

``forward(frames)`` with frames float [B, T, 3, H, W] (RGB 0..255 minus ``PIXEL_MEAN``, std 1: the caller
normalises) runs every frame through the network and returns, in train and eval mode alike, a dict:

* ``"centers"``: list over P3..P7 of [B*T, num_thing, h_l, w_l] centre logits,
* ``"regions"``: list over P3..P7 of [B*T, num_stuff + 1, h_l, w_l] stuff-region logits (channel 0 = "thing"),
* ``"kernels"``: list over P3..P7 of [B*T, head_channels, h_l, w_l] kernel-head features,
* ``"encode_feat"``: [B*T, encoder_channels, H'/4, W'/4] (ReLU'd),
* ``"batch_size"``: B, ``"num_frames"``: T, ``"image_size"``: (H, W) before padding.

Frame ``n`` of the flattened batch is clip ``n // T``, frame ``n % T`` (the official order). Inputs are padded
with zeros at the bottom/right to multiples of 32 as detectron2's ``ImageList`` does; ``image_size`` keeps the
unpadded size. ``losses(outputs, labels)`` computes the official training losses (``losses.py``, targets in
``targets.py``); the clip-level inference is ``inference.clip_inference`` and the streaming predictor
``vidseg.inference.panoptic``. The mask logits of dynamic kernels are ``dynamic_masks(kernels, encode_feat)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.models.ops.dcn import ModulatedDeformConvWithOff
from vidseg.models.panoptic.fpn import FPN, SemanticFPN
from vidseg.models.panoptic.losses import PanopticFCNLoss
from vidseg.models.panoptic.resnet_d2 import BLOCKS, Conv2d, ResNetD2

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (1.0, 1.0, 1.0)
HEAD_LEVELS = ("p3", "p4", "p5", "p6", "p7")
CENTER_POOL_SIZES = (3, 3, 3, 5, 5)  # per head level, official inference_single_level
NUM_PARAMS_R50 = 36_978_766


def coord_features(feat: torch.Tensor) -> torch.Tensor:
    """Append (row, column) coordinates in ``linspace(-1, 1)``: [N, C, H, W] -> [N, C + 2, H, W]."""
    n, _, h, w = feat.shape
    # float32 coordinates whatever the feature dtype, as the official code (its linspace has the default dtype)
    rows = torch.linspace(-1, 1, h, device=feat.device).to(feat.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
    cols = torch.linspace(-1, 1, w, device=feat.device).to(feat.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([feat, rows, cols], dim=1)


class SingleHead(nn.Module):
    """``num_convs`` x (conv3x3 [+ GN] + ReLU), optionally deformable (DCNv2) and with CoordConv input.

    Submodules are named ``{name}_head_{k}`` (k from 1) as in the official code.
    """

    def __init__(self, in_channels: int, channels: int, num_convs: int, *, name: str, deform: bool = False,
                 coord: bool = False, gn_groups: int | None = None) -> None:
        super().__init__()
        self.coord = coord
        self.layers: list[nn.Module] = []
        for k in range(num_convs):
            c_in = (in_channels + 2 if coord else in_channels) if k == 0 else channels
            norm = nn.GroupNorm(gn_groups, channels) if gn_groups else None
            if deform:
                conv: nn.Module = ModulatedDeformConvWithOff(c_in, channels, 3, padding=1, bias=norm is None,
                                                             norm=norm, activation=F.relu)
            else:
                conv = Conv2d(c_in, channels, 3, padding=1, bias=norm is None, norm=norm, activation=F.relu)
            self.add_module(f"{name}_head_{k + 1}", conv)
            self.layers.append(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coord:
            x = coord_features(x)
        for layer in self.layers:
            x = layer(x)
        return x


class PositionHead(nn.Module):
    """Thing centres (``out_inst``) and stuff regions (``out_sem``, num_stuff + 1 channels) from one level."""

    def __init__(self, in_channels: int, channels: int, num_thing: int, num_stuff_with_thing: int,
                 gn_groups: int, bias_value: float = -2.19) -> None:
        super().__init__()
        self.position_head = SingleHead(in_channels, channels, 3, name="position_head", deform=True,
                                        gn_groups=gn_groups)
        self.out_inst = Conv2d(channels, num_thing, 3, padding=1)
        self.out_sem = Conv2d(channels, num_stuff_with_thing, 3, padding=1)
        for layer in (self.out_inst, self.out_sem):
            nn.init.normal_(layer.weight, mean=0, std=0.01)
            nn.init.constant_(layer.bias, bias_value)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.position_head(feat)
        return self.out_inst(x), self.out_sem(x)


class KernelHead(nn.Module):
    """Kernel features: CoordConv + 3 x (conv3x3 + GN + ReLU) + ``out_conv`` (conv3x3)."""

    def __init__(self, in_channels: int, channels: int, gn_groups: int) -> None:
        super().__init__()
        self.kernel_head = SingleHead(in_channels, channels, 3, name="kernel_head", coord=True, gn_groups=gn_groups)
        self.out_conv = Conv2d(channels, channels, 3, padding=1)
        nn.init.normal_(self.out_conv.weight, mean=0, std=0.01)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.kernel_head(feat))


class FeatureEncoder(nn.Module):
    """High-resolution feature: CoordConv + 3 x (conv3x3 + ReLU), no norm (``encode_head``)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.encode_head = SingleHead(in_channels, channels, 3, name="encode_head", coord=True)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.encode_head(feat)


class KernelGenerator(nn.Module):
    """Holds ``embed_extractor`` (1x1 conv, kernel features -> dynamic kernels), as the official generators."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.embed_extractor = Conv2d(in_channels, channels, 1)
        nn.init.normal_(self.embed_extractor.weight, mean=0, std=0.01)
        nn.init.zeros_(self.embed_extractor.bias)

    def forward(self, idx_feat: torch.Tensor) -> torch.Tensor:
        """idx_feat [N, C_in, a, b] -> [N, C_out, a, b]."""
        return self.embed_extractor(idx_feat)


class ClipPanoFCN(nn.Module):
    """Clip-PanoFCN / PanopticFCN network (module docstring for the output dict).

    Args:
        backbone: ``FPN`` over a ``ResNetD2``.
        semantic_fpn, feature_encoder, position_head, kernel_head: the heads.
        thing_generator, stuff_generator: ``KernelGenerator`` modules.
        num_thing: thing classes (58 for VIPSeg); num_stuff: stuff classes without the "thing" channel (66).
        criterion: the training loss (default: VIPSeg categories); not part of the state dict.
    """

    def __init__(self, *, backbone: FPN, semantic_fpn: SemanticFPN, position_head: PositionHead,
                 kernel_head: KernelHead, feature_encoder: FeatureEncoder, thing_generator: KernelGenerator,
                 stuff_generator: KernelGenerator, num_thing: int, num_stuff: int,
                 criterion: PanopticFCNLoss | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.semantic_fpn = semantic_fpn
        self.position_head = position_head
        self.kernel_head = kernel_head
        self.feature_encoder = feature_encoder
        self.thing_generator = thing_generator
        self.stuff_generator = stuff_generator
        self.num_thing = num_thing
        self.num_stuff = num_stuff
        self.head_levels = HEAD_LEVELS
        self.criterion = criterion

    def forward(self, frames: torch.Tensor) -> dict:
        """frames [B, T, 3, H, W] (normalised) -> dict of per-frame, per-level outputs (module docstring)."""
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"ClipPanoFCN expects frames [B, T, 3, H, W], got {tuple(frames.shape)}")
        b, t, _, h, w = frames.shape
        x = frames.reshape(b * t, 3, h, w)
        div = self.backbone.size_divisibility
        pad_h, pad_w = (-h) % div, (-w) % div
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        feats = self.backbone(x)
        encode_feat = self.feature_encoder(self.semantic_fpn(feats))
        centers, regions, kernels = [], [], []
        for level in self.head_levels:
            center, region = self.position_head(feats[level])
            centers.append(center)
            regions.append(region)
            kernels.append(self.kernel_head(feats[level]))
        return {"centers": centers, "regions": regions, "kernels": kernels, "encode_feat": encode_feat,
                "batch_size": b, "num_frames": t, "image_size": (h, w)}

    def losses(self, outputs: dict, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted loss terms from ``forward``'s outputs and library panoptic ids labels [B, T, H, W]."""
        if self.criterion is None:
            self.criterion = PanopticFCNLoss()
        return self.criterion(outputs, labels, thing_embed=self.thing_embed, stuff_embed=self.stuff_embed)

    def thing_embed(self, idx_feat: torch.Tensor) -> torch.Tensor:
        """Thing kernel features [N, C, K, P] -> dynamic kernels [N, 64, K, P] (``thing_generator.embed_extractor``)."""
        return self.thing_generator(idx_feat)

    def stuff_embed(self, idx_feat: torch.Tensor) -> torch.Tensor:
        """Stuff kernel features [N, C, 1, 1] -> dynamic kernels [N, 64, 1, 1] (``stuff_generator.embed_extractor``)."""
        return self.stuff_generator(idx_feat)

    @staticmethod
    def dynamic_masks(weights: torch.Tensor, encode_feat: torch.Tensor) -> torch.Tensor:
        """Mask logits of dynamic kernels: weights [N, K, C] (or [K, C], shared) x encode_feat [N, C, h, w] -> [N, K, h, w]."""
        n, c, h, w = encode_feat.shape
        return torch.matmul(weights, encode_feat.reshape(n, c, h * w)).reshape(n, -1, h, w)


def build_clip_panofcn(*, num_thing: int = 58, num_stuff: int = 66, blocks: Sequence[int] = BLOCKS[50],
                       width: int = 64, fpn_channels: int = 256, semantic_channels: int = 256,
                       head_channels: int = 256, encoder_channels: int = 64, gn_groups: int = 32,
                       freeze_at: int = 2, criterion: PanopticFCNLoss | None = None) -> ClipPanoFCN:
    """Build Clip-PanoFCN; the defaults are the official R50 VIPSeg model (36,978,766 parameters).

    Args:
        num_thing, num_stuff: classes (VIPSeg: 58 things, 66 stuff; the region head gets ``num_stuff + 1``).
        blocks, width: ResNet bottlenecks per stage and stem width (``(1, 1, 1, 1)``, 16 for a tiny CPU variant).
        fpn_channels, semantic_channels, head_channels, encoder_channels: widths (256, 256, 256, 64).
        gn_groups: GroupNorm groups (32; must divide the widths it normalises).
        freeze_at: ResNet stages frozen (2 = stem and res2, detectron2's default).
        criterion: training loss (default: :class:`PanopticFCNLoss` with the VIPSeg categories).
    """
    bottom_up = ResNetD2(blocks, width=width, freeze_at=freeze_at)
    return ClipPanoFCN(
        backbone=FPN(bottom_up, fpn_channels),
        semantic_fpn=SemanticFPN(fpn_channels, semantic_channels, gn_groups),
        position_head=PositionHead(fpn_channels, head_channels, num_thing, num_stuff + 1, gn_groups),
        kernel_head=KernelHead(fpn_channels, head_channels, gn_groups),
        feature_encoder=FeatureEncoder(semantic_channels, encoder_channels),
        thing_generator=KernelGenerator(head_channels, encoder_channels),
        stuff_generator=KernelGenerator(head_channels, encoder_channels),
        num_thing=num_thing, num_stuff=num_stuff, criterion=criterion,
    )


def build_tiny_clip_panofcn(*, num_thing: int = 58, num_stuff: int = 66) -> ClipPanoFCN:
    """A narrow, shallow variant for CPU tests and the demo: ResNet (1,1,1,1) width 16, 64-wide heads."""
    return build_clip_panofcn(num_thing=num_thing, num_stuff=num_stuff, blocks=(1, 1, 1, 1), width=16,
                              fpn_channels=64, semantic_channels=64, head_channels=64, encoder_channels=32,
                              gn_groups=8, freeze_at=0)
