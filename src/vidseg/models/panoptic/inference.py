"""Clip-level inference of Clip-PanoFCN, as the official ``VideoPanopticFCN.inference`` (spec §4.4 with §4.5).

One clip of T frames (the network's output dict for one clip) becomes a panoptic segmentation of all T frames:

1. Thing candidates per FPN level and frame: centre sigmoid ``p`` -> ``(p + avg_pool_k(p)) / 2`` (k = 3,3,3,5,5
   for P3..P7, zero padding counted) -> 3x3 max-pool NMS -> two-stage top-k with ``K = min(h*w, 50)`` -> keep
   score > 0.05; the kernel feature is gathered at each position of its own frame.
2. Stuff candidates per level: the region sigmoids of the clip stacked along H, clip-level argmax; a class's score is
   its mean probability over its argmax pixels (keep > 0.05, the "thing" channel 0 included); its kernel feature is
   ``sum(region * kernel) / (T*h*w)`` (the official ``adaptive_avg_pool2d`` over the whole stacked map).
3. Things: all candidates sorted by score, ``embed_extractor``, kernel fusion (cosine >= 0.9 within a class, the
   official cumsum rule), and ONE fused kernel per instance applied to every frame of the clip. Stuff: candidates
   of the same class averaged (kernels and scores).
4. ``process_inst``: mask probability > 0.4 over the clip, score x mean mask probability, keep >= 0.05, top 100,
   masks = x4 bilinear upsampled probabilities > 0.4.
5. Merge: things with score >= 0.2 in that order; a thing is skipped only if in every frame its mask is empty or
   more than half covered. ``merge="official"`` paints the whole mask, so later instances overwrite earlier ones
   (the official code computes the de-overlapped mask but never uses it). The default ``merge="deoverlap"`` paints
   only the still-free pixels, and only in frames where the thing is not skipped (panopticapi's rule per frame).
   Stuff: argmax of the upsampled stuff maps; a class is kept if its free area over the whole clip is >= 4096
   pixels; the "thing" channel 0 and uncovered pixels stay void.

Output: :class:`ClipPanoptic` with categories (VIPSeg 0-based ids through ``thing_categories`` /
``stuff_categories``), per-category instance indices (the official ``k`` of ``cat * 100 + k``: the rank of the
thing among the clip's segments of its class, counting segments later overwritten) and the L2-normalised fused
kernels per class, which the inter-clip tracker (``tracking.py``) matches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vidseg.categories import vipseg_categories
from vidseg.models.panoptic.clip_panofcn import CENTER_POOL_SIZES, ClipPanoFCN

MERGE_MODES = ("deoverlap", "official")


@dataclass(frozen=True)
class ClipInferenceSettings:
    """Thresholds of the official config (names as there) and the category maps.

    Attributes:
        thing_categories: category id of each thing channel (VIPSeg: the sorted thing ids).
        stuff_categories: category id of each stuff channel 1..S (channel 0 is "thing").
        merge: ``"deoverlap"`` (default, correct) or ``"official"`` (later instances overwrite).
    """

    thing_categories: tuple[int, ...]
    stuff_categories: tuple[int, ...]
    center_top_num: int = 100        # POSITION_HEAD.THING.TOP_NUM (per level and frame: half of it)
    center_thres: float = 0.05       # POSITION_HEAD.THING.THRES
    stuff_thres: float = 0.05        # POSITION_HEAD.STUFF.THRES
    similar_thres: float = 0.9       # INFERENCE.SIMILAR_THRES (cosine)
    class_specific: bool = True      # INFERENCE.CLASS_SPECIFIC
    inst_thres: float = 0.4          # INFERENCE.INST_THRES
    score_thres: float = 0.05        # hard-coded in process_inst
    combine_inst_thres: float = 0.2  # COMBINE.INST_THRESH
    overlap_thres: float = 0.5       # COMBINE.OVERLAP_THRESH
    stuff_area_limit: int = 4096     # COMBINE.STUFF_AREA_LIMIT (summed over the clip)
    merge: str = "deoverlap"
    common_stride: int = 4
    pool_sizes: tuple[int, ...] = CENTER_POOL_SIZES

    def __post_init__(self) -> None:
        if self.merge not in MERGE_MODES:
            raise ValueError(f"merge must be one of {MERGE_MODES}, got {self.merge!r}")


def vipseg_settings(**overrides) -> ClipInferenceSettings:
    """Settings for the 58 thing / 66 stuff VIPSeg model (channel i = i-th smallest thing / stuff id)."""
    cats = vipseg_categories()
    return ClipInferenceSettings(thing_categories=tuple(sorted(c.id for c in cats if c.isthing)),
                                 stuff_categories=tuple(sorted(c.id for c in cats if not c.isthing)), **overrides)


@dataclass
class ClipPanoptic:
    """Panoptic result of one clip.

    Attributes:
        category: long [T, H, W], category id, -1 = void.
        instance: long [T, H, W], per-category instance index k >= 0 for things, -1 for stuff and void.
        embeddings: category -> list of L2-normalised fused kernels [C] (index k = instance k).
    """

    category: torch.Tensor
    instance: torch.Tensor
    embeddings: dict[int, list[torch.Tensor]] = field(default_factory=dict)

    def official_ids(self, label_divisor: int = 100) -> torch.Tensor:
        """Ids as the official ``panoptic_seg_mask``: thing ``cat * 100 + k``, stuff ``cat``, void -1."""
        ids = torch.where(self.instance >= 0, self.category * label_divisor + self.instance, self.category)
        return torch.where(self.category < 0, torch.full_like(ids, -1), ids)


# ----------------------------------------------------------------------------------------------------------
# candidates
# ----------------------------------------------------------------------------------------------------------

def center_candidates(center_logits: torch.Tensor, kernels: torch.Tensor, pool_size: int, top_num: int,
                      thres: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thing candidates of one level for all frames of a clip.

    Args:
        center_logits: [T, C, h, w]; kernels: [T, D, h, w].
        pool_size: smoothing window; top_num: K per frame (already halved); thres: strict score threshold.

    Returns:
        (kernel features [M, D], classes long [M], scores [M]) frame by frame in top-k order.
    """
    p = center_logits.sigmoid()
    p = (p + F.avg_pool2d(p, pool_size, stride=1, padding=(pool_size - 1) // 2)) / 2.0
    p = p * (F.max_pool2d(p, 3, stride=1, padding=1) == p).to(p.dtype)
    t, c, h, w = p.shape
    k = min(h * w, top_num)
    per_class_scores, per_class_inds = torch.topk(p.reshape(t, c, -1), k)
    scores, index = torch.topk(per_class_scores.reshape(t, -1), k)
    classes = torch.div(index, k, rounding_mode="floor")
    positions = torch.gather((per_class_inds % (h * w)).reshape(t, -1), 1, index)
    keep = scores > thres
    flat = kernels.reshape(t, kernels.shape[1], h * w)
    feats = [flat[f][:, positions[f][keep[f]]].t() for f in range(t)]
    return torch.cat(feats, 0), classes[keep], scores[keep]


def stuff_candidates(region_logits: torch.Tensor, kernels: torch.Tensor,
                     thres: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stuff candidates of one level from the clip-level argmax of the stacked region maps.

    Args:
        region_logits: [T, S1, h, w] (channel 0 = thing); kernels: [T, D, h, w].

    Returns:
        (kernel features [N, D], channel indices long [N] ascending, scores [N]).
    """
    t, s1, h, w = region_logits.shape
    prob = region_logits.sigmoid().permute(1, 0, 2, 3).reshape(s1, t * h * w)
    cate = prob.argmax(dim=0)
    classes, counts = torch.unique(cate, return_counts=True)
    onehot = (cate.unsqueeze(0) == classes.unsqueeze(1)).to(prob.dtype)  # [N, T*h*w]
    scores = (prob[classes] * onehot).sum(dim=1) / counts
    keep = scores > thres
    flat_kernels = kernels.permute(1, 0, 2, 3).reshape(kernels.shape[1], t * h * w)
    feats = onehot[keep] @ flat_kernels.t() / (t * h * w)
    return feats, classes[keep], scores[keep]


def fuse_thing_kernels(weights: torch.Tensor, classes: torch.Tensor, scores: torch.Tensor, thres: float,
                       class_specific: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Official thing kernel fusion on score-sorted kernels [M, C] (cosine >= thres, cumsum rule).

    Candidate j is kept iff no earlier candidate claims it; a kept j averages the kernels k >= j it claims and
    that no earlier candidate claimed (claimed = similar, same class if ``class_specific``).
    """
    norm = weights.norm(dim=1, keepdim=True).clamp(min=1e-8)
    unit = weights / norm
    label = (unit @ unit.t()).triu(diagonal=0) >= thres
    if class_specific:
        label = label & (classes.unsqueeze(-1) == classes.unsqueeze(0))
    first = torch.cumsum(label.to(torch.int64), dim=0) < 2
    keep = first.diagonal(0)
    members = (label[keep] & first[keep]).to(weights.dtype)
    fused = members @ weights / members.sum(dim=1, keepdim=True)
    return fused, classes[keep], scores[keep]


def fuse_stuff_kernels(weights: torch.Tensor, classes: torch.Tensor,
                       scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average the kernels and scores of candidates of the same class; classes come out ascending."""
    unique = torch.unique(classes)
    members = (classes.unsqueeze(0) == unique.unsqueeze(1)).to(weights.dtype)
    count = members.sum(dim=1, keepdim=True)
    return members @ weights / count, unique, (members @ scores.unsqueeze(-1) / count).squeeze(-1)


def _level_candidates(outputs: dict, clip: int, settings: ClipInferenceSettings):
    """Thing and stuff candidates of one clip over all head levels, concatenated in level order."""
    t = outputs["num_frames"]
    frames = slice(clip * t, (clip + 1) * t)
    things, stuffs = [], []
    for level, pool in enumerate(settings.pool_sizes):
        kernels = outputs["kernels"][level][frames]
        things.append(center_candidates(outputs["centers"][level][frames], kernels, pool,
                                        settings.center_top_num // 2, settings.center_thres))
        stuffs.append(stuff_candidates(outputs["regions"][level][frames], kernels, settings.stuff_thres))
    return [torch.cat(parts, 0) for parts in zip(*things)], [torch.cat(parts, 0) for parts in zip(*stuffs)]


def _upsample(maps: torch.Tensor, stride: int, image_size: tuple[int, int]) -> torch.Tensor:
    """[N, K, h, w] -> x ``stride`` bilinear (align_corners=False), cropped to ``image_size``."""
    up = F.interpolate(maps, scale_factor=stride, mode="bilinear", align_corners=False)
    return up[..., : image_size[0], : image_size[1]]


def _axis_window(active: torch.Tensor, stride: int, limit: int) -> tuple[int, int, int, int] | None:
    """Where along one axis a x``stride`` bilinear upsampling can exceed the threshold.

    Args:
        active: bool [n] low-resolution positions with a value near or above the threshold.
        stride: upsampling factor; limit: output size kept (the unpadded image size).

    Returns:
        (r0, r1, o0, o1): upsample low-res [r0, r1) and keep outputs [o0, o1); None if nothing is active. Output
        ``o`` reads source ``(o + 0.5) / stride - 0.5`` and its floor and floor + 1 (clamped); in the crop it
        reads exactly the same rows with the same weights, and every output outside [o0, o1) reads only
        inactive rows, so its value stays below the threshold.
    """
    where = torch.nonzero(active).flatten()
    if where.numel() == 0:
        return None
    n = active.numel()
    r0, r1 = max(int(where[0]) - 1, 0), min(int(where[-1]) + 2, n)
    o0 = 0 if r0 == 0 else math.ceil(stride * r0 + stride / 2 - 0.5)
    o1 = n * stride if r1 == n else math.ceil(stride * (r1 - 0.5) - 0.5)
    o1 = min(o1, limit)
    return (r0, r1, o0, o1) if o1 > o0 else None


def thing_mask_window(prob: torch.Tensor, stride: int, image_size: tuple[int, int],
                      thres: float) -> tuple[torch.Tensor, tuple[slice, slice]] | None:
    """The full-resolution mask ``upsample(prob) > thres`` of one thing, computed only where it can be True.

    Equals ``_upsample(prob[:, None], stride, image_size)[:, 0] > thres`` (bilinear weights are convex, so an
    output whose four sources are all below ``thres - 1e-6`` is below ``thres``); for a thing that covers part of
    the image only that part is upsampled.

    Args:
        prob: [T, h, w] low-resolution probabilities.

    Returns:
        (bool mask [T, hh, ww], (row slice, column slice) of the image it covers), or None if empty everywhere.
    """
    active = prob > thres - 1e-6
    rows = _axis_window(active.any(dim=2).any(dim=0), stride, image_size[0])
    cols = _axis_window(active.any(dim=1).any(dim=0), stride, image_size[1])
    if rows is None or cols is None:
        return None
    (r0, r1, y0, y1), (c0, c1, x0, x1) = rows, cols
    up = F.interpolate(prob[:, None, r0:r1, c0:c1], scale_factor=stride, mode="bilinear", align_corners=False)
    mask = up[:, 0, y0 - stride * r0: y1 - stride * r0, x0 - stride * c0: x1 - stride * c0] > thres
    return mask, (slice(y0, y1), slice(x0, x1))


@dataclass
class _Things:
    """Thing instances after process_inst: low-res probabilities [T, F, h, w], classes, scores, kernels [F, C]."""

    prob: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    kernels: torch.Tensor


def process_instances(masks_logits: torch.Tensor, classes: torch.Tensor, scores: torch.Tensor,
                      kernels: torch.Tensor, settings: ClipInferenceSettings) -> _Things | None:
    """Official ``process_inst`` rescoring and filtering.

    Args:
        masks_logits: [T, F, h, w] logits of the fused kernels on every frame.
        classes, scores: [F]; kernels: fused kernels [F, C].

    Returns:
        The kept things in final order (score descending, at most ``center_top_num``), or None.
    """
    t, n, h, w = masks_logits.shape
    prob = masks_logits.permute(1, 0, 2, 3).reshape(n, t * h, w).sigmoid()
    mask = prob > settings.inst_thres
    sum_masks = mask.sum((1, 2)).to(prob.dtype) + 1e-6
    scores = scores * ((prob * mask.to(prob.dtype)).sum((1, 2)) / sum_masks)
    order = torch.argsort(scores, descending=True)
    prob, scores, classes, kernels = prob[order], scores[order], classes[order], kernels[order]
    keep = scores >= settings.score_thres
    if int(keep.sum()) == 0:
        return None
    prob, scores, classes, kernels = prob[keep], scores[keep], classes[keep], kernels[keep]
    order = torch.argsort(scores, descending=True)[: settings.center_top_num]
    prob = prob[order].reshape(-1, t, h, w).permute(1, 0, 2, 3)
    return _Things(prob, classes[order], scores[order], kernels[order])


def stuff_argmax(stuff_logits: torch.Tensor, stuff_channels: torch.Tensor, image_size: tuple[int, int],
                 stride: int) -> torch.Tensor:
    """Per-pixel stuff channel (0 = "thing") from the fused stuff kernels' logits, frame by frame.

    Args:
        stuff_logits: [T, U, h, w] for the kept channels ``stuff_channels`` [U] (ascending).

    Returns:
        long [T, H, W]: the official argmax over a 0-filled [S+1] map in which only the kept channels are set.
    """
    out = torch.zeros(stuff_logits.shape[0], *image_size, dtype=torch.long, device=stuff_logits.device)
    if stuff_channels.numel() == 0:
        return out
    for f in range(stuff_logits.shape[0]):
        up = _upsample(stuff_logits[f: f + 1].sigmoid(), stride, image_size)[0]
        index = up.argmax(dim=0)  # first maximum on ties, as the official argmax over channel order
        best = up.gather(0, index.unsqueeze(0))[0]
        out[f] = torch.where(best > 0, stuff_channels[index], torch.zeros_like(index))
    return out


def _thing_visible(mask: torch.Tensor, seg: torch.Tensor, overlap_thres: float) -> torch.Tensor:
    """Per frame: True unless the mask is empty or more than ``overlap_thres`` of it is already taken."""
    area = mask.flatten(1).sum(1)
    inter = (mask & (seg > 0)).flatten(1).sum(1)
    overlapped = (area == 0) | (inter.to(torch.float64) > overlap_thres * area.to(torch.float64))
    return ~overlapped


def merge_panoptic(things: _Things | None, stuff: torch.Tensor, image_size: tuple[int, int],
                   settings: ClipInferenceSettings) -> ClipPanoptic:
    """Official ``combine_thing_and_stuff`` over the clip (``settings.merge`` chooses the overwrite rule).

    Args:
        things: output of :func:`process_instances` (or None).
        stuff: long [T, H, W] stuff channels from :func:`stuff_argmax`.
    """
    seg = torch.zeros_like(stuff, dtype=torch.int32)
    segments: list[tuple[int, int, torch.Tensor | None]] = []  # (category, segment id, kernel or None)
    if things is not None:
        for j in torch.nonzero(things.scores >= settings.combine_inst_thres).flatten().tolist():
            window = thing_mask_window(things.prob[:, j], settings.common_stride, image_size, settings.inst_thres)
            if window is None:  # empty in every frame: skipped, as the official rule does
                continue
            mask, (rows, cols) = window
            region = seg[:, rows, cols]  # a view: painting it paints seg
            visible = _thing_visible(mask, region, settings.overlap_thres)
            if not bool(visible.any()):
                continue
            sid = len(segments) + 1
            if settings.merge == "official":
                region[mask] = sid
            else:
                region[mask & (region == 0) & visible.view(-1, 1, 1)] = sid
            segments.append((settings.thing_categories[int(things.classes[j])], sid, things.kernels[j]))
    # stuff regions are disjoint, so the official channel-by-channel painting equals one lookup of the free pixels
    free = seg == 0
    areas = torch.bincount(stuff[free], minlength=int(stuff.max()) + 1)
    lut = torch.zeros(areas.numel(), dtype=seg.dtype, device=seg.device)
    for channel in torch.unique(stuff).tolist():
        if channel == 0 or int(areas[channel]) < settings.stuff_area_limit:
            continue
        lut[channel] = len(segments) + 1
        segments.append((settings.stuff_categories[channel - 1], len(segments) + 1, None))
    return _label_segments(torch.where(free, lut[stuff], seg), segments)


def _label_segments(seg: torch.Tensor, segments: list[tuple[int, int, torch.Tensor | None]]) -> ClipPanoptic:
    """Segment ids (1..n in ``segments`` order) -> category and per-category instance index maps."""
    category_lut = torch.full((len(segments) + 1,), -1, dtype=torch.long, device=seg.device)
    instance_lut = torch.full_like(category_lut, -1)
    embeddings: dict[int, list[torch.Tensor]] = {}
    for cat, sid, kernel in segments:
        category_lut[sid] = cat
        if kernel is not None:
            bank = embeddings.setdefault(cat, [])
            instance_lut[sid] = len(bank)
            bank.append(F.normalize(kernel, p=2, dim=0))
    index = seg.long()
    return ClipPanoptic(category_lut[index], instance_lut[index], embeddings)


@torch.no_grad()
def clip_inference(model: ClipPanoFCN, outputs: dict, settings: ClipInferenceSettings,
                   clip: int = 0) -> ClipPanoptic:
    """Panoptic segmentation of clip ``clip`` of a forward pass (module docstring, steps 1-5).

    Args:
        model: the network (its generators' ``embed_extractor`` is applied here).
        outputs: ``model(frames)`` for frames [B, T, 3, H, W].
        settings: thresholds and category maps.
        clip: which clip of the batch.

    Returns:
        :class:`ClipPanoptic` at the unpadded input size.
    """
    image_size = tuple(outputs["image_size"])
    t = outputs["num_frames"]
    encode = outputs["encode_feat"][clip * t: (clip + 1) * t]
    (th_feats, th_classes, th_scores), (st_feats, st_classes, st_scores) = _level_candidates(outputs, clip, settings)
    things = None
    if th_scores.numel() > 0:
        order = torch.argsort(th_scores, descending=True)
        kernels = model.thing_embed(th_feats[order].t()[None, :, :, None])[0, :, :, 0].t()
        kernels, classes, scores = fuse_thing_kernels(kernels, th_classes[order], th_scores[order],
                                                      settings.similar_thres, settings.class_specific)
        things = process_instances(model.dynamic_masks(kernels, encode), classes, scores, kernels, settings)
    stuff_channels = st_classes[:0]
    stuff_logits = encode[:, :0]
    if st_scores.numel() > 0:
        kernels = model.stuff_embed(st_feats[:, :, None, None])[:, :, 0, 0]
        kernels, stuff_channels, _ = fuse_stuff_kernels(kernels, st_classes, st_scores)
        stuff_logits = model.dynamic_masks(kernels, encode)
    stuff = stuff_argmax(stuff_logits, stuff_channels, image_size, settings.common_stride)
    return merge_panoptic(things, stuff, image_size, settings)
