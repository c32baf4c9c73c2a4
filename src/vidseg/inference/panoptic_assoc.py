"""Per-frame PanopticFCN + IoU association: the ``panofcn_r50`` baseline of the VIPSeg paper.

Each frame goes through the network alone (a clip of 1: :func:`~vidseg.models.panoptic.inference.clip_inference`
gives its category map and per-category instance indices); the instances are then linked to those of the
previous frame by :class:`vidseg.annotate.association.InstanceAssociator` (IoU between same-category instances,
Hungarian assignment; VIPSeg §3.4.1, the rule that linked the dataset's own annotations). This is the
comparison the VIPSeg paper makes: an image model plus mask association against Clip-PanoFCN's clip kernels
and embedding tracker (:class:`~vidseg.inference.panoptic.PanopticVideoPredictor`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from vidseg.annotate.association import InstanceAssociator
from vidseg.inference.panoptic import PanopticFramePrediction, PanopticVideoPredictor, frames_to_tensor
from vidseg.inference.predictor import VideoInput
from vidseg.models.panoptic.clip_panofcn import ClipPanoFCN
from vidseg.models.panoptic.inference import clip_inference


def frame_instances(category: np.ndarray, instance: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Per-frame instance ids of one frame's things: (ids int64 [H, W], 0 = none; id -> category).

    Args:
        category: int [H, W] category ids (-1 void).
        instance: int [H, W] per-category instance index (>= 0 for things, -1 otherwise).
    """
    thing = instance >= 0
    key = np.where(thing, category * 100_000 + instance + 1, 0)
    uniq, inverse = np.unique(key, return_inverse=True)
    ids = inverse.reshape(key.shape).astype(np.int64)
    if uniq.size and uniq[0] != 0:
        ids += 1  # no pixel without an instance: keep 0 free
        uniq = np.concatenate([[0], uniq])
    categories = {i: int(u) // 100_000 for i, u in enumerate(uniq) if u != 0}
    return ids, categories


class AssociatedFramePredictor(PanopticVideoPredictor):
    """PanopticFCN frame by frame, things tracked by IoU + Hungarian association (module docstring).

    Args:
        model: a :class:`ClipPanoFCN`.
        min_iou: an instance continues a track only with IoU above this (0: any overlap).
        **options: :class:`PanopticVideoPredictor` options (``settings``, ``label_divisor``); the clip length
            is 1 and the embedding tracker is not used.
    """

    def __init__(self, model: ClipPanoFCN, *, min_iou: float = 0.0, **options) -> None:
        options["clip_length"] = 1
        super().__init__(model, **options)
        self.associator = InstanceAssociator(min_iou=min_iou)

    def predict(self, video: VideoInput) -> Iterator[PanopticFramePrediction]:
        """Yield one prediction per frame (tracks restart at 0 for every video)."""
        self.associator.reset()
        yield from super().predict(video)

    @torch.no_grad()
    def _emit(self, clip: list[tuple[np.ndarray, str]], start: int) -> Iterator[PanopticFramePrediction]:
        for i, (frame, name) in enumerate(clip):
            outputs = self.model(frames_to_tensor([frame], self.device, self.dtype))
            result = clip_inference(self.model, outputs, self.settings)
            category = result.category[0].cpu().numpy()
            ids, categories = frame_instances(category, result.instance[0].cpu().numpy())
            tracks = self.associator.update(ids, categories)
            yield PanopticFramePrediction(start + i, name, category, tracks.astype(np.int64) - 1,
                                          self.label_divisor)
