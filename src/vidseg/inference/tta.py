"""Test-time augmentation: several scales and horizontal flips, averaging softmax probabilities.

A *variant* is one (scale, flip) pair. Every frame is prepared once per variant as the official mmseg test
pipeline does (``MultiScaleFlipAug`` + ``AlignedResize``): the view's target scale is ``img_scale * ratio``
(each edge truncated to int), or the frame's own (W, H) times the ratio when there is no ``img_scale``; the
frame is resized in two steps (:func:`vidseg.data.transforms.aligned_resize`: keep-ratio rescale, then a
stretch to a multiple of ``size_divisor``), optionally flipped and normalised. The model's logits are flipped
back, resized bilinearly to the original frame size, turned into probabilities and averaged over the
variants (mmseg ``aug_test``). The streaming predictor keeps one feature cache per variant, so a video model
still runs each frame through its backbone once per variant.

The official multi-scale scales depend on the dataset (``tools/test.py --aug-test`` in VSS-CFFM and
NVlabs/SegFormer): :data:`TTA_SCALES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.data.transforms import (
    NORMALIZATIONS,
    Normalization,
    aligned_resize,
    aligned_size,
    normalize_frames,
)

# ``tools/test.py --aug-test`` (VSS-CFFM, NVlabs/SegFormer): ratios per dataset, always with flip.
TTA_SCALES: dict[str, tuple[float, ...]] = {
    "vspw": (0.5, 0.75, 1.0, 1.25, 1.5, 1.75),  # every dataset other than ADE20K / Cityscapes
    "ade20k": (0.75, 0.875, 1.0, 1.125, 1.25),
    "cityscapes": (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),
}
DEFAULT_SCALES = TTA_SCALES["vspw"]


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

    @classmethod
    def for_dataset(cls, dataset: str = "vspw") -> TTA:
        """The official ``--aug-test`` of ``dataset`` (:data:`TTA_SCALES`, with flip)."""
        if dataset not in TTA_SCALES:
            raise ValueError(f"no official TTA scales for {dataset!r}; known: {', '.join(TTA_SCALES)}")
        return cls(TTA_SCALES[dataset], True)

    def variants(self) -> list[Variant]:
        """All (scale, flip) views, unflipped first."""
        flips = (False, True) if self.flip else (False,)
        return [Variant(float(s), f) for s in self.scales for f in flips]


def view_scale(size_hw: tuple[int, int], scale: float = 1.0, img_scale: tuple[int, int] | None = None
               ) -> tuple[int, int]:
    """The keep-ratio target (long, short) of a view (mmseg ``MultiScaleFlipAug``): ``img_scale`` times
    ``scale``, or the frame's (W, H) times ``scale`` when there is no ``img_scale``; edges truncated to int."""
    base = img_scale if img_scale is not None else (size_hw[1], size_hw[0])
    return int(base[0] * scale), int(base[1] * scale)


def variant_size(size_hw: tuple[int, int], scale: float = 1.0, img_scale: tuple[int, int] | None = None,
                 size_divisor: int = 1) -> tuple[int, int]:
    """Model input size (H, W) of a view of a frame of ``size_hw`` (the size :func:`resize_view` gives).

    Args:
        size_hw: (H, W) of the frame.
        scale: the view's factor.
        img_scale: (long, short) keep-ratio target (CFFM (853, 480), SegFormer (2048, 512)), multiplied by
            ``scale``; None: the frame size times ``scale``.
        size_divisor: stretch the result to a multiple of this.
    """
    return aligned_size(size_hw, view_scale(size_hw, scale, img_scale), size_divisor)


def resize_view(frame: np.ndarray, scale: float = 1.0, img_scale: tuple[int, int] | None = None,
                size_divisor: int = 1) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> the view's model input, uint8 [h, w, 3] (:func:`variant_size`), resized as the
    official ``AlignedResize`` does (two cv2 INTER_LINEAR resizes; none when the sizes already match)."""
    return aligned_resize(frame, view_scale(frame.shape[:2], scale, img_scale), size_divisor)


def prepare_view(frame: np.ndarray, flip: bool = False, normalization: Normalization = NORMALIZATIONS["mmseg"],
                 device: torch.device | str | None = None) -> torch.Tensor:
    """A resized uint8 RGB view [h, w, 3] (:func:`resize_view`) -> normalised float32 [1, 3, h, w], optionally
    flipped (flip before normalising, as mmseg does)."""
    if flip:
        frame = frame[:, ::-1]
    x = normalize_frames(frame, normalization.mean, normalization.std, normalization.input_scale).unsqueeze(0)
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
                        img_scale: tuple[int, int] | None = None, size_divisor: int = 1,
                        normalization: Normalization = NORMALIZATIONS["mmseg"]) -> torch.Tensor:
    """Probabilities [K, H, W] of one frame with a single-frame model (or a video model's 1-frame clip).

    Used for pseudo-labelling: every view goes through ``encode_frame`` + ``decode_clip`` of its own.
    """
    model.eval()
    device = next(model.parameters()).device
    variants = tta.variants() if tta is not None else [Variant()]
    size = frame.shape[:2]
    probs = []
    for v in variants:
        view = resize_view(frame, v.scale, img_scale, size_divisor)
        x = prepare_view(view, v.flip, normalization, device=device)
        logits = model.decode_clip([model.encode_frame(x)], view.shape[:2])
        probs.append(logits_to_probs(logits, size, v.flip))
    return average_probs(probs)[0]
