"""Keyframe label propagation (the VSPW annotation pipeline, §3.2.2 of the VSPW paper).

VSPW annotators labelled key frames at 1 f/s; a VOS model then propagated the labels *bidirectionally* from the
two annotated key frames around each unlabelled frame, and disagreements ("spots") were sent back for manual
refinement. The paper used a modified CFBI, whose weights are not available here; we propagate with dense
optical flow (any :mod:`vidseg.flow` backend, OpenCV DIS by default), which needs no training:

* forward chain: labels of key frame ``a`` are carried to ``a+1, a+2, ...`` by backward warping with the flow
  from each frame to its predecessor; backward chain: the same from key frame ``b`` downwards;
* each chain keeps a per-pixel confidence: the sample stayed inside the image and the forward/backward flows
  agree (occlusion check) at every step;
* per pixel, the confident chain wins; if both are confident, the nearer key frame wins (ties: forward);
* pixels where both chains are confident and disagree are returned as *spots* for review.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vidseg.flow import DISFlow

IGNORE = 255
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (frame_a, frame_b) -> flow a->b [H, W, 2]


def warp_labels(labels: np.ndarray, flow_to_source: np.ndarray, fill: int | None = IGNORE
                ) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp a label map: pixel p of the target takes ``labels[p + flow(p)]`` (nearest).

    Args:
        labels: uint8 [H, W] labels of the source frame.
        flow_to_source: float [H, W, 2] displacement (dx, dy) from each target pixel to the source frame.
        fill: label given to samples outside the source image; None repeats the nearest border label
            (content entering the view usually continues what is at the border).

    Returns:
        (warped uint8 [H, W], inside bool [H, W]).
    """
    import cv2

    h, w = labels.shape
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = xx + flow_to_source[..., 0].astype(np.float32)
    map_y = yy + flow_to_source[..., 1].astype(np.float32)
    if fill is None:
        warped = cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    else:
        warped = cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=fill)
    inside = (map_x > -0.5) & (map_x < w - 0.5) & (map_y > -0.5) & (map_y < h - 0.5)
    return warped, inside


def consistent_flow(flow_ab: np.ndarray, flow_ba: np.ndarray, tolerance: float = 1.5) -> np.ndarray:
    """Forward-backward check: True where following a->b then b->a returns within ``tolerance`` pixels.

    Args:
        flow_ab: [H, W, 2] flow from frame a to frame b (per pixel of a).
        flow_ba: [H, W, 2] flow from frame b to frame a (per pixel of b).

    Returns:
        bool [H, W] over the pixels of frame a.
    """
    import cv2

    h, w = flow_ab.shape[:2]
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = cv2.remap(flow_ba.astype(np.float32), xx + flow_ab[..., 0], yy + flow_ab[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    return np.linalg.norm(flow_ab + back, axis=-1) <= tolerance


def _chain(frames: Sequence[np.ndarray], start: int, stop: int, labels: np.ndarray, flow: FlowFn,
           tolerance: float) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Carry ``labels`` of frame ``start`` to every frame strictly between ``start`` and ``stop``."""
    step = 1 if stop > start else -1
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    current, confident = labels, np.ones(labels.shape, dtype=bool)
    for t in range(start + step, stop, step):
        to_prev = flow(frames[t], frames[t - step])
        from_prev = flow(frames[t - step], frames[t])
        current, inside = warp_labels(current, to_prev, fill=None)
        carried, _ = warp_labels(confident.astype(np.uint8), to_prev, fill=0)
        confident = carried.astype(bool) & inside & consistent_flow(to_prev, from_prev, tolerance)
        out[t] = (current, confident)
    return out


@dataclass
class Propagation:
    """Result of :func:`propagate_keyframes`.

    Attributes:
        labels: per frame, uint8 [H, W] labels (key frames unchanged).
        confident: per frame, bool [H, W]: the chosen label came through a confident chain.
        spots: per frame, bool [H, W]: both chains were confident and disagree (to review).
    """

    labels: list[np.ndarray]
    confident: list[np.ndarray]
    spots: list[np.ndarray]


def _merge(fw: tuple[np.ndarray, np.ndarray] | None, bw: tuple[np.ndarray, np.ndarray] | None,
           forward_nearer: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if fw is None or bw is None:
        lab, conf = fw if bw is None else bw  # type: ignore[misc]
        return lab, conf, np.zeros_like(conf)
    (lf, cf), (lb, cb) = fw, bw
    prefer_f = np.where(cf & cb, forward_nearer, cf | ~cb & forward_nearer)
    labels = np.where(prefer_f, lf, lb).astype(np.uint8)
    return labels, cf | cb, cf & cb & (lf != lb)


def propagate_keyframes(frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray],
                        flow: FlowFn | None = None, *, tolerance: float = 1.5) -> Propagation:
    """Label every frame of a video from a few annotated key frames.

    Args:
        frames: the video, uint8 RGB [H, W, 3] per frame.
        keyframes: frame index -> uint8 [H, W] label map (any label set; 255 = ignore).
        flow: ``flow(frame_a, frame_b) -> [H, W, 2]`` (flow from a to b); OpenCV DIS by default.
        tolerance: forward/backward flow agreement, in pixels, for a pixel to stay confident.

    Returns:
        a :class:`Propagation` with one entry per frame.
    """
    if not keyframes:
        raise ValueError("propagate_keyframes needs at least one annotated key frame")
    if any(k < 0 or k >= len(frames) for k in keyframes):
        raise ValueError(f"key frame index outside 0..{len(frames) - 1}: {sorted(keyframes)}")
    if flow is None:
        dis = DISFlow()
        flow = lambda a, b: dis(a, b)  # noqa: E731
    keys = sorted(keyframes)
    bounds = [(-1, keys[0])] + list(zip(keys, keys[1:])) + [(keys[-1], len(frames))]
    n = len(frames)
    labels: list[np.ndarray | None] = [None] * n
    confident: list[np.ndarray | None] = [None] * n
    spots: list[np.ndarray | None] = [None] * n
    for k in keys:
        labels[k] = np.asarray(keyframes[k], dtype=np.uint8)
        confident[k] = np.ones(labels[k].shape, dtype=bool)
        spots[k] = np.zeros(labels[k].shape, dtype=bool)
    for a, b in bounds:
        fw = _chain(frames, a, b, labels[a], flow, tolerance) if a >= 0 else {}
        bw = _chain(frames, b, a, labels[b], flow, tolerance) if b < n else {}
        for t in range(a + 1, b):
            labels[t], confident[t], spots[t] = _merge(fw.get(t), bw.get(t), forward_nearer=(t - a) <= (b - t))
    return Propagation(labels=labels, confident=confident, spots=spots)  # type: ignore[arg-type]
