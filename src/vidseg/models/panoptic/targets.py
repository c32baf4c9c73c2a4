"""Training targets of Clip-PanoFCN (PanopticFCN's, per frame of a clip), from library panoptic ids.

Facts (``specs/models.md`` §4.3; the official ``v_gt_generate.py`` and the VIPSeg video mapper):

* Things of a clip are the thing segments present in any of its frames; each has one mask per frame (empty
  where it is absent). Its *scale* in frame t is ``sqrt(box area)`` with the box from the min/max pixel rows and
  columns (inclusive coordinates, so a one-pixel-wide object has area 0 and is never assigned). An instance goes
  to FPN level l (P3..P7) when its scale lies in ``instance_scales[l]`` (both ends included) in at least one
  frame; ``valid[n, t]`` says in which frames.
* Centre heatmaps: for every instance of a level and every frame where its 1/4-resolution mask is not empty, a
  CenterNet Gaussian (radius from ``min_overlap``, sigma = diameter / ``sigma_factor``) is max-drawn at the mass
  centre of the 1/4 mask (mean of its nonzero pixel coordinates), rescaled to the level and truncated to int.
  It is drawn in every such frame, including frames where the instance's scale is outside the level's range.
* Stuff: the per-pixel channel (0 = "thing", 1 + s = stuff class s, void = none) one-hot, bilinearly resized to
  1/4 (soft labels), then per level resized again, clamped to 1 and zeroed below 0.5 (the region-heatmap target,
  soft above 0.5). A stuff channel belongs to a level when its level map is nonzero in some frame.

Two quirks of the official code are kept because they define the targets: the box is stored as
``[row_min, col_min, row_max, col_max]`` but read as ``[x1, y1, x2, y2]``, so the Gaussian's (w, h) are swapped
(the radius formula is symmetric, so only the level-size rescale of each side differs); and a mass centre whose
truncated level coordinates are (0, 0) is treated as "absent" and not drawn.

Layouts: frames are frame-major (n = b * T + t) like the network outputs (``/work/coord`` interface);
per-instance tensors are [B, K, T, ...] with K the largest count in the batch at that level (at least 1, as
the official ``thing_num``); padded slots have ``valid`` False, thing masks filled with 255.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.categories import vipseg_categories

INSTANCE_SCALES: tuple[tuple[int, int], ...] = ((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048))
PAD_VALUE = 255.0  # thing-mask fill of padded slots (official ``IGNORE_VALUE``)


def _vipseg_channels() -> tuple[tuple[int, ...], tuple[int, ...]]:
    thing, stuff = [], []
    n_thing = n_stuff = 0
    for c in vipseg_categories():
        if c.isthing:
            thing.append(n_thing)
            stuff.append(0)
            n_thing += 1
        else:
            thing.append(-1)
            n_stuff += 1
            stuff.append(n_stuff)
    return tuple(thing), tuple(stuff)


@dataclass(frozen=True)
class TargetConfig:
    """How library panoptic ids become Clip-PanoFCN targets.

    Attributes:
        thing_channel: per library category (0..K-1), its thing channel (0..num_thing-1) or -1 for stuff.
        stuff_channel: per library category, its region channel: 0 for things ("thing" channel), 1 + s for
            stuff class s.
        instance_scales: (low, high) of sqrt(box area) per level, P3..P7.
        min_overlap: CenterNet radius parameter (0.7).
        sigma_factor: Gaussian sigma = (2 r + 1) / sigma_factor (official ``GAUSSIAN_SIGMA`` 3).
        common_stride: stride of the high-resolution mask features (4).
        max_instances: most instances per level and clip (official ``TENSOR_DIM`` 100); extra ones are dropped.
        label_divisor: of the library panoptic ids (``category_plus_1 * divisor + instance``).
    """

    thing_channel: tuple[int, ...] = field(default_factory=lambda: _vipseg_channels()[0])
    stuff_channel: tuple[int, ...] = field(default_factory=lambda: _vipseg_channels()[1])
    instance_scales: tuple[tuple[int, int], ...] = INSTANCE_SCALES
    min_overlap: float = 0.7
    sigma_factor: float = 3.0
    common_stride: int = 4
    max_instances: int = 100
    label_divisor: int = 1000

    def __post_init__(self) -> None:
        if len(self.thing_channel) != len(self.stuff_channel):
            raise ValueError("thing_channel and stuff_channel must list the same categories")

    @property
    def num_thing(self) -> int:
        """Thing classes (centre-heatmap channels)."""
        return max(self.thing_channel, default=-1) + 1

    @property
    def num_regions(self) -> int:
        """Region-heatmap channels: the "thing" channel plus the stuff classes."""
        return max(self.stuff_channel, default=0) + 1


@dataclass
class LevelTargets:
    """Targets of one FPN level for a batch of clips.

    Attributes:
        centers: [B*T, num_thing, h, w] Gaussian centre heatmaps (frame-major).
        regions: [B*T, num_regions, h, w] region-heatmap targets (soft, >= 0.5 or 0).
        thing_masks: [B, K, T, H/4, W/4] soft 1/4-resolution instance masks; 255 in padded slots.
        thing_valid: [B, K, T] bool, the instance is assigned to this level in frame t.
        thing_class: [B, K] long thing channel (0 in padded slots).
        stuff_masks: [B, S, T, h, w] binary level maps of the level's stuff channels (kernel regions).
        stuff_labels: [B, S, T, H/4, W/4] soft 1/4-resolution maps of those channels (mask targets).
        stuff_valid: [B, S, T] bool, the channel is present at this level in frame t.
    """

    centers: torch.Tensor
    regions: torch.Tensor
    thing_masks: torch.Tensor
    thing_valid: torch.Tensor
    thing_class: torch.Tensor
    stuff_masks: torch.Tensor
    stuff_labels: torch.Tensor
    stuff_valid: torch.Tensor


# ----------------------------------------------------------------------------------------------------------
# geometry helpers (CenterNet rules)
# ----------------------------------------------------------------------------------------------------------

def gaussian_radius(wh: torch.Tensor, min_overlap: float) -> torch.Tensor:
    """CornerNet/CenterNet radius: the smallest of the three quadratic roots, for boxes (w, h) in [..., 2]."""
    w, h = wh[..., 0], wh[..., 1]
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + torch.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.min(r1, torch.min(r2, r3))


def gaussian_patch(radius: int, sigma: float) -> np.ndarray:
    """[2r+1, 2r+1] float64 Gaussian exp(-(x^2+y^2) / (2 sigma^2)), values below eps * max set to 0."""
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g


def draw_gaussian(heat: torch.Tensor, x: int, y: int, radius: int, sigma_factor: float) -> None:
    """Max-draw a Gaussian of ``radius`` centred at column x, row y into ``heat`` [h, w], in place."""
    h, w = heat.shape
    left, right = min(x, radius), min(w - x, radius + 1)
    top, bottom = min(y, radius), min(h - y, radius + 1)
    if min(top + bottom, left + right) <= 0:
        return
    g = torch.from_numpy(gaussian_patch(radius, (2 * radius + 1) / sigma_factor)).to(heat)
    patch = g[radius - top:radius + bottom, radius - left:radius + right]
    region = heat[y - top:y + bottom, x - left:x + right]
    heat[y - top:y + bottom, x - left:x + right] = torch.maximum(region, patch)


def spans(masks: torch.Tensor) -> torch.Tensor:
    """Inclusive (rows, cols) extents of boolean masks [..., H, W] -> float32 [..., 2]; 0 for empty masks."""
    out = []
    for dim in (-1, -2):  # any over columns -> rows present; any over rows -> columns present
        present = masks.any(dim=dim)
        n = present.shape[-1]
        idx = torch.arange(n, device=masks.device)
        hi = torch.where(present, idx, -1).amax(dim=-1)
        lo = torch.where(present, idx, n).amin(dim=-1)
        out.append(torch.where(present.any(dim=-1), hi - lo, 0))
    return torch.stack(out, dim=-1).float()


def mass_centers(masks: torch.Tensor) -> torch.Tensor:
    """(x, y) mean of the nonzero pixel coordinates of masks [..., h, w] -> float32 [..., 2]; (0, 0) if empty."""
    nz = masks != 0
    count = nz.sum(dim=(-2, -1))
    h, w = masks.shape[-2:]
    ys = torch.arange(h, device=masks.device).view(h, 1)
    xs = torch.arange(w, device=masks.device).view(1, w)
    sx = (nz * xs).sum(dim=(-2, -1))
    sy = (nz * ys).sum(dim=(-2, -1))
    denom = count.clamp(min=1).float()
    centers = torch.stack([sx.float() / denom, sy.float() / denom], dim=-1)
    return torch.where((count > 0).unsqueeze(-1), centers, torch.zeros_like(centers))


# ----------------------------------------------------------------------------------------------------------
# per clip
# ----------------------------------------------------------------------------------------------------------

def _lut(values: Sequence[int], fill: int, device: torch.device) -> torch.Tensor:
    """Category lookup table with one extra entry at index ``len(values)`` for void."""
    return torch.tensor([*values, fill], dtype=torch.long, device=device)


def category_index(ids: torch.Tensor, cfg: TargetConfig) -> torch.Tensor:
    """Category of every pixel of panoptic ids, as an index into the LUTs (void and unknown -> K)."""
    k = len(cfg.thing_channel)
    cat = torch.div(ids, cfg.label_divisor, rounding_mode="floor") - 1
    return torch.where((ids <= 0) | (cat < 0) | (cat >= k), k, cat)


def _present(values: torch.Tensor, below: int) -> list[int]:
    """Sorted distinct values of a non-negative integer tensor that are below ``below``."""
    counts = torch.bincount(values.flatten(), minlength=below)[:below]
    return counts.nonzero().flatten().tolist()


def stuff_quarter_maps(cat: torch.Tensor, cfg: TargetConfig, size: tuple[int, int]) -> torch.Tensor:
    """One-hot region channels (void excluded) bilinearly resized to the 1/4 size: [T, R, h4, w4] float.

    Args:
        cat: :func:`category_index` of a clip's ids [T, H, W].
    """
    channel = _lut(cfg.stuff_channel, cfg.num_regions, cat.device)[cat]  # void -> R (dropped)
    t = cat.shape[0]
    out = torch.zeros(t, cfg.num_regions, *size, device=cat.device)
    present = _present(channel, cfg.num_regions)
    if present:
        onehot = torch.stack([(channel == c).float() for c in present], dim=1)  # only present channels
        out[:, present] = F.interpolate(onehot, size=size, mode="bilinear", align_corners=False)
    return out


@dataclass
class ClipThings:
    """The thing instances of one clip: classes [N], 1/4 masks [N, T, h4, w4], centres [N, T, 2] (x, y) at
    1/4 scale, box sides [N, T, 2] (full resolution, row extent first as the official box), scale [N, T]."""

    classes: torch.Tensor
    masks: torch.Tensor
    centers: torch.Tensor
    sides: torch.Tensor
    scale: torch.Tensor


def clip_things(ids: torch.Tensor, cfg: TargetConfig, cat: torch.Tensor | None = None) -> ClipThings:
    """Thing instances of a clip's ids [T, H, W] (segments of thing categories present in any frame).

    Args:
        ids: library panoptic ids of one clip.
        cfg: category tables.
        cat: :func:`category_index` of ``ids`` when already computed.
    """
    cat = category_index(ids, cfg) if cat is None else cat
    thing = _lut(cfg.thing_channel, -1, ids.device)[cat]
    thing_ids = torch.where(thing >= 0, ids, 0)
    seg_ids = torch.tensor([i for i in _present(thing_ids, int(thing_ids.max()) + 1) if i > 0],
                           dtype=ids.dtype, device=ids.device)
    t, h, w = ids.shape
    h4, w4 = int(h / cfg.common_stride + 0.5), int(w / cfg.common_stride + 0.5)
    if len(seg_ids) == 0:
        z = torch.zeros(0, t, device=ids.device)
        return ClipThings(torch.zeros(0, dtype=torch.long, device=ids.device),
                          torch.zeros(0, t, h4, w4, device=ids.device), z.unsqueeze(-1).expand(0, t, 2),
                          z.unsqueeze(-1).expand(0, t, 2), z)
    full = torch.stack([ids == s for s in seg_ids])  # [N, T, H, W]
    classes = torch.stack([thing[full[i]][0] for i in range(len(seg_ids))])
    masks = F.interpolate(full.float(), size=(h4, w4), mode="bilinear", align_corners=False)
    sides = spans(full)
    scale = torch.sqrt(sides[..., 0] * sides[..., 1])
    return ClipThings(classes, masks, mass_centers(masks), sides, scale)


def _assign_things(things: ClipThings, cfg: TargetConfig, scale_range: tuple[int, int],
                   image_shape: tuple[int, int], mask_shape: tuple[int, int], level_shape: tuple[int, int],
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One clip and level: (heatmaps [C, T, h, w], masks [n, T, h4, w4], valid [n, T], classes [n])."""
    t = things.masks.shape[1]
    hl, wl = level_shape
    heat = torch.zeros(cfg.num_thing, t, hl, wl, device=things.masks.device)
    valid_tf = (things.scale >= scale_range[0]) & (things.scale <= scale_range[1])
    sel = valid_tf.any(dim=1).nonzero().flatten()[: cfg.max_instances]
    centers = things.centers[sel].clone()
    centers[..., 0] *= wl / mask_shape[1]
    centers[..., 1] *= hl / mask_shape[0]
    cint = centers.to(torch.int64)
    cint[..., 0].clamp_(0, wl)
    cint[..., 1].clamp_(0, hl)
    wh = torch.stack([things.sides[sel][..., 0] * (wl / image_shape[1]),
                      things.sides[sel][..., 1] * (hl / image_shape[0])], dim=-1)
    radius = gaussian_radius(wh, cfg.min_overlap).clamp_min(0).to(torch.int32)
    classes = things.classes[sel]
    for i in range(len(sel)):
        for f in range(t):
            x, y = int(cint[i, f, 0]), int(cint[i, f, 1])
            if x + y != 0:
                draw_gaussian(heat[classes[i], f], x, y, int(radius[i, f]), cfg.sigma_factor)
    return heat, things.masks[sel], valid_tf[sel], classes


