"""Temporal Consistency TC (VSPW ``TC_cal.py``).

For consecutive frames (t, t+1) the prediction of t+1 is warped back to t with the optical flow from t
to t+1 (:func:`vidseg.flow.flowwarp`, the official arithmetic), and the pair (pred_t as "ground
truth", warped pred_t+1 as prediction) goes into a confusion matrix shared by all pairs of all
videos. TC = mIoU of that matrix with the official rule (classes present in pred_t). No GT is used.
The official script scores only the first 100 videos of ``val.txt`` and uses RAFT flow; our numbers
equal the official ones when given the same flow (the default OpenCV DIS flow gives a different TC).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidseg.categories import NUM_VSPW_CLASSES
from vidseg.errors import DataError
from vidseg.flow import flowwarp
from vidseg.metrics.confusion import confusion_matrix, mean_iou
from vidseg.metrics.evaluator import Evaluator


def tc_pair_confusion(pred_t: np.ndarray, pred_t1: np.ndarray, flow: np.ndarray,
                      num_classes: int = NUM_VSPW_CLASSES, where: str = "prediction") -> np.ndarray:
    """Confusion matrix [K, K] of one frame pair: rows pred_t, columns flowwarp(pred_t1, flow)."""
    if pred_t.shape != pred_t1.shape:
        raise_size(where, pred_t.shape, pred_t1.shape)
    warped = flowwarp(pred_t1, flow)
    return confusion_matrix(pred_t, warped, num_classes, validate=False, where=where)


def raise_size(where: str, a: tuple, b: tuple) -> None:
    raise DataError(where, f"consecutive predictions have different sizes {a} and {b}")


class TCEvaluator(Evaluator):
    """Accumulates the TC confusion matrix over frame pairs.

    Args:
        num_classes: K (124 for VSPW).
    """

    def __init__(self, num_classes: int = NUM_VSPW_CLASSES) -> None:
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.cm = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.num_pairs = 0

    def process(self, pred_t: np.ndarray, pred_t1: np.ndarray, flow: np.ndarray) -> None:  # type: ignore[override]
        """Add one pair: predictions [H, W] of frames t and t+1 and the flow [H, W, 2] from t to t+1."""
        self.cm += tc_pair_confusion(pred_t, pred_t1, flow, self.num_classes)
        self.num_pairs += 1

    def evaluate(self) -> dict[str, Any]:
        return {"TC": mean_iou(self.cm, "official"), "tc_pairs": self.num_pairs}

    def state_dict(self) -> dict[str, Any]:
        return {"cm": self.cm.copy(), "num_pairs": self.num_pairs}

    def merge(self, other_state: dict[str, Any]) -> None:
        self.cm += other_state["cm"]
        self.num_pairs += int(other_state["num_pairs"])
