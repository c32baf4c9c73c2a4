"""Backward warping of label maps, reproducing VSPW ``TC_cal.py::flowwarp`` bit for bit.

The official function builds ``vgrid = pixel_grid + flow``, normalises it with
``2 * v / max(W - 1, 1) - 1`` and calls ``grid_sample(mode='nearest')`` with the defaults
``align_corners=False`` and ``padding_mode='zeros'``. Normalising by W-1 while sampling with
align_corners=False stretches the grid: the source coordinate is ``(px + fx) * W / (W - 1) - 0.5``,
rounded half-to-even, and samples falling outside the image become 0 -- which for VSPW is a real class
(wall). With zero flow the last column/row lands on W - 0.5 / H - 0.5 and is 0 when W / H is even.
We keep this quirk on purpose: TC numbers are only comparable when computed the same way.
"""

from __future__ import annotations

import numpy as np

from vidseg.errors import DataError


def flowwarp(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Warp a label map with a flow field exactly as the official VSPW ``flowwarp``.

    Args:
        labels: [H, W] integer label map (the prediction of frame t+1).
        flow: [H, W, 2] float flow (dx, dy) from frame t to frame t+1, in pixels.

    Returns:
        [H, W] label map (same dtype as ``labels``) aligned with frame t; out-of-image samples are 0.
    """
    import torch
    import torch.nn.functional as F

    h, w = labels.shape
    if flow.shape != (h, w, 2):
        raise DataError("flow", f"flow shape {flow.shape} does not match labels {labels.shape} (+2 channels)")
    x = torch.from_numpy(labels.astype(np.float32))[None, None]
    flo = torch.from_numpy(np.array(flow, dtype=np.float32)).permute(2, 0, 1)[None]
    xx = torch.arange(0, w).view(1, -1).repeat(h, 1)
    yy = torch.arange(0, h).view(-1, 1).repeat(1, w)
    grid = torch.stack((xx, yy), 0)[None].float()
    vgrid = grid + flo
    vgrid[:, 0] = 2.0 * vgrid[:, 0].clone() / max(w - 1, 1) - 1.0
    vgrid[:, 1] = 2.0 * vgrid[:, 1].clone() / max(h - 1, 1) - 1.0
    out = F.grid_sample(x, vgrid.permute(0, 2, 3, 1), mode="nearest", align_corners=False)
    return out[0, 0].numpy().astype(labels.dtype)
