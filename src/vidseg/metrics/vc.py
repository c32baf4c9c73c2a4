"""Video Consistency VC_n (VSPW), computed in one pass with per-pixel run lengths.

Definition (``VC_perclip.py``): for a window of n consecutive frames starting at i, ``gt_c`` marks the
pixels whose GT value is the same in all n frames, ``pr_c`` the same for the prediction, and
``acc = |gt_c & pr_c| / |gt_c|`` (0/0 = NaN). mVC_n = nanmean of the accs of all windows of all
videos, pooled (not a mean of per-video means).

A pixel is constant over the window ending at frame e iff its value has not changed during the last
n frames, i.e. its run length (number of consecutive equal values ending at e) is >= n. Keeping one
run-length map for the GT and one for the prediction makes every n cost O(1) per frame, where the
official code compares each window's frames again (O(n) per window).

Protocols:
    * ``official``: windows start at ``range(T - n)`` -- one fewer than the paper's T-n+1 (the window
      ending at the last frame is dropped), so videos with T <= n contribute nothing.
    * ``strict``: all T-n+1 windows.
In both, void/others pixels are not excluded (the GT is compared on whatever values it holds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidseg.errors import DataError
from vidseg.metrics.evaluator import check_protocol


class VCVideoAccumulator:
    """Window accuracies of one video for several n, fed one frame at a time.

    Args:
        lengths: window lengths n (each >= 2).
        protocol: ``official`` or ``strict`` (see module docstring).
    """

    def __init__(self, lengths: Sequence[int] = (8, 16), protocol: str = "official") -> None:
        self.lengths = tuple(int(n) for n in lengths)
        if any(n < 1 for n in self.lengths):
            raise ValueError(f"VC window lengths must be >= 1, got {self.lengths}")
        self.protocol = check_protocol(protocol)
        self._cap = max(self.lengths, default=1)
        self._accs: dict[int, list[float]] = {n: [] for n in self.lengths}
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._run_gt: np.ndarray | None = None
        self._run_pr: np.ndarray | None = None
        self.num_frames = 0

    def add(self, gt: np.ndarray, pred: np.ndarray, where: str = "VC") -> None:
        """Add the next frame. gt, pred: [H, W] label maps of the same size as the previous frames.

        ``where`` (the frame's file) is named when the frame size changed within the video.
        """
        if self._prev is None:
            dtype = np.uint8 if self._cap < 255 else np.uint16
            self._run_gt = np.ones(gt.shape, dtype)
            self._run_pr = np.ones(pred.shape, dtype)
        else:
            if gt.shape != self._prev[0].shape:
                raise DataError(where, f"frame size {gt.shape[::-1]} differs from the previous frames' "
                                       f"{self._prev[0].shape[::-1]} (W, H) within one video")
            _advance(self._run_gt, gt == self._prev[0], self._cap)
            _advance(self._run_pr, pred == self._prev[1], self._cap)
        self._prev = (gt, pred)
        self.num_frames += 1
        for n in self.lengths:
            if self.num_frames >= n:
                gc = self._run_gt >= n
                both = np.count_nonzero(gc & (self._run_pr >= n))
                den = np.count_nonzero(gc)
                self._accs[n].append(both / den if den else float("nan"))

    def finish(self) -> dict[int, np.ndarray]:
        """Window accuracies per n (float64 arrays, window order); official drops the last window."""
        out = {}
        for n in self.lengths:
            accs = self._accs[n]
            if self.protocol == "official":
                accs = accs[:-1]
            out[n] = np.asarray(accs, dtype=np.float64)
        return out


def _advance(run: np.ndarray, same: np.ndarray, cap: int) -> None:
    """run <- min(run + 1, cap) where same, else 1 (in place)."""
    np.minimum(run, cap, out=run)
    run *= same
    run += 1


def vc_window_accs(gts: Sequence[np.ndarray], preds: Sequence[np.ndarray], n: int,
                   protocol: str = "official") -> np.ndarray:
    """Window accuracies of one video (pure function over whole sequences).

    Args:
        gts: T label maps [H, W] (raw GT values; void is not excluded).
        preds: T predicted label maps [H, W].
        n: window length.
        protocol: ``official`` (range(T-n) windows) or ``strict`` (T-n+1 windows).

    Returns:
        float64 array of per-window accuracies (NaN where the GT has no consistent pixel).
    """
    if len(gts) != len(preds):
        raise DataError("VC", f"{len(gts)} GT frames but {len(preds)} predictions")
    acc = VCVideoAccumulator((n,), protocol)
    for g, p in zip(gts, preds, strict=True):
        acc.add(g, p)
    return acc.finish()[n]


def mean_vc(window_accs: Sequence[np.ndarray]) -> float:
    """mVC: nanmean over the window accuracies of all videos pooled (NaN if there is none)."""
    arrs = [np.asarray(a, np.float64) for a in window_accs if len(a)]
    if not arrs:
        return float("nan")
    allv = np.concatenate(arrs)
    if np.isnan(allv).all():
        return float("nan")
    return float(np.nanmean(allv))
