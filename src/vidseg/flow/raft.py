"""RAFT optical flow (Teed & Deng, ECCV 2020): the standard model and RAFT-small, in plain PyTorch.

The module and parameter names follow the released checkpoints (``raft-things.pth``, ``raft-sintel.pth``,
``raft-chairs.pth``, ``raft-kitti.pth``, ``raft-small.pth``), so their state dicts load directly once the
DataParallel ``module.`` prefix is removed (see :mod:`vidseg.flow.raft_backend`).

Architecture, standard / small:

* feature encoder ``fnet`` (instance norm) and context encoder ``cnet`` (batch norm / no norm), both stride 8:
  a 7x7 stride-2 stem and three stages of two residual blocks (widths 64/96/128) or bottleneck blocks
  (32/64/96); feature width 256 / 128, context width 128+128 / 96+64 (hidden state + context);
* a 4-level correlation pyramid looked up in a (2r+1)^2 window, r = 4 / 3
  (:class:`vidseg.flow.raft_corr.CorrLookup`);
* the update block: a motion encoder of correlation and flow, a separable (1x5 then 5x1) / plain 3x3
  convolutional GRU, a flow head, and for the standard model a convex-upsampling mask (small: bilinear x8).

Published parameter counts: 5,257,536 (standard) and 990,162 (small).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.flow.raft_corr import CorrLookup

VARIANTS = ("standard", "small")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a (strided 1x1) shortcut: [B, C_in, H, W] -> [B, C_out, H/s, W/s]."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm1 = _norm(norm, out_channels)
        self.norm2 = _norm(norm, out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1:
            self.norm3 = _norm(norm, out_channels)  # the checkpoints hold it under both names
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu_(self.norm1(self.conv1(x)))  # in place on fresh tensors: lower peak memory
        y = torch.relu_(self.norm2(self.conv2(y)))
        return torch.relu_((x if self.downsample is None else self.downsample(x)) + y)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 at a quarter of the width, with a shortcut (RAFT-small encoders)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, stride: int = 1) -> None:
        super().__init__()
        mid = out_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.norm1 = _norm(norm, mid)
        self.norm2 = _norm(norm, mid)
        self.norm3 = _norm(norm, out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1:
            self.norm4 = _norm(norm, out_channels)
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride), self.norm4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu_(self.norm1(self.conv1(x)))
        y = torch.relu_(self.norm2(self.conv2(y)))
        y = torch.relu_(self.norm3(self.conv3(y)))
        return torch.relu_((x if self.downsample is None else self.downsample(x)) + y)


class Encoder(nn.Module):
    """Stride-8 encoder: [B, 3, H, W] (normalised to [-1, 1]) -> [B, out_channels, H/8, W/8].

    Args:
        block: :class:`ResidualBlock` (standard) or :class:`BottleneckBlock` (small).
        widths: channels of the stem and the three stages (strides 1, 2, 2).
        out_channels: width of the final 1x1 convolution.
        norm: ``instance``, ``batch`` or ``none``.
    """

    def __init__(self, *, block: type[nn.Module], widths: tuple[int, int, int], out_channels: int,
                 norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3)
        self.norm1 = _norm(norm, widths[0])
        stages, cin = [], widths[0]
        for width, stride in zip(widths, (1, 2, 2)):
            stages.append(nn.Sequential(block(cin, width, norm, stride), block(width, width, norm, 1)))
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(widths[-1], out_channels, 1)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu_(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


def _conv_chain(prefix: str, owner: nn.Module, channels: list[int], kernels: list[int]) -> list[nn.Conv2d]:
    convs = []
    for i, k in enumerate(kernels):
        conv = nn.Conv2d(channels[i], channels[i + 1], k, padding=k // 2)
        owner.add_module(f"{prefix}{i + 1}", conv)
        convs.append(conv)
    return convs


class MotionEncoder(nn.Module):
    """Encodes correlation features and the current flow: -> [B, out_channels + 2, h, w] (flow appended).

    Args:
        corr_channels: L * (2r+1)^2 correlation features.
        corr_widths: widths of the correlation convolutions (first 1x1, then 3x3).
        flow_widths: widths of the flow convolutions (7x7 then 3x3).
        out_channels: width before the flow is appended.
    """

    def __init__(self, *, corr_channels: int, corr_widths: tuple[int, ...], flow_widths: tuple[int, int],
                 out_channels: int) -> None:
        super().__init__()
        kernels = [1] + [3] * (len(corr_widths) - 1)
        self._corr = _conv_chain("convc", self, [corr_channels, *corr_widths], kernels)
        self._flow = _conv_chain("convf", self, [2, *flow_widths], [7, 3])
        self.conv = nn.Conv2d(corr_widths[-1] + flow_widths[-1], out_channels, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        for conv in self._corr:
            corr = F.relu(conv(corr))
        f = flow
        for conv in self._flow:
            f = F.relu(conv(f))
        return torch.cat([F.relu(self.conv(torch.cat([corr, f], dim=1))), flow], dim=1)


class ConvGRU(nn.Module):
    """Convolutional GRU, one pass per kernel shape (standard: 1x5 then 5x1; small: one 3x3 pass).

    Args:
        hidden: hidden-state channels.
        inputs: input channels.
        kernels: kernel shapes, one GRU pass each; with more than one pass the convolutions are named
            ``convz1, convr1, convq1, convz2, ...``, with one pass ``convz, convr, convq``.
    """

    def __init__(self, *, hidden: int, inputs: int, kernels: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self._passes = []
        for i, (kh, kw) in enumerate(kernels):
            suffix = str(i + 1) if len(kernels) > 1 else ""
            convs = []
            for gate in ("z", "r", "q"):
                conv = nn.Conv2d(hidden + inputs, hidden, (kh, kw), padding=(kh // 2, kw // 2))
                self.add_module(f"conv{gate}{suffix}", conv)
                convs.append(conv)
            self._passes.append(convs)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        for convz, convr, convq in self._passes:
            hx = torch.cat([h, x], dim=1)
            z = torch.sigmoid(convz(hx))
            r = torch.sigmoid(convr(hx))
            q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
            h = (1 - z) * h + z * q
        return h


class FlowHead(nn.Module):
    """Two 3x3 convolutions: hidden state [B, C, h, w] -> flow update [B, 2, h, w]."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    """One refinement step: (hidden, context, correlation, flow) -> (hidden, upsampling mask or None, delta).

    Args:
        encoder: the :class:`MotionEncoder`.
        gru: the :class:`ConvGRU`.
        flow_head: the :class:`FlowHead`.
        mask_channels: hidden width of the convex-upsampling mask head (standard: 256), or None (small).
        hidden: hidden-state channels.
    """

    def __init__(self, *, encoder: MotionEncoder, gru: ConvGRU, flow_head: FlowHead, mask_channels: int | None,
                 hidden: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.gru = gru
        self.flow_head = flow_head
        self.mask: nn.Module | None = None
        if mask_channels is not None:
            self.mask = nn.Sequential(nn.Conv2d(hidden, mask_channels, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(mask_channels, 64 * 9, 1))

    def forward(self, net: torch.Tensor, inp: torch.Tensor, corr: torch.Tensor, flow: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        net = self.gru(net, torch.cat([inp, self.encoder(flow, corr)], dim=1))
        delta = self.flow_head(net)
        mask = None if self.mask is None else 0.25 * self.mask(net)
        return net, mask, delta


def coords_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Pixel coordinates [B, 2, H, W] (channel 0 = x, channel 1 = y), float32."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([xs, ys]).float()[None].repeat(batch, 1, 1, 1)


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Upsample flow [B, 2, h, w] x8 as convex combinations of 3x3 neighbours, weights mask [B, 576, h, w]."""
    b, _, h, w = flow.shape
    weights = torch.softmax(mask.view(b, 1, 9, 8, 8, h, w), dim=2)
    neigh = F.unfold(8 * flow, [3, 3], padding=1).view(b, 2, 9, 1, 1, h, w)
    up = torch.sum(weights * neigh, dim=2)  # [B, 2, 8, 8, h, w]
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, 8 * h, 8 * w)


