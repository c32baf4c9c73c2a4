"""IoU + Hungarian association of instance masks across frames (how VIPSeg linked its 1-fps annotations).

Annotators labelled the instances of each frame independently; a tracker then propagated the ids from the first
frame: for two consecutive frames, the IoU between every pair of instances of the same category is computed and
the Hungarian algorithm assigns the ids of frame t to the instances of frame t+1 (VIPSeg paper, §3.4.1).
Instances left unmatched (or matched with IoU below ``min_iou``) start new tracks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy.optimize import linear_sum_assignment


def instance_iou(prev_ids: np.ndarray, next_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU between every instance of two id maps.

    Args:
        prev_ids: int array [H, W], 0 = no instance.
        next_ids: int array [H, W], 0 = no instance.

    Returns:
        (iou [P, N], prev instance ids [P], next instance ids [N]).
    """
    if prev_ids.shape != next_ids.shape:
        raise ValueError(f"id maps differ in size: {prev_ids.shape} vs {next_ids.shape}")
    p_vals, p_idx = np.unique(prev_ids, return_inverse=True)
    n_vals, n_idx = np.unique(next_ids, return_inverse=True)
    inter = np.bincount(p_idx.ravel() * len(n_vals) + n_idx.ravel(),
                        minlength=len(p_vals) * len(n_vals)).reshape(len(p_vals), len(n_vals))
    area_p = inter.sum(axis=1)
    area_n = inter.sum(axis=0)
    union = area_p[:, None] + area_n[None, :] - inter
    iou = inter / np.maximum(union, 1)
    keep_p, keep_n = p_vals != 0, n_vals != 0
    return iou[keep_p][:, keep_n], p_vals[keep_p], n_vals[keep_n]


def associate_pair(prev_ids: np.ndarray, next_ids: np.ndarray, prev_categories: dict[int, int],
                   next_categories: dict[int, int], *, min_iou: float = 0.0) -> dict[int, int]:
    """Match the instances of ``next_ids`` to those of ``prev_ids`` (same category only, maximum total IoU).

    Args:
        prev_ids, next_ids: int arrays [H, W] of instance ids (0 = none).
        prev_categories, next_categories: instance id -> category id.
        min_iou: a match needs IoU strictly above this.

    Returns:
        next instance id -> matched prev instance id (unmatched instances are absent).
    """
    iou, p_ids, n_ids = instance_iou(prev_ids, next_ids)
    if iou.size == 0:
        return {}
    same_cat = np.array([[prev_categories[int(p)] == next_categories[int(n)] for n in n_ids] for p in p_ids])
    score = np.where(same_cat, iou, 0.0)
    rows, cols = linear_sum_assignment(-score)
    return {int(n_ids[c]): int(p_ids[r]) for r, c in zip(rows, cols) if score[r, c] > min_iou}


class InstanceAssociator:
    """Frame-by-frame IoU + Hungarian association (the state of :func:`track_instances`).

    ``update(ids, categories)`` takes one frame's instance map with per-frame ids and returns its track ids:
    each instance continues the track of the same-category instance of the previous frame it overlaps most
    (one-to-one, maximum total IoU, IoU above ``min_iou``); the others start new tracks 1, 2, ... in order.

    Args:
        min_iou: minimum IoU to continue a track.
    """

    def __init__(self, *, min_iou: float = 0.0) -> None:
        self.min_iou = min_iou
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame and restart the track numbering at 1."""
        self.prev_tracks: np.ndarray | None = None
        self.prev_categories: dict[int, int] = {}
        self.next_track = 1

    def update(self, ids: np.ndarray, categories: dict[int, int]) -> np.ndarray:
        """Track ids of one frame.

        Args:
            ids: int array [H, W] of per-frame instance ids (0 = none).
            categories: instance id -> category id (every non-zero id of ``ids``).

        Returns:
            int32 [H, W] track ids (0 = none).
        """
        ids = np.asarray(ids)
        local = [int(v) for v in np.unique(ids) if v != 0]
        mapping: dict[int, int] = {}
        if self.prev_tracks is not None:
            mapping = associate_pair(self.prev_tracks, ids, self.prev_categories, categories, min_iou=self.min_iou)
        for v in local:
            if v not in mapping:
                mapping[v] = self.next_track
                self.next_track += 1
        lut_keys = np.array([0, *local])
        lut_vals = np.array([0, *(mapping[v] for v in local)], dtype=np.int32)
        order = np.argsort(lut_keys)
        tracks = lut_vals[order][np.searchsorted(lut_keys[order], ids)]
        self.prev_tracks = tracks
        self.prev_categories = {mapping[v]: categories[v] for v in local}
        return tracks


def track_instances(frames: Iterable[tuple[np.ndarray, dict[int, int]]], *,
                    min_iou: float = 0.0) -> Iterator[np.ndarray]:
    """Give frame-wise instance annotations video-level ids.

    Args:
        frames: per frame, (instance id map [H, W] with per-frame ids, 0 = none; id -> category).
        min_iou: minimum IoU to continue a track.

    Yields:
        per frame, an int32 map [H, W] of track ids (1, 2, ... in order of first appearance; 0 = none).
    """
    associator = InstanceAssociator(min_iou=min_iou)
    for ids, cats in frames:
        yield associator.update(ids, cats)
