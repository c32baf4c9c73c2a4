"""Clip-PanoFCN training losses (PanopticFCN's, per frame): focal loss on the centre and region heatmaps,
weighted dice on the dynamic-kernel masks (``specs/models.md`` §4.3; official ``loss.py`` and
``VideoPanopticFCN.losses``).

Per level l (P3..P7), with targets from :func:`vidseg.models.panoptic.targets.build_targets`:

* ``loss_pos_th``: sigmoid focal loss (alpha 0.25, gamma 2) summed over every centre-heatmap element of every
  level, divided by the number of (frame, instance, level) positives.
* ``loss_pos_st``: the same focal loss on the region heatmaps, averaged over the pixels of each (frame,
  channel) map, summed, divided by the number of frames B*T.
* ``loss_seg_th``: for every instance of a level, the top ``pos_num`` (3) positions of its class's predicted
  centre probability inside its mask (1/4 mask resized to the level > 0.1) give kernels; each kernel's mask is
  scored by dice (1 - 2 sum(p t) / (sum p^2 + sum t^2), soft targets), weighted by its probability normalised over
  the ``pos_num`` kernels. The weights are not detached (as the official code). Summed over the (frame,
  instance) positives, divided by their number, times ``seg_weight`` (3).
* ``loss_seg_st``: one kernel per stuff channel present at a level: the kernel map summed over the channel's
  binary level region and divided by the level's pixel count (``adaptive_avg_pool2d`` of the masked map, as
  the official code, i.e. not a region mean); dice against the soft 1/4 map, summed over (frame, channel)
  positives, divided by their number, times ``seg_weight``.

One deviation is selectable: the official code flattens the kernel weights in (clip, instance, frame) order but
the masks in (clip, frame, instance) order, so with several frames and instances the weights of one
(instance, frame) pair are applied to another's masks. ``weight_order="official"`` reproduces that;
the default ``"matched"`` pairs each mask with its own weights. With one frame or one instance both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from vidseg.models.panoptic.targets import LevelTargets, TargetConfig, build_targets

EPS = 1e-8


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
                       ) -> torch.Tensor:
    """Element-wise RetinaNet focal loss on logits with (soft) targets, same shape as the inputs.

    ``alpha_t * BCE * (1 - p_t) ** gamma`` with ``p_t = p t + (1 - p)(1 - t)``, ``alpha_t = a t + (1 - a)(1 - t)``;
    ``alpha < 0`` disables the alpha weighting.
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def dice_loss(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - 2 sum(p t) / max(sum p^2 + sum t^2, eps) over the last dimension."""
    denom = (probs ** 2).sum(-1) + (targets ** 2).sum(-1)
    return 1 - 2 * (probs * targets).sum(-1) / denom.clamp(min=EPS)


def _frame_major(x: torch.Tensor) -> torch.Tensor:
    """[B, K, T, ...] -> [B*T, K, ...]."""
    return x.transpose(1, 2).flatten(0, 1)


def _zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A zero that keeps ``x`` in the autograd graph (the official empty-batch value)."""
    return (x.flatten()[:1].sigmoid().mean() + EPS) * 0


def _top_positions(center_logits: torch.Tensor, tgt: LevelTargets, b: int, t: int, pos_num: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``pos_num`` centre probabilities of each instance's class inside its mask.

    Returns:
        (values [B, K, T, pos_num] with grad, flat indices [B, K, T, pos_num]); positions beyond the map
        (maps smaller than ``pos_num`` pixels) get value 0 and index 0.
    """
    hl, wl = center_logits.shape[-2:]
    k = tgt.thing_masks.shape[1]
    masks = F.interpolate(_frame_major(tgt.thing_masks), size=(hl, wl), mode="bilinear", align_corners=False)
    masks = masks.view(b, t, k, hl, wl).transpose(1, 2)  # [B, K, T, h, w]
    probs = center_logits.float().view(b, t, -1, hl, wl).sigmoid()
    cls = tgt.thing_class.view(b, k, 1, 1, 1).expand(b, k, t, hl, wl)
    chosen = torch.gather(probs.transpose(1, 2), 1, cls)  # [B, K, T, h, w]: the instance's class channel
    keep = (masks > 0.1) & (masks < 255)
    guidance = torch.where(keep, chosen, torch.zeros_like(chosen)).flatten(3)
    n = min(pos_num, guidance.shape[-1])
    values, index = torch.topk(guidance, k=n, dim=-1)
    if n < pos_num:
        values = F.pad(values, (0, pos_num - n))
        index = F.pad(index, (0, pos_num - n))
    return values, index


def _gather_kernels(kernels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """kernels [B*T, C, h, w], flat positions [B, K, T, P] -> gathered features [B*T, C, K, P]."""
    bt, c = kernels.shape[:2]
    _, k, _, p = index.shape
    idx = _frame_major(index).reshape(bt, 1, k * p).expand(bt, c, k * p)
    return torch.gather(kernels.flatten(2), 2, idx).view(bt, c, k, p)


def _stuff_kernels(kernels: torch.Tensor, tgt: LevelTargets) -> torch.Tensor:
    """Region-pooled kernels [B*T, S, C]: sum over the channel's level region / (h * w)."""
    regions = _frame_major(tgt.stuff_masks).to(kernels.dtype)  # [B*T, S, h, w]
    hw = kernels.shape[-2] * kernels.shape[-1]
    return torch.einsum("nshw,nchw->nsc", regions, kernels) / hw


def _dice_terms(mask_logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None,
                valid: torch.Tensor) -> torch.Tensor:
    """Sum of (weighted) dice over the valid rows.

    Args:
        mask_logits: [R, P, h*w] (P kernels per row) or [R, h*w].
        targets: [R, h*w].
        weights: [R, P] (normalised here over P) or None.
        valid: [R] bool.
    """
    logits = mask_logits[valid].float()
    tgt = targets[valid].float()
    if weights is None:
        return dice_loss(torch.sigmoid(logits), tgt).sum()
    w = weights[valid]
    w = w / w.sum(-1, keepdim=True).clamp(min=EPS)
    return (dice_loss(torch.sigmoid(logits), tgt.unsqueeze(1)) * w).sum()


class PanopticFCNLoss:
    """The four weighted loss terms of Clip-PanoFCN from the network's train-mode outputs.

    Args:
        target_cfg: category tables and target constants (default VIPSeg).
        pos_num: kernel positions per instance (official ``POS_NUM`` 3).
        pos_weight: weight of the focal terms (1.0).
        seg_weight: weight of the dice terms (3.0).
        focal_alpha / focal_gamma: focal-loss parameters (0.25, 2).
        weight_order: ``"matched"`` (default) or ``"official"`` (see the module docstring).
    """

    def __init__(self, target_cfg: TargetConfig | None = None, *, pos_num: int = 3, pos_weight: float = 1.0,
                 seg_weight: float = 3.0, focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 weight_order: str = "matched") -> None:
        if weight_order not in ("matched", "official"):
            raise ValueError(f"weight_order must be 'matched' or 'official', got {weight_order!r}")
        self.target_cfg = target_cfg or TargetConfig()
        self.pos_num = pos_num
        self.pos_weight = pos_weight
        self.seg_weight = seg_weight
        self.alpha = focal_alpha
        self.gamma = focal_gamma
        self.weight_order = weight_order

    def targets(self, outputs: dict[str, Any], labels: torch.Tensor) -> list[LevelTargets]:
        """Targets for ``outputs`` and ids [B, T, H, W]: heatmap sizes from ``centers``, the mask size from
        ``encode_feat``, and the padded input size (the official box rescale uses it) as 4 x the mask size."""
        shapes = [tuple(c.shape[-2:]) for c in outputs["centers"]]
        mask_shape = tuple(outputs["encode_feat"].shape[-2:])
        stride = self.target_cfg.common_stride
        image_shape = (mask_shape[0] * stride, mask_shape[1] * stride)
        return build_targets(labels, shapes, mask_shape, self.target_cfg, image_shape=image_shape)

    def __call__(self, outputs: dict[str, Any], labels: torch.Tensor, *,
                 thing_embed: Callable[[torch.Tensor], torch.Tensor],
                 stuff_embed: Callable[[torch.Tensor], torch.Tensor],
                 targets: Sequence[LevelTargets] | None = None) -> dict[str, torch.Tensor]:
        """Loss terms ``loss_pos_th``, ``loss_pos_st``, ``loss_seg_th``, ``loss_seg_st`` (already weighted).

        Args:
            outputs: train-mode network outputs: ``centers``/``regions``/``kernels`` (per level, frame-major
                [B*T, ., h, w]) and ``encode_feat`` [B*T, E, H/4, W/4].
            labels: library panoptic ids [B, T, H, W].
            thing_embed / stuff_embed: the generators' 1x1 convs, [N, C, K, P] -> [N, E, K, P].
            targets: precomputed targets (default: built from ``labels``).
        """
        b, t = labels.shape[:2]
        targets = list(targets) if targets is not None else self.targets(outputs, labels)
        encode = outputs["encode_feat"]
        pos_th, pos_st = [], []
        th_feats, th_weights, st_feats = [], [], []
        for center, region, kernel, tgt in zip(outputs["centers"], outputs["regions"], outputs["kernels"],
                                               targets, strict=True):
            pos_th.append(sigmoid_focal_loss(center.float(), tgt.centers, self.alpha, self.gamma).sum())
            focal_st = sigmoid_focal_loss(region.float(), tgt.regions, self.alpha, self.gamma)
            pos_st.append(focal_st.flatten(2).mean(-1).sum())
            values, index = _top_positions(center, tgt, b, t, self.pos_num)
            th_feats.append(_gather_kernels(kernel, index))
            th_weights.append(values)
            st_feats.append(_stuff_kernels(kernel, tgt))
        thing_valid = torch.cat([tg.thing_valid for tg in targets], dim=1)  # [B, K, T]
        stuff_valid = torch.cat([tg.stuff_valid for tg in targets], dim=1)
        n_th = int(thing_valid.sum())
        n_st = int(stuff_valid.sum())
        seg_th = self._thing_dice(torch.cat(th_feats, 2), torch.cat(th_weights, 1), targets, thing_valid,
                                  encode, thing_embed, n_th)
        seg_st = self._stuff_dice(torch.cat(st_feats, 1), targets, stuff_valid, encode, stuff_embed, n_st)
        return {
            "loss_pos_th": self.pos_weight * sum(pos_th) / max(n_th, 1),
            "loss_pos_st": self.pos_weight * sum(pos_st) / max(b * t, 1),
            "loss_seg_th": self.seg_weight * seg_th / max(n_th, 1),
            "loss_seg_st": self.seg_weight * seg_st / max(n_st, 1),
        }

    def _thing_dice(self, feats: torch.Tensor, weights: torch.Tensor, targets: Sequence[LevelTargets],
                    valid: torch.Tensor, encode: torch.Tensor, embed: Callable, n_valid: int) -> torch.Tensor:
        """feats [B*T, C, K, P], weights [B, K, T, P] -> summed weighted dice of the valid (frame, instance)."""
        bt, _, k, p = feats.shape
        kern = embed(feats).flatten(2).transpose(1, 2)  # [B*T, K*P, E] (instance-major, then position)
        if n_valid == 0:
            return _zero_like_graph(kern)
        logits = torch.matmul(kern, encode.flatten(2).to(kern.dtype))  # [B*T, K*P, h*w]
        masks = _frame_major(torch.cat([tg.thing_masks for tg in targets], 1)).flatten(2)  # [B*T, K, h*w]
        if self.weight_order == "official":
            w = weights.reshape(-1, p)  # (clip, instance, frame) rows read as (clip, frame, instance)
        else:
            w = _frame_major(weights).reshape(-1, p)
        return _dice_terms(logits.view(bt * k, p, -1), masks.reshape(bt * k, -1), w,
                           _frame_major(valid).reshape(-1))

    def _stuff_dice(self, feats: torch.Tensor, targets: Sequence[LevelTargets], valid: torch.Tensor,
                    encode: torch.Tensor, embed: Callable, n_valid: int) -> torch.Tensor:
        """feats [B*T, S, C] -> summed dice of the valid (frame, stuff channel) pairs."""
        bt, s, c = feats.shape
        kern = embed(feats.reshape(bt * s, c, 1, 1)).view(bt, s, -1)  # [B*T, S, E]
        if n_valid == 0:
            return _zero_like_graph(kern)
        logits = torch.matmul(kern, encode.flatten(2).to(kern.dtype))  # [B*T, S, h*w]
        labels = _frame_major(torch.cat([tg.stuff_labels for tg in targets], 1)).flatten(2)
        return _dice_terms(logits.reshape(bt * s, -1), labels.reshape(bt * s, -1), None,
                           _frame_major(valid).reshape(-1))
