"""CFFM (Sun et al., CVPR 2022): MiT backbone + SegFormer MLP decoder + cross-frame CFFA/CFM head.

Frames are ordered ``[t-9, t-6, t-3, t]`` (target last). Per frame the MiT features go through the SegFormer
MLP decoder to the fused 1/4 map ``_c`` (and ``x = linear_pred(_c)``, the per-frame logits). ``_c`` is resized
to ``(int(h / 2), int(w / 2))`` (1/8), the CFM blocks (``decoder_focal``) update the target from the four
maps, and ``x2 = linear_pred2(cat[_c_target, _c2_target])`` is resized back to 1/4. Train output:
``cat([x (T frames), x2])`` [B, T+1, K, h, w]; loss ``0.5 * CE(x, all frames) + 1.0 * CE(x2, target)``.
Eval output: ``x2`` resized to the image; with fewer than 4 frames (the first frames of a video) the official
code returns the single-frame MLP prediction ``x`` of the target instead, and so do we.

Streaming: the backbone and the MLP decoder depend on one frame only, BatchNorm is in eval mode at inference
and the CFM blocks never change the references, so ``encode_frame`` runs once per frame and ``decode_clip``
combines cached per-frame features. ``forward`` in eval mode is exactly that composition.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.errors import ConfigError
from vidseg.models.backbones.mit import MiT
from vidseg.models.base import SegmenterDefaults
from vidseg.models.fastpath import use_fast_path
from vidseg.models.heads.common import check_clip
from vidseg.models.heads.segformer_head import SegFormerHead
from vidseg.models.losses import PixelLoss
from vidseg.models.segformer import check_head_fits
from vidseg.models.video.cffm_attention import CFFMLayer

CFFM_DEPTHS = {"b0": 1, "b1": 2, "b2": 2, "b5": 4}
NUM_CLIPS = 4
SUPPORT_OFFSETS = (-9, -6, -3)
FRAME_LOSS_WEIGHT = 0.5
TARGET_LOSS_WEIGHT = 1.0


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def quarter_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """Size of the 1/4 maps of MiT for an image of ``image_size``: ``ceil(H / 4), ceil(W / 4)``."""
    return (-(-int(image_size[0]) // 4), -(-int(image_size[1]) // 4))


class CFFMHead(SegFormerHead):
    """The official ``CFFMHead_clips_resize1_8``: SegFormer MLP decoder + ``decoder_focal`` + ``linear_pred2``.

    Args:
        in_channels: backbone channels (strides 4, 8, 16, 32).
        num_classes: K.
        depth: number of CFM blocks.
        embed_dim: E (256), also the CFM width.
        num_heads, window, expand, focal_window, clip_strides, clip_kernels: CFM hyperparameters
            (8, 7, 3, 5, (1, 2, 3), (7, 5, 3)).
        with_conv_seg: create the unused official ``conv_seg`` (frozen); see :class:`SegFormerHead`.
    """

    def __init__(self, *, in_channels: Sequence[int], num_classes: int, depth: int, embed_dim: int = 256,
                 num_heads: int = 8, window: int = 7, expand: int = 3, focal_window: int = 5,
                 clip_strides: tuple[int, ...] = (1, 2, 3), clip_kernels: tuple[int, ...] = (7, 5, 3),
                 dropout: float = 0.1, with_conv_seg: bool = True) -> None:
        super().__init__(in_channels=in_channels, num_classes=num_classes, embed_dim=embed_dim,
                         dropout=dropout, with_conv_seg=with_conv_seg)
        self.linear_pred2 = nn.Conv2d(2 * embed_dim, num_classes, kernel_size=1)
        self.decoder_focal = CFFMLayer(depth=depth, dim=embed_dim, num_heads=num_heads, window=window,
                                       expand=expand, focal_window=focal_window, clip_strides=clip_strides,
                                       clip_kernels=clip_kernels)
        nn.init.kaiming_normal_(self.linear_fuse.conv.weight, mode="fan_out", nonlinearity="relu")

    def cross_frame(self, fused8: torch.Tensor, quarter: tuple[int, int]) -> torch.Tensor:
        """Target logits ``x2`` at 1/4.

        Args:
            fused8: [B, 4, E, h2, w2] per-frame fused maps at 1/8, target last.
            quarter: (h, w) of the 1/4 maps.

        Returns:
            [B, K, h, w].
        """
        refined = self.decoder_focal.refine_target(fused8)
        if use_fast_path(self):
            return _resize(self._predict2_fast(fused8[:, -1], refined), quarter)
        x2 = self.linear_pred2(self.dropout(torch.cat([fused8[:, -1], refined], dim=1)))
        return _resize(x2, quarter)

    def _predict2_fast(self, target: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
        """``linear_pred2(cat[target, refined])`` at inference as two GEMMs on tokens (no 2E-channel concat).

        Args:
            target, refined: [B, E, h2, w2] (any memory layout).

        Returns:
            logits [B, K, h2, w2], contiguous.
        """
        b, e, h, w = target.shape
        weight = self.linear_pred2.weight.flatten(1)
        out = torch.baddbmm(self.linear_pred2.bias[:, None], weight[:, :e].expand(b, -1, -1),
                            target.permute(0, 2, 3, 1).reshape(b, h * w, e).transpose(1, 2))
        out.baddbmm_(weight[:, e:].expand(b, -1, -1), refined.permute(0, 2, 3, 1).reshape(b, h * w, e).transpose(1, 2))
        return out.view(b, -1, h, w)


class CFFM(SegmenterDefaults, nn.Module):
    """CFFM video semantic segmentation model (implements :class:`vidseg.models.base.VideoSegmenter`).

    Args:
        backbone: a :class:`MiT`.
        decode_head: a :class:`CFFMHead` matching the backbone's channels.
        loss: how each CE term is reduced (default: official, mmseg 0.x mean over all pixels).

    Attributes:
        support_offsets: (-9, -6, -3).
        num_classes: K.
        num_clips: 4 (three references + target).
        test_rule: ``"cffm"`` (CFFM's official clips of the first frames).
    """

    support_offsets: tuple[int, ...] = SUPPORT_OFFSETS
    num_clips: int = NUM_CLIPS
    test_rule: str = "cffm"

    def __init__(self, *, backbone: MiT, decode_head: CFFMHead, loss: PixelLoss | None = None) -> None:
        super().__init__()
        check_head_fits(backbone, decode_head)
        self.backbone = backbone
        self.decode_head = decode_head
        self.num_classes = decode_head.num_classes
        self.pixel_loss = loss if loss is not None else PixelLoss("official", "mmseg")

    @staticmethod
    def _check_size(height: int, width: int) -> None:
        if height < 5 or width < 5:  # the 1/8 map int(h/2) x int(w/2) must not be empty
            raise ValueError(f"CFFM needs images of at least 5x5 pixels, got {height}x{width}")

    def _fuse(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 3, H, W] -> fused MLP features ``_c`` [N, E, h, w] at 1/4."""
        self.backbone.check_input(images)
        self._check_size(images.shape[-2], images.shape[-1])
        return self.decode_head.fuse(self.backbone(images))

    @staticmethod
    def _eighth(fused: torch.Tensor) -> torch.Tensor:
        """The official 1/4 -> 1/8 resize to ``(int(h / 2), int(w / 2))``."""
        h, w = fused.shape[-2:]
        return _resize(fused, (h // 2, w // 2))

    def encode_frame(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame features.

        Args:
            image: [B, 3, H, W].

        Returns:
            ``(fused8, fused4)``: the fused MLP feature ``_c`` resized to 1/8, [B, E, int(h/2), int(w/2)], and at
            1/4, [B, E, h, w] (h = ceil(H/4)). :meth:`decode_clip` reads only ``fused8`` of the support frames,
            so a cache may keep ``(fused8, None)`` for them.
        """
        fused = self._fuse(image)
        return self._eighth(fused), fused

    def support_features(self, features: tuple[torch.Tensor, torch.Tensor | None]
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What a frame's cache entry needs once the frame is only a support: the 1/8 map (the 1/4 map goes).

        Streaming caches call this after a frame was decoded as a target; at 480x853 it frees about 26 MB
        per cached frame.
        """
        return (features[0], None)

    def decode_clip(self, features: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
                    image_size: tuple[int, int]) -> torch.Tensor:
        """Target logits from per-frame features.

        Args:
            features: :meth:`encode_frame` outputs of ``[t-9, t-6, t-3, t]`` (target last), or of fewer frames
                (then the official single-frame fallback: the target's MLP prediction).
            image_size: (H, W) of the input images.

        Returns:
            logits [B, K, H, W].
        """
        image_size = (int(image_size[0]), int(image_size[1]))
        return _resize(self.decode_clip_lowres(features, image_size), image_size)

    def decode_clip_lowres(self, features: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
                           image_size: tuple[int, int]) -> torch.Tensor:
        """The target's 1/4 logits [B, K, ceil(H/4), ceil(W/4)] (``decode_clip`` before its resize)."""
        n = len(features)
        if n == 0 or n > self.num_clips:
            raise ValueError(f"CFFM decodes 1..{self.num_clips} frames (target last), got {n}")
        if n < self.num_clips:
            target4 = features[-1][1]
            if target4 is None:
                raise ValueError("the single-frame fallback needs the target's 1/4 feature (encode_frame()[1])")
            return self.decode_head.predict(target4)
        if use_fast_path(self):  # stack in [B, 4, h2, w2, E] memory: the CFM blocks read channels-last tokens
            fused8 = torch.stack([f[0].permute(0, 2, 3, 1) for f in features], dim=1).permute(0, 1, 4, 2, 3)
        else:
            fused8 = torch.stack([f[0] for f in features], dim=1)
        return self.decode_head.cross_frame(fused8, quarter_size((int(image_size[0]), int(image_size[1]))))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Whole-clip path.

        Args:
            frames: [B, T, 3, H, W], target last; T = 4 in training.

        Returns:
            train: [B, T + 1, K, h, w] (per-frame logits x of all T frames, then x2 of the target, at 1/4);
            eval: target logits [B, K, H, W] (``x2``, or the single-frame fallback when T < 4).
        """
        frames = check_clip(frames, "CFFM", allow_image=True)
        b, t, _, h_img, w_img = frames.shape
        if self.training and t != self.num_clips:
            raise ValueError(f"CFFM trains on clips of {self.num_clips} frames [t-9, t-6, t-3, t], got T={t}")
        if t > self.num_clips:
            raise ValueError(f"CFFM takes at most {self.num_clips} frames (target last), got T={t}")
        fused = self._fuse(frames.flatten(0, 1))  # [B*T, E, h, w]
        fused8 = self._eighth(fused)
        if not self.training:
            per_frame = [(f8, f4) for f8, f4 in zip(fused8.unflatten(0, (b, t)).unbind(1),
                                                    fused.unflatten(0, (b, t)).unbind(1))]
            return self.decode_clip(per_frame, (h_img, w_img))
        h, w = fused.shape[-2:]
        x = self.decode_head.predict(fused).unflatten(0, (b, t))  # [B, T, K, h, w]
        x2 = self.decode_head.cross_frame(fused8.unflatten(0, (b, t)), (h, w))
        return torch.cat([x, x2.unsqueeze(1)], dim=1)

    def losses(self, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """CFFM loss; with ``reduction "official"`` each CE is mmseg 0.x's mean over all pixels (ignored = 0).

        Args:
            outputs: train-mode :meth:`forward` output [B, T + 1, K, h, w].
            labels: [B, T, H, W], 255 = ignore.

        Returns:
            ``{"loss_frames": 0.5 * CE(x of all T frames), "loss_target": 1.0 * CE(x2, target labels)}``.
        """
        if labels.dim() != 4 or outputs.dim() != 5 or outputs.shape[1] != labels.shape[1] + 1:
            raise ValueError(f"CFFM losses expect outputs [B, T+1, K, h, w] and labels [B, T, H, W], got "
                             f"{tuple(outputs.shape)} and {tuple(labels.shape)}")
        frames = self.pixel_loss(outputs[:, :-1].flatten(0, 1), labels.flatten(0, 1))
        target = self.pixel_loss(outputs[:, -1], labels[:, -1])
        return {"loss_frames": FRAME_LOSS_WEIGHT * frames, "loss_target": TARGET_LOSS_WEIGHT * target}


def build_cffm(*, variant: str = "b0", num_classes: int = 124, depth: int | None = None,
               embed_dim: int = 256, with_conv_seg: bool = True, drop_path_rate: float = 0.1,
               official_eps: bool = True, loss_reduction: str = "official") -> CFFM:
    """Registry builder of ``cffm_b0``, ``cffm_b1``, ``cffm_b2``, ``cffm_b5``.

    Args:
        variant: MiT variant (``b0``..``b5``; the paper's are b0, b1, b2, b5).
        num_classes: K (124 for VSPW).
        depth: CFM blocks; default the official one per variant (B0 1, B1 2, B2 2, B5 4); b3/b4 have no
            official value and need it given.
        embed_dim: MLP decoder / CFM width (256).
        with_conv_seg: keep the official unused ``decode_head.conv_seg`` (frozen) so official checkpoints load
            with no unexpected keys and the parameter count equals the official one.
        drop_path_rate: backbone stochastic depth.
        official_eps: official per-module LayerNorm eps in the backbone.
        loss_reduction: ``"official"`` (mmseg 0.x: CE summed over labelled pixels / all pixels) or ``"valid"``
            (mean over labelled pixels); see :class:`vidseg.models.losses.PixelLoss`.
    """
    if depth is None:
        if variant not in CFFM_DEPTHS:
            raise ConfigError(f"CFFM has no official depth for MiT-{variant}; pass depth=")
        depth = CFFM_DEPTHS[variant]
    backbone = MiT(variant=variant, drop_path_rate=drop_path_rate, official_eps=official_eps)
    head = CFFMHead(in_channels=backbone.out_channels, num_classes=num_classes, depth=depth,
                    embed_dim=embed_dim, with_conv_seg=with_conv_seg)
    return CFFM(backbone=backbone, decode_head=head, loss=PixelLoss(loss_reduction, "mmseg"))
