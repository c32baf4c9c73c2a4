"""Ensembling several models: the average of their softmax probabilities, frame by frame.

Each model keeps its own streaming predictor (its own clip rule, feature cache and TTA views); the video is
read once and every frame is pushed into all of them. Predictors that look ahead (TCB offline) answer later
than causal ones, so finished frames are held until every model has answered (at most the largest lookahead).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from vidseg.inference.predictor import FramePrediction, SkipFn, VideoInput, VideoPredictor, iter_video
from vidseg.inference.tta import average_probs, predict_image_probs


class EnsemblePredictor:
    """Average the probabilities of several :class:`VideoPredictor` objects.

    Args:
        predictors: one per model (same number of classes).
        weights: optional weight per model (default equal).
        return_probs: attach the averaged probabilities [K, H, W] to each prediction.
    """

    def __init__(self, predictors: Sequence[VideoPredictor], weights: Sequence[float] | None = None,
                 return_probs: bool = False) -> None:
        if not predictors:
            raise ValueError("an ensemble needs at least one predictor")
        classes = {int(p.model.num_classes) for p in predictors}
        if len(classes) != 1:
            raise ValueError(f"ensembled models must have the same number of classes, got {sorted(classes)}")
        if weights is not None and len(weights) != len(predictors):
            raise ValueError(f"{len(weights)} weights for {len(predictors)} models")
        self.predictors = list(predictors)
        self.weights = None if weights is None else [float(w) for w in weights]
        self.return_probs = return_probs

    def predict(self, video: VideoInput, *, skip: SkipFn | None = None) -> Iterator[FramePrediction]:
        """One averaged prediction per frame of ``video``, in order (see :meth:`VideoPredictor.predict`)."""
        streams = [p.stream(skip, force_probs=True) for p in self.predictors]
        pending: dict[int, list[FramePrediction]] = {}
        next_out = 0
        for frame, name in iter_video(video):
            for stream in streams:
                for pred in stream.push(frame, name):
                    pending.setdefault(pred.index, []).append(pred)
            while len(pending.get(next_out, ())) == len(streams):
                yield self._merge(pending.pop(next_out))
                next_out += 1
        for stream in streams:
            for pred in stream.finish():
                pending.setdefault(pred.index, []).append(pred)
        while next_out in pending:
            yield self._merge(pending.pop(next_out))
            next_out += 1

    def _merge(self, preds: list[FramePrediction]) -> FramePrediction:
        first = preds[0]
        if any(p.skipped for p in preds):
            return FramePrediction(first.index, first.name, image=first.image, skipped=True)
        probs = average_probs([p.probs for p in preds], self.weights)  # type: ignore[misc]
        labels = probs.argmax(0).numpy().astype(np.uint8 if probs.shape[0] <= 256 else np.int32)
        return FramePrediction(first.index, first.name, first.clip, labels,
                               probs=probs if self.return_probs else None, image=first.image)


def ensemble_image_probs(models: Sequence[torch.nn.Module], frame: np.ndarray, **kwargs) -> torch.Tensor:
    """Average of :func:`vidseg.inference.tta.predict_image_probs` over ``models`` -> [K, H, W]."""
    return average_probs([predict_image_probs(m, frame, **kwargs) for m in models])