def bilinear_upsample8(flow: torch.Tensor) -> torch.Tensor:
    """RAFT-small upsampling: 8 x bilinear interpolation (align_corners=True) of [B, 2, h, w]."""
    return 8 * F.interpolate(flow, size=(8 * flow.shape[2], 8 * flow.shape[3]), mode="bilinear", align_corners=True)


class RAFT(nn.Module):
    """RAFT: recurrent all-pairs field transforms.

    Args:
        fnet: feature encoder (stride 8).
        cnet: context encoder (stride 8) with ``hidden + context`` output channels.
        update_block: the :class:`UpdateBlock`.
        hidden: hidden-state channels (128 standard, 96 small).
        context: context channels (128 standard, 64 small).
        corr_levels: correlation pyramid levels (4).
        corr_radius: lookup radius r (4 standard, 3 small).
    """

    def __init__(self, *, fnet: Encoder, cnet: Encoder, update_block: UpdateBlock, hidden: int, context: int,
                 corr_levels: int = 4, corr_radius: int = 4) -> None:
        super().__init__()
        self.fnet = fnet
        self.cnet = cnet
        self.update_block = update_block
        self.hidden = hidden
        self.context = context
        self.corr_levels = corr_levels
        self.corr_radius = corr_radius

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int = 20, corr: str = "auto",
                corr_budget_bytes: int = 512 * 2**20) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow from image1 to image2.

        Args:
            image1: [B, 3, H, W] float RGB in 0..255, H and W multiples of 8.
            image2: [B, 3, H, W] same.
            iters: refinement iterations (the VSPW TC uses 20).
            corr: ``all-pairs``, ``on-demand`` or ``auto`` (see :class:`~vidseg.flow.raft_corr.CorrLookup`).
            corr_budget_bytes: ``auto`` uses the all-pairs pyramid when it fits this budget.

        Returns:
            (flow at 1/8 resolution [B, 2, H/8, W/8], upsampled flow [B, 2, H, W]), in pixels (dx, dy).
        """
        if image1.shape != image2.shape or image1.ndim != 4 or image1.shape[1] != 3:
            raise ValueError(f"RAFT expects two [B, 3, H, W] images of one size, got {tuple(image1.shape)} "
                             f"and {tuple(image2.shape)}")
        if image1.shape[2] % 8 or image1.shape[3] % 8:
            raise ValueError(f"RAFT input size must be a multiple of 8, got {tuple(image1.shape[2:])}")
        image1 = 2 * (image1 / 255.0) - 1.0
        image2 = 2 * (image2 / 255.0) - 1.0
        fmap1, fmap2 = self.fnet(torch.cat([image1, image2], dim=0)).float().chunk(2, dim=0)
        lookup = CorrLookup(fmap1, fmap2, levels=self.corr_levels, radius=self.corr_radius, mode=corr,
                            budget_bytes=corr_budget_bytes)
        net, inp = torch.split(self.cnet(image1), [self.hidden, self.context], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)
        b, _, h, w = fmap1.shape
        coords0 = coords_grid(b, h, w, fmap1.device)
        coords1 = coords0.clone()
        mask = None
        for _ in range(iters):
            features = lookup(coords1)
            net, mask, delta = self.update_block(net, inp, features, coords1 - coords0)
            coords1 = coords1 + delta
        flow = coords1 - coords0
        up = bilinear_upsample8(flow) if mask is None else convex_upsample(flow, mask)
        return flow, up


def build_raft(variant: str = "standard") -> RAFT:
    """Build RAFT (``standard``: the model of ``raft-things.pth``) or RAFT-small (``small``), in eval mode."""
    if variant == "standard":
        hidden, context, radius = 128, 128, 4
        fnet = Encoder(block=ResidualBlock, widths=(64, 96, 128), out_channels=256, norm="instance")
        cnet = Encoder(block=ResidualBlock, widths=(64, 96, 128), out_channels=hidden + context, norm="batch")
        encoder = MotionEncoder(corr_channels=4 * (2 * radius + 1) ** 2, corr_widths=(256, 192),
                                flow_widths=(128, 64), out_channels=128 - 2)
        gru = ConvGRU(hidden=hidden, inputs=128 + hidden, kernels=((1, 5), (5, 1)))
        update = UpdateBlock(encoder=encoder, gru=gru, flow_head=FlowHead(hidden, 256), mask_channels=256,
                             hidden=hidden)
    elif variant == "small":
        hidden, context, radius = 96, 64, 3
        fnet = Encoder(block=BottleneckBlock, widths=(32, 64, 96), out_channels=128, norm="instance")
        cnet = Encoder(block=BottleneckBlock, widths=(32, 64, 96), out_channels=hidden + context, norm="none")
        encoder = MotionEncoder(corr_channels=4 * (2 * radius + 1) ** 2, corr_widths=(96,), flow_widths=(64, 32),
                                out_channels=80)
        gru = ConvGRU(hidden=hidden, inputs=82 + context, kernels=((3, 3),))
        update = UpdateBlock(encoder=encoder, gru=gru, flow_head=FlowHead(hidden, 128), mask_channels=None,
                             hidden=hidden)
    else:
        raise ValueError(f"unknown RAFT variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    model = RAFT(fnet=fnet, cnet=cnet, update_block=update, hidden=hidden, context=context, corr_radius=radius)
    return model.eval().requires_grad_(False)
