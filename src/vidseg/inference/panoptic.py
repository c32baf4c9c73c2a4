"""Streaming video panoptic segmentation with Clip-PanoFCN: clips of 3, inter-clip tracking, bounded memory.

``PanopticVideoPredictor(model).predict(video)`` reads a video (file, frame folder or iterable of uint8
[H, W, 3] RGB frames) and yields one :class:`PanopticFramePrediction` per frame, in order. As the official
``eval_net_video.py``: the video is cut into non-overlapping clips of ``clip_length`` frames (the last one may be
shorter), each clip goes through the network at its original size (no resize; zero padding to a multiple of 32
inside the model) and through :func:`~vidseg.models.panoptic.inference.clip_inference`, then the
:class:`~vidseg.models.panoptic.tracking.EmbeddingTracker` gives each thing a track index. Only the tracker's
memory (one embedding per track) and the frames of one clip are alive at any time, so memory does not grow
with the video length. ``clip_length=1`` runs the network frame by frame (``panofcn_r50``).

Output ids follow the library convention (DESIGN.md): ``(category + 1) * label_divisor + instance``, instance 0
for stuff and ``track + 1`` for things, 0 = void. :meth:`PanopticFramePrediction.official_ids` gives the
official encoding (``cat * 100 + track``, stuff ``cat``, void -1) used to compare with the official code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from vidseg.data.transforms import normalize_frames
from vidseg.errors import DataError
from vidseg.inference.predictor import VideoInput, iter_video
from vidseg.inference.settings import PANOFCN_TEST
from vidseg.models.panoptic.clip_panofcn import ClipPanoFCN
from vidseg.models.panoptic.inference import (
    ClipInferenceSettings,
    ClipPanoptic,
    clip_inference,
    vipseg_settings,
)
from vidseg.models.panoptic.tracking import EmbeddingTracker
from vidseg.structures import DEFAULT_LABEL_DIVISOR, IGNORE_LABEL, encode_panoptic


@dataclass
class PanopticFramePrediction:
    """One frame's panoptic result.

    Attributes:
        index: 0-based frame index; name: frame name (file stem or ``%08d`` of index + 1).
        category: int64 [H, W] category ids (0-based), -1 void.
        track: int64 [H, W] track index >= 0 of things, -1 for stuff and void.
        label_divisor: of :attr:`ids`.
    """

    index: int
    name: str
    category: np.ndarray
    track: np.ndarray
    label_divisor: int = DEFAULT_LABEL_DIVISOR

    @property
    def ids(self) -> np.ndarray:
        """Library panoptic ids int32 [H, W] (:func:`vidseg.structures.encode_panoptic`): things
        ``(cat + 1) * divisor + track + 1``, stuff ``(cat + 1) * divisor``, void 0."""
        category = np.where(self.category < 0, IGNORE_LABEL, self.category)
        instance = np.where(self.track >= 0, self.track + 1, 0)
        try:
            return encode_panoptic(category, instance, self.label_divisor)
        except ValueError as err:
            raise ValueError(f"frame {self.name}: {err} (a track index reached it)") from None

    def official_ids(self, label_divisor: int = 100) -> np.ndarray:
        """The official id map: thing ``cat * 100 + track``, stuff ``cat``, void -1 (int64 [H, W])."""
        ids = np.where(self.track >= 0, self.category * label_divisor + self.track, self.category)
        return np.where(self.category < 0, -1, ids)


def frames_to_tensor(frames: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 RGB frames [H, W, 3] at their own size -> [1, T, 3, H, W] normalised by the official test settings
    (:data:`vidseg.inference.settings.PANOFCN_TEST`: 0..255 minus detectron2's PIXEL_MEAN, PIXEL_STD 1)."""
    norm = PANOFCN_TEST.norm
    x = normalize_frames(np.stack(frames), norm.mean, norm.std, norm.input_scale)
    return x.to(device=device, dtype=dtype).unsqueeze(0)


