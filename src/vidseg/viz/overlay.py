"""Overlays of labels on frames: alpha blending and label contours.

All functions take and return uint8 RGB arrays [H, W, 3] and never modify their inputs.
"""

from __future__ import annotations

import numpy as np

from vidseg.viz.palette import colorize, colorize_instances


def blend(image: np.ndarray, colors: np.ndarray, alpha: float = 0.5, where: np.ndarray | None = None) -> np.ndarray:
    """Alpha-blend ``colors`` onto ``image``: ``round((1 - alpha) * image + alpha * colors)`` where ``where``.

    Args:
        image: uint8 [H, W, 3].
        colors: uint8 [H, W, 3].
        alpha: weight of the colours, 0..1.
        where: optional bool [H, W]; pixels outside keep the image.

    Returns:
        uint8 [H, W, 3].
    """
    if image.shape != colors.shape or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"blend expects two [H, W, 3] arrays of one shape, got {image.shape} and {colors.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    mixed = image.astype(np.float32) * np.float32(1.0 - alpha) + colors.astype(np.float32) * np.float32(alpha)
    out = np.rint(mixed).astype(np.uint8)
    if where is not None:
        out = np.where(where[..., None], out, image)
    return out


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose label differs from the pixel right of or below them (bool [H, W])."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def draw_contours(image: np.ndarray, labels: np.ndarray, color: tuple[int, int, int] | np.ndarray = (255, 255, 255),
                  thickness: int = 1) -> np.ndarray:
    """Draw the boundaries between labels on the image.

    Args:
        image: uint8 [H, W, 3].
        labels: integer [H, W].
        color: one RGB colour, or a uint8 [H, W, 3] array giving the colour per pixel.
        thickness: line thickness in pixels (boundaries are dilated by ``thickness - 1``).
    """
    edge = boundaries(labels)
    if thickness > 1:
        import cv2

        kernel = np.ones((thickness, thickness), dtype=np.uint8)
        edge = cv2.dilate(edge.view(np.uint8), kernel).astype(bool)
    out = image.copy()
    col = np.asarray(color, dtype=np.uint8)
    out[edge] = col[edge] if col.ndim == 3 else col
    return out


def overlay_semantic(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5, palette: np.ndarray | None = None,
                     ignore_label: int = 255, contours: bool = True) -> np.ndarray:
    """Frame with a semantic label map blended on top (ignored pixels untouched) and class contours.

    Args:
        image: uint8 [H, W, 3].
        labels: integer [H, W], classes 0..255 with ``ignore_label`` left unblended.
        alpha: colour weight.
        palette: uint8 [256, 3] (VSPW/VIPSeg class colours by default).
        ignore_label: label drawn without colour.
        contours: draw white class boundaries.
    """
    colors = colorize(labels, palette)
    out = blend(image, colors, alpha, where=np.asarray(labels) != ignore_label)
    return draw_contours(out, labels) if contours else out


def overlay_instances(image: np.ndarray, ids: np.ndarray, alpha: float = 0.5, contours: bool = True) -> np.ndarray:
    """Frame with instance / object ids blended on top (0 untouched); colours are stable per id."""
    ids = np.asarray(ids)
    out = blend(image, colorize_instances(ids), alpha, where=ids != 0)
    return draw_contours(out, ids) if contours else out
