"""Confusion matrices and the IoU family computed from them (VSPW ``utils.py`` Evaluator semantics).

``CM[gt, pred]`` counts pixels; rows are ground truth. Counts are kept as int64 (exact, mergeable) and
converted to float64 only for the final ratios, as the official evaluator stores float64 counts.
"""

from __future__ import annotations

import numpy as np

from vidseg.errors import ConfigError, DataError

IGNORE = 255


def check_pred_range(pred: np.ndarray, num_classes: int, where: str = "prediction") -> None:
    """Raise DataError if a prediction holds a value outside ``0..num_classes-1``.

    The official VSPW code has no such check: ``124*gt + pred`` with pred >= 124 lands in another
    class's cell (gt=5, pred=255 is counted as a true positive of class 7) or crashes.
    """
    if pred.size == 0:
        return
    if pred.dtype.kind == "f" or pred.dtype.kind == "b":
        raise DataError(where, f"prediction must hold integer class ids, got dtype {pred.dtype}")
    lo, hi = int(pred.min()), int(pred.max())
    if lo < 0 or hi >= num_classes:
        bad = hi if hi >= num_classes else lo
        raise DataError(where, f"prediction value {bad} outside the class range 0..{num_classes - 1}")


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, *, validate: bool = True,
                     where: str = "prediction") -> np.ndarray:
    """Pixel confusion matrix of one pair of label maps.

    Args:
        gt: [H, W] integer labels, classes ``0..num_classes-1``; any other value (255) is ignored,
            as the official ``mask = (gt >= 0) & (gt < num_classes)``.
        pred: [H, W] integer predictions in ``0..num_classes-1``.
        num_classes: K.
        validate: check the prediction range first (raises DataError naming ``where``).
        where: file name used in error messages.

    Returns:
        int64 array [K, K], ``CM[g, p]``.
    """
    if gt.shape != pred.shape:
        raise DataError(where, f"prediction size {pred.shape} differs from ground truth size {gt.shape}")
    if validate:
        check_pred_range(pred, num_classes, where)
    k = num_classes
    if gt.dtype == np.uint8 and pred.dtype == np.uint8 and gt.size < 2**24:
        return _hist2d(gt, pred, k)
    # One bincount over gt*K + pred with every ignored pixel sent to one extra bin (k*k), dropped after.
    g = gt.astype(np.int64)
    idx = g * k + pred.astype(np.int64)
    idx[(g < 0) | (g >= k)] = k * k
    counts = np.bincount(idx.ravel(), minlength=k * k + 1)
    return counts[: k * k].reshape(k, k).astype(np.int64, copy=False)


def _hist2d(gt: np.ndarray, pred: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Joint histogram of two uint8 maps with OpenCV (one pass, no index array); values >= k are dropped.

    Counts are float32 inside OpenCV, exact below 2**24 pixels per frame.
    """
    import cv2

    h = cv2.calcHist([np.ascontiguousarray(gt), np.ascontiguousarray(pred)], [0, 1], mask, [k, k], [0, k, 0, k])
    return h.astype(np.int64)


def _ious(cm: np.ndarray) -> np.ndarray:
    cm = cm.astype(np.float64)
    diag = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diag / (cm.sum(axis=1) + cm.sum(axis=0) - diag)


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU of each class, NaN where the class is neither in GT nor predicted. float64 [K]."""
    return _ious(cm)


def mean_iou(cm: np.ndarray, rule: str = "official") -> float:
    """Mean IoU from a confusion matrix.

    Args:
        cm: [K, K] confusion matrix.
        rule: ``"official"`` (VSPW ``Mean_Intersection_over_Union``): average over classes present in
            the GT (row sum > 0); a class only predicted is left out. ``"mmseg"``: nanmean over classes
            with a non-empty union, so a predicted-only class counts as 0.

    Returns:
        mIoU as a fraction (NaN when no class qualifies).
    """
    iou = _ious(cm)
    if rule == "official":
        isval = cm.sum(axis=1) > 0
        if isval.sum() == 0:
            return float("nan")
        return float(np.nansum(iou * isval) / isval.sum())
    if rule == "mmseg":
        valid = ~np.isnan(iou)
        return float(iou[valid].mean()) if valid.any() else float("nan")

    raise ConfigError(f"unknown mIoU rule {rule!r}; choose 'official' or 'mmseg'")


def weighted_iou(cm: np.ndarray) -> float:
    """Frequency-weighted IoU: sum over GT classes of (GT share of the class) * IoU."""
    cmf = cm.astype(np.float64)
    total = cmf.sum()
    if total == 0:
        return float("nan")
    freq = cmf.sum(axis=1) / total
    iou = _ious(cm)
    return float((freq[freq > 0] * iou[freq > 0]).sum())


def pixel_accuracy(cm: np.ndarray) -> float:
    """Correct pixels over all counted pixels."""
    cmf = cm.astype(np.float64)
    total = cmf.sum()
    return float(np.trace(cmf) / total) if total else float("nan")