def apply_tracks(result: ClipPanoptic, tracks: dict[int, list[int]]) -> torch.Tensor:
    """Per-pixel track index [T, H, W] from a clip's instance indices and the tracker's mapping."""
    track = torch.full_like(result.instance, -1)
    for cat, mapping in tracks.items():
        in_cat = result.category == cat
        for k, t in enumerate(mapping):
            track[in_cat & (result.instance == k)] = t
    return track


class PanopticVideoPredictor:
    """Segment and track whole videos with Clip-PanoFCN (module docstring).

    Args:
        model: a :class:`ClipPanoFCN` (put in eval mode here).
        settings: clip-inference thresholds and category maps (default: VIPSeg, ``merge="deoverlap"``).
        clip_length: frames per non-overlapping clip (official 3; 1 = per-frame PanopticFCN).
        cost_limit, memory_weight: tracker parameters (official 0.3 and 0.8).
        label_divisor: of the library ids in the predictions.
    """

    def __init__(self, model: ClipPanoFCN, *, settings: ClipInferenceSettings | None = None, clip_length: int = 3,
                 cost_limit: float = 0.3, memory_weight: float = 0.8,
                 label_divisor: int = DEFAULT_LABEL_DIVISOR) -> None:
        if clip_length < 1:
            raise ValueError(f"clip_length must be >= 1, got {clip_length}")
        self.model = model.eval()
        self.settings = settings or vipseg_settings()
        self.clip_length = clip_length
        self.cost_limit = cost_limit
        self.memory_weight = memory_weight
        self.label_divisor = label_divisor
        self.tracker = EmbeddingTracker(cost_limit, memory_weight)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype

    @torch.no_grad()
    def segment_clip(self, frames: list[np.ndarray]) -> tuple[ClipPanoptic, torch.Tensor]:
        """One clip (uint8 [H, W, 3] frames) -> (clip result, track map [T, H, W]); updates the tracker."""
        if not frames:
            raise DataError("<clip>", "empty clip: no frames to segment")
        outputs = self.model(frames_to_tensor(frames, self.device, self.dtype))
        result = clip_inference(self.model, outputs, self.settings)
        return result, apply_tracks(result, self.tracker.update(result.embeddings))

    def predict(self, video: VideoInput) -> Iterator[PanopticFramePrediction]:
        """Yield one prediction per frame of ``video``, in order (the tracker is reset first).

        Raises:
            DataError: a frame is not uint8 [H, W, 3] or differs in size from the first frame, or the video
                has no frames.
        """
        self.tracker.reset()
        clip: list[tuple[np.ndarray, str]] = []
        size: tuple[int, int] | None = None
        index = 0
        for frame, name in iter_video(video):
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise DataError(name, f"frames must be uint8 [H, W, 3] RGB, got {frame.dtype} {tuple(frame.shape)}")
            if size is None:
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                raise DataError(name, f"frame size {frame.shape[:2]} differs from the video's {size}")
            clip.append((frame, name))
            if len(clip) == self.clip_length:
                yield from self._emit(clip, index)
                index += len(clip)
                clip = []
        if clip:
            yield from self._emit(clip, index)
        elif size is None:
            raise DataError(video if isinstance(video, str | os.PathLike) else "<video>", "the video has no frames")

    def _emit(self, clip: list[tuple[np.ndarray, str]], start: int) -> Iterator[PanopticFramePrediction]:
        result, track = self.segment_clip([f for f, _ in clip])
        category, track = result.category.cpu().numpy(), track.cpu().numpy()
        for i, (_, name) in enumerate(clip):
            yield PanopticFramePrediction(start + i, name, category[i], track[i], self.label_divisor)


class FramePanopticPredictor(PanopticVideoPredictor):
    """PanopticFCN frame by frame (``panofcn_r50``): :class:`PanopticVideoPredictor` with ``clip_length=1``."""

    def __init__(self, model: ClipPanoFCN, **options) -> None:
        options.setdefault("clip_length", 1)
        super().__init__(model, **options)
