"""YouTube-Objects (segmentation annotations): mean IoU per category and overall.

Layout (documented in docs/metrics.md): ground truth ``<gt>/<category>/<video>/<frame>.png`` binary
masks (0 = background, any other value = object) for the annotated frames only; predictions at the same
relative paths under ``<pred>``, any non-zero value = object. Per frame the IoU is the DAVIS J (1 when
both masks are empty); a video scores the mean over its annotated frames, a category the mean over its
videos, and the overall figure is the mean over categories (the per-category table of the STCNN /
OSVOS papers). The frame-weighted mean is reported too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.errors import DataError
from vidseg.metrics.evaluator import Evaluator
from vidseg.metrics.folder import raise_missing, read_label_png

CATEGORIES = ("aeroplane", "bird", "boat", "car", "cat", "cow", "dog", "horse", "motorbike", "train")


def frame_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """IoU of the object masks (non-zero pixels); 1.0 when both are empty."""
    if gt.shape != pred.shape:
        raise DataError("YouTube-Objects", f"prediction size {pred.shape} differs from ground truth {gt.shape}")
    g, p = gt != 0, pred != 0
    union = np.count_nonzero(g | p)
    return 1.0 if union == 0 else np.count_nonzero(g & p) / union


class YouTubeObjectsEvaluator(Evaluator):
    """Accumulates per-frame IoUs keyed by (category, video)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.frames: dict[tuple[str, str], list[float]] = {}

    def process(self, gt: np.ndarray, pred: np.ndarray, category: str, video: str) -> None:  # type: ignore[override]
        """Add one annotated frame (masks [H, W])."""
        self.frames.setdefault((category, video), []).append(frame_iou(gt, pred))

    def evaluate(self) -> dict[str, Any]:
        """{"mIoU": mean over categories, "frame_mIoU", "per_category": {...}, "per_video": {...}}."""
        per_video = {f"{c}/{v}": float(np.mean(x)) for (c, v), x in self.frames.items()}
        cats: dict[str, list[float]] = {}
        for (c, v), _ in self.frames.items():
            cats.setdefault(c, []).append(per_video[f"{c}/{v}"])
        per_cat = {c: float(np.mean(x)) for c, x in sorted(cats.items())}
        all_frames = [i for x in self.frames.values() for i in x]
        return {
            "mIoU": float(np.mean(list(per_cat.values()))) if per_cat else float("nan"),
            "frame_mIoU": float(np.mean(all_frames)) if all_frames else float("nan"),
            "per_category": per_cat,
            "per_video": per_video,
            "num_frames": len(all_frames),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"frames": {k: list(v) for k, v in self.frames.items()}}

    def merge(self, other_state: dict[str, Any]) -> None:
        for k, v in other_state["frames"].items():
            self.frames.setdefault(tuple(k), []).extend(v)


def evaluate_youtube_objects_folder(gt_root: str | os.PathLike, pred_root: str | os.PathLike) -> dict[str, Any]:
    """Score ``<pred>/<category>/<video>/<frame>.png`` against ``<gt>/<category>/<video>/<frame>.png``.

    Raises:
        DataError: no GT found, or predictions missing (count and first names).
    """
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    gts = sorted(gt_root.glob("*/*/*.png"))
    if not gts:
        raise DataError(gt_root, "no ground-truth masks <category>/<video>/<frame>.png found")
    missing = [str(p.relative_to(gt_root)) for p in gts if not (pred_root / p.relative_to(gt_root)).is_file()]
    raise_missing(missing, pred_root)
    ev = YouTubeObjectsEvaluator()
    for p in gts:
        rel = p.relative_to(gt_root)
        pred = read_label_png(pred_root / rel)
        gt = read_label_png(p)
        if pred.shape != gt.shape:
            raise DataError(pred_root / rel, f"prediction size {pred.shape} differs from ground truth {gt.shape}")
        ev.process(gt, pred, rel.parts[0], rel.parts[1])
    return ev.evaluate()
