"""Streaming video inference with a bounded feature cache, test-time augmentation and ensembling.

``VideoPredictor(model, mode="online"|"offline", tta=TTA())`` yields one prediction per frame of a video
file, a frame folder or an iterator of frames; ``EnsemblePredictor`` averages several models' probabilities.
"""

from vidseg.inference.ensemble import EnsemblePredictor, ensemble_image_probs
from vidseg.inference.predictor import FramePrediction, VideoPredictor, VideoStream, iter_video
from vidseg.inference.rules import rule_for_model, rule_reach
from vidseg.inference.tta import TTA, Variant, average_probs, predict_image_probs

__all__ = [
    "TTA",
    "EnsemblePredictor",
    "FramePrediction",
    "Variant",
    "VideoPredictor",
    "VideoStream",
    "average_probs",
    "ensemble_image_probs",
    "iter_video",
    "predict_image_probs",
    "rule_for_model",
    "rule_reach",
]