def _assign_stuff(quarter: torch.Tensor, level_shape: tuple[int, int],
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One clip and level: (region targets [T, R, h, w], level masks [s, T, h, w], 1/4 maps [s, T, h4, w4],
    valid [s, T]) for the channels present at the level, in channel order."""
    scores = F.interpolate(quarter, size=level_shape, mode="bilinear", align_corners=False).clamp(max=1.0)
    scores = torch.where(scores < 0.5, torch.zeros_like(scores), scores)
    present = scores.flatten(2).sum(-1) > 0  # [T, R]
    chans = present.any(dim=0).nonzero().flatten()
    return (scores, (scores[:, chans] > 0).float().transpose(0, 1), quarter[:, chans].transpose(0, 1),
            present[:, chans].transpose(0, 1))


# ----------------------------------------------------------------------------------------------------------
# batch
# ----------------------------------------------------------------------------------------------------------

def _pad_stack(items: list[torch.Tensor], length: int, fill: float) -> torch.Tensor:
    """Stack [n_i, ...] tensors into [B, length, ...], padding with ``fill``."""
    shape = items[0].shape[1:]
    out = items[0].new_full((len(items), length, *shape), fill)
    for b, x in enumerate(items):
        out[b, : len(x)] = x
    return out


def _place(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Put [..., h, w] maps at the top-left of zeros [..., H, W] (the official padded 1/4 tensor)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    out = maps.new_zeros(*maps.shape[:-2], *size)
    out[..., : maps.shape[-2], : maps.shape[-1]] = maps
    return out


def _level_targets(per_clip: list[tuple], num_thing: int, t: int) -> LevelTargets:
    heats, tmasks, tvalid, tclass, regions, smasks, slabels, svalid = zip(*per_clip, strict=True)
    k = max(1, max(len(c) for c in tclass))
    s = max(1, max(len(v) for v in svalid))
    return LevelTargets(
        centers=torch.stack(heats).transpose(1, 2).flatten(0, 1),
        regions=torch.cat(regions),
        thing_masks=_pad_stack(list(tmasks), k, PAD_VALUE),
        thing_valid=_pad_stack(list(tvalid), k, False),
        thing_class=_pad_stack(list(tclass), k, 0),
        stuff_masks=_pad_stack(list(smasks), s, 0.0),
        stuff_labels=_pad_stack(list(slabels), s, 0.0),
        stuff_valid=_pad_stack(list(svalid), s, False),
    )


@torch.no_grad()
def build_targets(labels: torch.Tensor, level_shapes: Sequence[tuple[int, int]], mask_shape: tuple[int, int],
                  cfg: TargetConfig | None = None, image_shape: tuple[int, int] | None = None,
                  ) -> list[LevelTargets]:
    """Targets of every FPN level for a batch of clips.

    Args:
        labels: library panoptic ids [B, T, H, W] (0 void, ``(category + 1) * divisor + instance``).
        level_shapes: (h, w) of the centre/region heatmaps of each level (P3..P7).
        mask_shape: (h, w) of the high-resolution mask features (``encode_feat``, stride 4, padded input).
        cfg: category tables and constants; default VIPSeg.
        image_shape: (H, W) of the (padded) network input; default the label size.

    Returns:
        one :class:`LevelTargets` per level.
    """
    cfg = cfg or TargetConfig()
    if len(level_shapes) != len(cfg.instance_scales):
        raise ValueError(f"{len(level_shapes)} levels but {len(cfg.instance_scales)} instance scales")
    b, t, h, w = labels.shape
    image_shape = image_shape or (h, w)
    levels: list[list[tuple]] = [[] for _ in level_shapes]
    for ids in labels.long():
        cat = category_index(ids, cfg)
        things = clip_things(ids, cfg, cat)
        quarter = _place(stuff_quarter_maps(cat, cfg, tuple(things.masks.shape[-2:])), mask_shape)
        things.masks = _place(things.masks, mask_shape)
        for li, (shape, scale_range) in enumerate(zip(level_shapes, cfg.instance_scales, strict=True)):
            thing_part = _assign_things(things, cfg, scale_range, image_shape, mask_shape, tuple(shape))
            levels[li].append((*thing_part, *_assign_stuff(quarter, tuple(shape))))
    return [_level_targets(per_clip, cfg.num_thing, t) for per_clip in levels]


def level_shapes_of(image_shape: tuple[int, int], strides: Sequence[int] = (8, 16, 32, 64, 128)
                    ) -> list[tuple[int, int]]:
    """Heatmap sizes of an FPN with ``strides`` for a padded input (ceil division, as strided convs give)."""
    return [(math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)) for s in strides]
