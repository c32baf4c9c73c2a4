"""STSC: UperNet-Swin with the spatial-temporal consistency loss (paper 004, VSPW 2021 winner).

STSC has no public code; everything beyond the paper is our choice and is documented in docs/models.md:

* Segmentation network: UperNet on Swin (``upernet_swin_x``) with its aux head (0.4); at test time STSC is
  an image model (``support_offsets == ()``) and segments each frame on its own.
* Training clips are ``[reference(s)..., target]`` (target last, e.g. frames ``t+k`` and ``t``; the loss is
  symmetric in time so the sign of ``k`` does not matter). CE is applied to every frame of the clip.
* Projection head (paper: FC -> BN -> ReLU, dim 512, following MoCo v2's head): applied to the *encoder*
  features (the paper feeds the encoder output to it): the four Swin stages, bilinearly sampled at the
  sampled pixel positions of the stride-8 grid and concatenated; then L2-normalised.
* Pixels: labels are nearest-downsampled to the stride-8 grid; per frame a class-balanced random sample of at
  most ``stcl_samples`` labelled positions is drawn (:func:`vidseg.models.losses.balanced_sample`). Anchors are
  the target's samples; positives/negatives come from the samples of the target and the references. The
  projection runs on the samples only, so the memory of the loss is O(samples^2) whatever the crop size.
* Loss: ``1.0 x CE + 0.2 x STCL`` (eq. 1-2, tau = 0.07), weights configurable. The CE (and the aux CE) is
  reduced as mmsegmentation 0.x, the UperNet-Swin codebase (mean over all pixels, ignored ones counting 0;
  ``loss_reduction="valid"`` for the mean over labelled pixels). The STCL term is ours (no official code).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vidseg.models.baselines import ImageSegmenter, build_upernet, load_backbone_weights
from vidseg.models.checkpoint import load_weights
from vidseg.models.heads.common import check_clip, check_labels
from vidseg.models.losses import PixelLoss, balanced_sample, stcl_loss


class ProjectionHead(nn.Module):
    """FC -> BN -> ReLU (paper 004), applied to per-pixel feature vectors, then L2 normalisation.

    Shapes: [N, C_in] -> [N, dim], unit norm.
    """

    def __init__(self, in_channels: int, dim: int = 512) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, dim)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.relu(self.bn(self.fc(x))), dim=1)


def _grid_centres(h: int, w: int, idx: torch.Tensor) -> torch.Tensor:
    """Normalised (x, y) of the centres of cells ``idx`` (row-major) of an h x w grid, for grid_sample."""
    ys, xs = (idx // w).float(), (idx % w).float()
    return torch.stack([(2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1], dim=1)


class STSC(ImageSegmenter):
    """UperNet-Swin trained with CE + STCL. See the module docstring for the design choices.

    Args (beyond :class:`ImageSegmenter`):
        proj_dim: projection dimension (512).
        temperature: tau (0.07).
        stcl_weight: weight of the STCL (0.2); ``seg_weight`` of the CE (1.0).
        stcl_samples: maximum sampled pixels per frame (class-balanced), bounding the loss's memory.
        stcl_stride: stride of the pixel grid of the loss (8).
        train_support_offsets: reference frame offsets used by the training sampler (``(-3,)``).
    """

    def __init__(self, *, proj_dim: int = 512, temperature: float = 0.07, stcl_weight: float = 0.2,
                 seg_weight: float = 1.0, stcl_samples: int = 1024, stcl_stride: int = 8,
                 train_support_offsets: tuple[int, ...] = (-3,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.projection = ProjectionHead(sum(self.backbone.out_channels), proj_dim)
        self.temperature, self.stcl_weight, self.seg_weight = temperature, stcl_weight, seg_weight
        self.stcl_samples, self.stcl_stride = stcl_samples, stcl_stride
        self.train_support_offsets = train_support_offsets
        self.generator: torch.Generator | None = None  # set for reproducible anchor sampling

    def forward(self, frames: torch.Tensor) -> Any:
        """frames [B, T, 3, H, W]. eval: logits of the last frame; train: per-frame outputs for :meth:`losses`.

        Train outputs: ``logits`` [B*T, K, h, w], ``aux`` [B*T, K, h', w'], ``levels`` (encoder levels of the
        B*T frames, frame-major within a clip: index ``b * T + t``), ``num_frames`` T.
        """
        if not self.training:
            return super().forward(frames)
        check_clip(frames, type(self).__name__)
        b, t = frames.shape[:2]
        feats = self.encode_frame(frames.flatten(0, 1))
        out: dict[str, Any] = self._train_outputs(feats)
        out.update(levels=feats, num_frames=t, image_size=tuple(frames.shape[-2:]))
        return out

    def _sample(self, labels: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], int, int]:
        """labels [B*T, H, W] -> per frame: sampled cell indices and their labels on the stride grid."""
        h, w = (math.ceil(s / self.stcl_stride) for s in labels.shape[-2:])
        grid = F.interpolate(labels[:, None].float(), size=(h, w), mode="nearest")[:, 0].long().flatten(1)
        idx = [balanced_sample(g, self.stcl_samples, self.generator) for g in grid]
        return idx, [g[i] for g, i in zip(grid, idx, strict=True)], h, w

    def _embed(self, levels: tuple[torch.Tensor, ...], n: int, points: torch.Tensor) -> torch.Tensor:
        """Encoder features of frame ``n`` at normalised points [P, 2] -> [P, sum C]."""
        grid = points.to(levels[0].dtype)[None, None]  # [1, 1, P, 2]
        cols = [F.grid_sample(lv[n:n + 1], grid, mode="bilinear", align_corners=False)[0, :, 0].t() for lv in levels]
        return torch.cat(cols, dim=1)

    def stcl(self, outputs: dict[str, Any], labels: torch.Tensor) -> torch.Tensor:
        """STCL between the target (last) frame and the references of each clip. labels [B, T, H, W]."""
        t = outputs["num_frames"]
        idx, labs, h, w = self._sample(labels.flatten(0, 1))
        feats = [self._embed(outputs["levels"], n, _grid_centres(h, w, i)) for n, i in enumerate(idx)]
        emb = self.projection(torch.cat(feats)) if sum(len(f) for f in feats) > 1 else None
        if emb is None:
            return outputs["logits"].sum() * 0.0
        emb_frames = list(torch.split(emb, [len(f) for f in feats]))
        losses = []
        for clip in range(labels.shape[0]):
            frames = range(clip * t, (clip + 1) * t)
            target = frames[-1]
            contrast = torch.cat([emb_frames[n] for n in frames])
            contrast_labels = torch.cat([labs[n] for n in frames])
            start = sum(len(labs[n]) for n in frames[:-1])
            anchor_pos = torch.arange(start, start + len(labs[target]), device=emb.device)
            losses.append(stcl_loss(emb_frames[target], labs[target], contrast, contrast_labels, anchor_pos,
                                    self.temperature))
        return torch.stack(losses).mean()

    def losses(self, outputs: dict[str, Any], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loss_seg`` (CE, all frames), ``loss_aux`` (0.4 x CE), ``loss_stcl`` (0.2 x STCL). labels [B, T, H, W]."""
        t = outputs["num_frames"]
        check_labels(labels, (outputs["logits"].shape[0] // t, t), type(self).__name__)
        flat = labels.flatten(0, 1)
        terms = {"loss_seg": self.seg_weight * self.pixel_loss(outputs["logits"], flat)}
        if "aux" in outputs and self.aux_weight:
            terms["loss_aux"] = self.aux_weight * self.pixel_loss(outputs["aux"], flat)
        if self.stcl_weight and t > 1:
            terms["loss_stcl"] = self.stcl_weight * self.stcl(outputs, labels)
        return terms


def build_stsc(*, num_classes: int = 124, variant: str = "l", window_size: int | None = None,
               aux_weight: float = 0.4, pretrained: str | None = None, pretrained_backbone: str | None = None,
               loss_reduction: str = "official", **options: Any) -> STSC:
    """Registry builder of ``stsc_upernet_swin_{t,s,b,l}``.

    Args:
        num_classes: output classes.
        variant: Swin variant.
        window_size: Swin window override (default 7; 12 for L).
        aux_weight: UperNet aux head weight (0.4).
        pretrained: local checkpoint of the whole model.
        pretrained_backbone: local Hugging Face Swin folder/file.
        loss_reduction: CE reduction, ``"official"`` (mmseg 0.x all-pixel mean) or ``"valid"``.
        **options: :class:`STSC` options (``proj_dim``, ``temperature``, ``stcl_weight``, ``stcl_samples``...).
    """
    model = build_upernet(num_classes=num_classes, backbone=f"swin_{variant}", aux_weight=aux_weight,
                          window_size=window_size, cls=STSC, loss=PixelLoss(loss_reduction, "mmseg"), **options)

    if pretrained_backbone:
        load_backbone_weights(model.backbone, pretrained_backbone)
    if pretrained:
        load_weights(model, pretrained)
    return model  # type: ignore[return-value]
