"""Test-time augmentation: several scales and horizontal flips, averaging softmax probabilities.

A *variant* is one (scale, flip) pair. Every frame is prepared once per variant (resized with OpenCV
bilinear on uint8, as the mmseg test pipeline does, optionally flipped, normalised), the model's logits are
flipped back, resized bilinearly to the original frame size, turned into probabilities and averaged over the
variants (mmseg ``aug_test``). The streaming predictor keeps one feature cache per variant, so a video model
still runs each frame through its backbone once per variant.

``img_scale`` (e.g. (853, 480)) with ``size_divisor`` (e.g. 32) reproduces CFFM's ``AlignedResize`` test
resize; a TTA scale multiplies ``img_scale`` (mmseg ``img_ratios``), or the frame size when there is none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, aligned_size, normalize_frames

DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@dataclass(frozen=True)
class Variant:
    """One test-time view of a frame: resize factor and horizontal flip."""

    scale: float = 1.0
    flip: bool = False


@dataclass(frozen=True)
class TTA:
    """Multi-scale + flip test-time augmentation (mmseg ``MultiScaleFlipAug``).

    Args:
        scales: resize factors (default 0.5 .. 1.75 in steps of 0.25).
        flip: also run the horizontally flipped view of every scale.
    """

    scales: tuple[float, ...] = DEFAULT_SCALES
    flip: bool = True

    def __post_init__(self) -> None:
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"TTA scales must be positive, got {self.scales}")

    def variants(self) -> list[Variant]:
        """All (scale, flip) views, unflipped first."""
        flips = (False, True) if self.flip else (False,)
        return [Variant(float(s), f) for s in self.scales for f in flips]


def variant_size(size_hw: tuple[int, int], scale: float = 1.0, img_scale: tuple[int, int] | None = None,
                 size_divisor: int = 1) -> tuple[int, int]:
    """Input size of a view of a frame of ``size_hw``.

    Args:
        size_hw: (H, W) of the frame.
        scale: the view's factor.
        img_scale: (long, short) keep-ratio target (CFFM (853, 480)), multiplied by ``scale``; None: the
            frame size times ``scale``.
        size_divisor: round the result UP to a multiple of this.
    """
    if img_scale is not None:
        target = (int(img_scale[0] * scale), int(img_scale[1] * scale))
        return aligned_size(size_hw, target, size_divisor)
    h, w = size_hw
    h, w = max(int(h * scale + 0.5), 1), max(int(w * scale + 0.5), 1)
    return aligned_size((h, w), None, size_divisor)


def prepare_frame(frame: np.ndarray, size_hw: tuple[int, int], flip: bool = False,
                  mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 RGB [H, W, 3] -> normalised float32 [1, 3, h, w] at ``size_hw`` (bilinear), optionally flipped."""
    if frame.shape[:2] != tuple(size_hw):
        import cv2

        frame = cv2.resize(frame, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LINEAR)
    if flip:
        frame = frame[:, ::-1]
    x = normalize_frames(frame, mean, std).unsqueeze(0)
    return x.to(device) if device is not None else x


def logits_to_probs(logits: torch.Tensor, out_size: tuple[int, int], flip: bool = False) -> torch.Tensor:
    """Logits of a view [B, K, h, w] -> probabilities [B, K, H, W] at the frame size, flip undone."""
    if flip:
        logits = logits.flip(-1)
    if tuple(logits.shape[-2:]) != tuple(out_size):
        logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
    return logits.float().softmax(dim=1)


def average_probs(probs: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """(Weighted) mean of probability maps of equal shape."""
    if not probs:
        raise ValueError("nothing to average")
    if weights is None:
        return torch.stack(list(probs)).mean(0)
    if len(weights) != len(probs):
        raise ValueError(f"{len(weights)} weights for {len(probs)} probability maps")
    w = torch.tensor([float(x) for x in weights], dtype=probs[0].dtype, device=probs[0].device)
    stacked = torch.stack(list(probs))
    return (stacked * w.view(-1, *([1] * (stacked.dim() - 1)))).sum(0) / w.sum()


@torch.inference_mode()
def predict_image_probs(model: torch.nn.Module, frame: np.ndarray, tta: TTA | None = None,
                        img_scale: tuple[int, int] | None = None, size_divisor: int = 1) -> torch.Tensor:
    """Probabilities [K, H, W] of one frame with a single-frame model (or a video model's 1-frame clip).

    Used for pseudo-labelling: every view goes through ``encode_frame`` + ``decode_clip`` of its own.
    """
    model.eval()
    device = next(model.parameters()).device
    variants = tta.variants() if tta is not None else [Variant()]
    size = frame.shape[:2]
    probs = []
    for v in variants:
        vs = variant_size(size, v.scale, img_scale, size_divisor)
        x = prepare_frame(frame, vs, v.flip, device=device)
        logits = model.decode_clip([model.encode_frame(x)], vs)
        probs.append(logits_to_probs(logits, size, v.flip))
    return average_probs(probs)[0]
