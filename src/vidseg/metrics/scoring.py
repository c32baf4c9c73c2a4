"""The one frame-by-frame scoring loop: predictions of a video, in order, into the evaluators.

Training-time evaluation (predictions from :class:`vidseg.inference.VideoPredictor`, in memory), ``vidseg
eval vspw`` (predictions read from a folder) and prediction with scoring all feed :func:`score_video` with
:class:`ScoredFrame` records; the loop adds each frame to the VSPW evaluator (mIoU, WIoU, VC) and, with a
flow backend, each consecutive pair to the TC evaluator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from vidseg.errors import DataError
from vidseg.flow.backends import FlowBackend
from vidseg.metrics.evaluator import Evaluator
from vidseg.metrics.tc import TCEvaluator


@dataclass
class ScoredFrame:
    """One frame of a video to score.

    Attributes:
        stem: frame name (file stem).
        pred: predicted classes, integer [H, W].
        gt: raw VSPW mask [H, W] (0 = others, 255 = void), or None for a frame scored only by TC.
        image: loader of the RGB frame uint8 [H, W, 3] (for the TC flow), or None.
        where: file named in error messages.
        image_where: the frame's image file, named in errors about the image (e.g. a size change).
        gt_where: the ground-truth file, named in errors about the GT (default: ``where``).
    """

    stem: str
    pred: np.ndarray
    gt: np.ndarray | None = None
    image: Callable[[], np.ndarray] | None = None
    where: str = "prediction"
    image_where: str = ""
    gt_where: str = ""


@dataclass
class _Previous:
    stem: str
    pred: np.ndarray
    image: np.ndarray | None
    where: str


def tc_step(tc: TCEvaluator, flow: FlowBackend, video: str, frame: ScoredFrame, prev: _Previous | None
            ) -> _Previous:
    """Add the pair (previous frame, ``frame``) to ``tc``; returns what the next step needs."""
    image = frame.image() if (flow.needs_frames and frame.image is not None) else None
    if prev is not None and image is not None and prev.image is not None and image.shape != prev.image.shape:
        raise DataError(frame.image_where or frame.where, f"frame size {image.shape[1]}x{image.shape[0]} differs "
                                                          f"from the previous frame's {prev.image.shape[1]}x"
                                                          f"{prev.image.shape[0]} (W x H) in one video")
    if prev is not None:
        f = flow(prev.image, image, video=video, stem_t=prev.stem, stem_t1=frame.stem)
        if f.shape[:2] != prev.pred.shape:
            raise DataError(prev.where, f"flow size {f.shape[:2]} differs from prediction size {prev.pred.shape}")
        tc.process(prev.pred, frame.pred, f)
    return _Previous(frame.stem, frame.pred, image, frame.where)


def score_video(video: str, frames: Iterable[ScoredFrame], ev: Evaluator | None = None,
                tc: TCEvaluator | None = None, flow: FlowBackend | None = None) -> None:
    """Score the frames of one video in order: each with a GT into ``ev``, each consecutive pair into ``tc``."""
    if tc is not None and flow is None:
        raise ValueError("TC scoring needs a flow backend")
    prev: _Previous | None = None
    for frame in frames:
        if ev is not None and frame.gt is not None:
            ev.process(frame.gt, frame.pred, video=video, where=frame.where, gt_where=frame.gt_where or frame.where)
        if tc is not None:
            prev = tc_step(tc, flow, video, frame, prev)
