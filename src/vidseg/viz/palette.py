"""Colours for labels: the benchmarks' palettes and deterministic per-instance colours.

Instance colours come from a hash of the id (no state, no random generator), so the same track id gets
the same colour in every frame, every video and every run.
"""

from __future__ import annotations

import colorsys
import functools

import numpy as np

from vidseg.categories import davis_palette, semantic_palette

IGNORE_COLOR = (0, 0, 0)


@functools.cache
def semantic_colors() -> np.ndarray:
    """A 256-entry lookup table uint8 [256, 3]: entries 0..123 are the VSPW/VIPSeg class colours
    (``vidseg.categories.semantic_palette``), the rest (255 = ignore included) are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    pal = semantic_palette()
    lut[: len(pal)] = pal
    lut.setflags(write=False)
    return lut


@functools.cache
def davis_colors() -> np.ndarray:
    """The DAVIS annotation palette uint8 [256, 3] (``vidseg.categories.davis_palette``)."""
    lut = davis_palette().copy()
    lut.setflags(write=False)
    return lut


def _mix(value: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit hash of an integer."""
    z = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=65536)
def instance_color(instance_id: int) -> tuple[int, int, int]:
    """A bright, saturated colour derived deterministically from an id (0 -> black)."""
    if instance_id == 0:
        return IGNORE_COLOR
    h = _mix(int(instance_id))
    hue = (h & 0xFFFF) / 65536.0
    sat = 0.65 + 0.35 * ((h >> 16) & 0xFF) / 255.0
    val = 0.75 + 0.25 * ((h >> 24) & 0xFF) / 255.0
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def colorize(labels: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """Colour a label map with a lookup table.

    Args:
        labels: integer array [H, W] with values 0..255.
        palette: uint8 [256, 3] (defaults to :func:`semantic_colors`).

    Returns:
        uint8 RGB [H, W, 3].
    """
    palette = semantic_colors() if palette is None else np.asarray(palette, dtype=np.uint8)
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(palette)):
        raise ValueError(f"labels must lie in 0..{len(palette) - 1}, got {labels.min()}..{labels.max()}")
    return palette[labels]


def colorize_instances(ids: np.ndarray) -> np.ndarray:
    """Colour an id map [H, W] (track ids, panoptic ids, any integers) with :func:`instance_color`; 0 is black."""
    ids = np.asarray(ids)
    uniq, inverse = np.unique(ids, return_inverse=True)
    lut = np.array([instance_color(int(u)) for u in uniq], dtype=np.uint8).reshape(-1, 3)
    return lut[inverse.reshape(ids.shape)]


def colorize_panoptic(ids: np.ndarray, label_divisor: int = 1000) -> np.ndarray:
    """Colour library panoptic ids [H, W] (``(category+1)*divisor + instance``, 0 = void): stuff segments in
    their class colour, thing segments in a per-id colour, void black."""
    ids = np.asarray(ids, dtype=np.int64)
    category = ids // label_divisor - 1
    instance = ids % label_divisor
    out = semantic_colors()[np.clip(category, 0, 255)]
    things = (instance > 0) & (ids > 0)
    if things.any():
        out[things] = colorize_instances(ids[things][None, :])[0]
    out[ids == 0] = IGNORE_COLOR
    return out
