"""A deterministic Clip-PanoFCN loss case (no random numbers) shared by the target and loss tests.

Seven library categories: 0, 2, 4, 6 stuff (region channels 1..4), 1, 3, 5 things (channels 0..2).
Two clips of three 256x320 frames (the smallest level, P7, then has 2x3 > POS_NUM positions, which the
official code needs). Clip 0 has a small object (P3), a medium one (P3 and P4 ranges), a large one (P5 and P6
ranges), an object cut by the right border and one that is absent from frame 1. Clip 1 has one object in
frames 0-1 and an all-void frame 2. The network outputs are smooth sine patterns.
"""

from __future__ import annotations

import torch
from torch import nn

from vidseg.models.panoptic.targets import TargetConfig, level_shapes_of

B, T, H, W = 2, 3, 256, 320
C_KERNEL, C_ENCODE = 8, 4
DIV = 1000
CFG = TargetConfig(thing_channel=(-1, 0, -1, 1, -1, 2, -1), stuff_channel=(1, 0, 2, 0, 3, 0, 4),
                   label_divisor=DIV)


def pid(cat: int, inst: int = 0) -> int:
    return (cat + 1) * DIV + inst


def make_labels() -> torch.Tensor:
    """Library panoptic ids [2, 3, 256, 320]."""
    lab = torch.zeros(B, T, H, W, dtype=torch.long)
    for t in range(T):
        c = lab[0, t]
        c[:128] = pid(0)
        c[128:] = pid(2)
        c[:, :6] = 0  # void strip
        c[10:20, 20 + 2 * t:32 + 2 * t] = pid(1, 1)  # small: ~10x12 -> scale ~11 (P3)
        c[40:80, 50:90 + 3 * t] = pid(3, 1)  # medium: scale ~40-44 (P3 and P4)
        c[60:250, 120:300 - 5 * t] = pid(5, 1)  # large: 190x180 box -> scale ~180 (P5, P6)
        c[100:118, 310 - t:320] = pid(1, 2)  # cut by the right border
        if t != 1:
            c[2:9, 100:140] = pid(3, 2)  # absent from frame 1; thin: 7x40 -> scale ~16
        d = lab[1, t]
        if t < 2:
            d[:, :160] = pid(4)
            d[:, 160:] = pid(6)
            d[20 + 4 * t:60 + 4 * t, 30:70] = pid(5, 7)  # 40x40 -> scale 39 (P3, P4)
    return lab


def wave(shape: tuple[int, ...], phase: float, scale: float = 1.0) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    return (torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + phase) * scale).float().reshape(shape)


def make_outputs(num_thing: int = 3, num_regions: int = 5) -> dict:
    """Train-mode outputs (frame-major) with sine patterns, requiring grad."""
    shapes = level_shapes_of((H, W))
    bt = B * T
    out = {
        "centers": [wave((bt, num_thing, h, w), 0.1 * i, 3.0) - 1.0 for i, (h, w) in enumerate(shapes)],
        "regions": [wave((bt, num_regions, h, w), 0.2 + 0.1 * i, 3.0) for i, (h, w) in enumerate(shapes)],
        "kernels": [wave((bt, C_KERNEL, h, w), 0.3 + 0.1 * i) for i, (h, w) in enumerate(shapes)],
        "encode_feat": wave((bt, C_ENCODE, H // 4, W // 4), 0.7).abs(),
        "num_frames": T,
        "batch_size": B,
    }
    for key in ("centers", "regions", "kernels"):
        for x in out[key]:
            x.requires_grad_(True)
    out["encode_feat"].requires_grad_(True)
    return out


def make_embeds() -> tuple[nn.Conv2d, nn.Conv2d]:
    """The thing and stuff 1x1 embed convs (C_KERNEL -> C_ENCODE) with fixed weights."""
    convs = []
    for phase in (0.4, 0.9):
        conv = nn.Conv2d(C_KERNEL, C_ENCODE, 1)
        with torch.no_grad():
            conv.weight.copy_(wave(tuple(conv.weight.shape), phase, 0.5))
            conv.bias.copy_(wave((C_ENCODE,), phase + 1.0, 0.1))
        convs.append(conv)
    return convs[0], convs[1]
