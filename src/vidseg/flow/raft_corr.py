"""RAFT correlation lookup in plain PyTorch with bounded memory.

RAFT correlates every feature vector of image 1 with every feature vector of image 2 (dot product / sqrt(C)),
average-pools the image-2 dimensions of that 4-D volume into a pyramid of ``levels`` levels, and at each
refinement step samples, around the current match of each pixel, a (2r+1) x (2r+1) window of every level
bilinearly (zeros outside). Window element (i, j) is displaced by ``d_i`` in x and ``d_j`` in y, d = -r..r
(the released models were trained with this order), and the features are ordered level by level.

Two ways to get the same numbers (pooling and bilinear sampling are linear in the image-2 features, so they
commute with the dot product; the results differ only by float rounding):

* ``all-pairs``: the pyramid is built once, ``chunk_bytes`` of query pixels at a time, so the peak is the
  pyramid itself (4 bytes x N1 x N2 x 1.33, N = pixels at 1/8 resolution: 220 MB at 480x853,
  1.1 GB at 720x1280) plus one chunk. Lookups are cheap (one channel).
* ``on-demand``: only the pooled image-2 feature maps are kept; each lookup samples C-channel features at
  the window positions and takes the dot products, ``chunk_bytes`` of query pixels at a time. Memory no
  longer grows with N1 x N2 (tens of MB at 720x1280), lookups cost more.
* ``auto`` (default): all-pairs when its pyramid fits ``budget_bytes``, otherwise on-demand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("auto", "all-pairs", "on-demand")


def window_offsets(radius: int, device: torch.device) -> torch.Tensor:
    """Window displacements [(2r+1)^2, 2] (x, y); element i*(2r+1)+j is (d_i, d_j), d = -r..r."""
    d = torch.linspace(-radius, radius, 2 * radius + 1, device=device)
    k = d.numel()
    return torch.stack([d.view(k, 1).expand(k, k), d.view(1, k).expand(k, k)], dim=-1).reshape(k * k, 2)


def sample_pixels(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling at pixel coordinates (align_corners=True, zeros outside).

    Args:
        maps: [B, C, H, W].
        coords: [B, h, w, 2] pixel coordinates (x, y) into maps.

    Returns:
        [B, C, h, w].
    """
    height, width = maps.shape[-2:]
    x, y = coords.split([1, 1], dim=-1)
    grid = torch.cat([2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1], dim=-1)
    return F.grid_sample(maps, grid, align_corners=True)


def pyramid_bytes(batch: int, height: int, width: int, levels: int) -> int:
    """Bytes of a float32 all-pairs pyramid for 1/8-resolution feature maps of height x width."""
    n1 = height * width
    total, h, w = 0, height, width
    for _ in range(levels):
        total += n1 * h * w
        h, w = h // 2, w // 2
    return 4 * batch * total


def check_feature_size(height: int, width: int, levels: int) -> None:
    """Raise ValueError when the coarsest level is under 2 pixels (the sampling grid would divide by zero)."""
    coarse = (height >> (levels - 1), width >> (levels - 1))
    if min(coarse) < 2:
        need = 8 * 2 ** levels
        raise ValueError(f"RAFT needs frames of at least {need - 7}x{need - 7} pixels ({need} after padding to a "
                         f"multiple of 8): the 1/8 feature map {height}x{width} leaves a {coarse[0]}x{coarse[1]} "
                         f"coarsest correlation level")


class CorrLookup:
    """Correlation pyramid of two feature maps, looked up around the current matches.

    Args:
        fmap1: [B, C, h, w] features of image 1 (float32).
        fmap2: [B, C, h, w] features of image 2.
        levels: pyramid levels (4).
        radius: window radius r.
        mode: ``all-pairs``, ``on-demand`` or ``auto``.
        budget_bytes: ``auto`` picks all-pairs when its pyramid is at most this size.
        chunk_bytes: working memory per chunk of query pixels.
    """

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, *, levels: int = 4, radius: int = 4,
                 mode: str = "auto", budget_bytes: int = 512 * 2**20, chunk_bytes: int = 64 * 2**20) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown correlation mode {mode!r}; choose one of {', '.join(MODES)}")
        b, c, h, w = fmap1.shape
        check_feature_size(h, w, levels)
        if mode == "auto":
            mode = "all-pairs" if pyramid_bytes(b, h, w, levels) <= budget_bytes else "on-demand"
        self.mode = mode
        self.levels, self.radius, self.chunk_bytes = levels, radius, chunk_bytes
        self.norm = float(torch.tensor(float(c)).sqrt())  # sqrt(C) as a float32 value
        self.fmap1 = fmap1.reshape(b, c, h * w)
        self.offsets = window_offsets(radius, fmap1.device)
        if mode == "all-pairs":
            self.pyramid = self._build_pyramid(self.fmap1, fmap2)
        else:
            self.pyramid = [fmap2]
            for _ in range(levels - 1):
                self.pyramid.append(F.avg_pool2d(self.pyramid[-1], 2, stride=2))

    def _build_pyramid(self, fmap1: torch.Tensor, fmap2: torch.Tensor) -> list[torch.Tensor]:
        b, c, n1 = fmap1.shape
        h2, w2 = fmap2.shape[-2:]
        f2 = fmap2.reshape(b, c, h2 * w2)
        sizes = [(h2 >> i, w2 >> i) for i in range(self.levels)]
        out = [fmap1.new_empty(b * n1, 1, hh, ww) for hh, ww in sizes]
        step = max(1, self.chunk_bytes // (4 * h2 * w2))
        for bi in range(b):
            for start in range(0, n1, step):
                stop = min(n1, start + step)
                corr = torch.matmul(fmap1[bi, :, start:stop].t(), f2[bi]) / self.norm
                corr = corr.view(stop - start, 1, h2, w2)
                rows = slice(bi * n1 + start, bi * n1 + stop)
                for level in range(self.levels):
                    if level:
                        corr = F.avg_pool2d(corr, 2, stride=2)
                    out[level][rows] = corr
        return out

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """Correlation features [B, levels*(2r+1)^2, h, w] around coords [B, 2, h, w] (pixel x, y)."""
        b, _, h, w = coords.shape
        centre = coords.permute(0, 2, 3, 1).reshape(b, h * w, 1, 2)
        feats = []
        for level in range(self.levels):
            where = centre / 2**level + self.offsets.view(1, 1, -1, 2)  # [B, N1, K, 2]
            if self.mode == "all-pairs":
                grid = where.reshape(b * h * w, 1, -1, 2)
                feats.append(sample_pixels(self.pyramid[level], grid).view(b, h * w, -1))
            else:
                feats.append(self._on_demand(self.pyramid[level], where))
        out = torch.cat(feats, dim=-1)  # [B, N1, L*K]
        return out.permute(0, 2, 1).reshape(b, -1, h, w).contiguous()

    def _on_demand(self, fmap2: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        b, n1, k, _ = where.shape
        c = fmap2.shape[1]
        step = max(1, self.chunk_bytes // (4 * c * k))
        out = where.new_empty(b, n1, k)
        for start in range(0, n1, step):
            stop = min(n1, start + step)
            samples = sample_pixels(fmap2, where[:, start:stop])  # [B, C, q, K]
            dots = (samples * self.fmap1[:, :, start:stop, None]).sum(dim=1)
            out[:, start:stop] = dots / self.norm
        return out
