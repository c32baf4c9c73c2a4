"""Video panoptic overlays: things in a colour fixed by their track id, stuff in its category colour, a legend.

``overlay_panoptic(image, ids)`` takes library panoptic ids (``(category + 1) * divisor + instance``, instance 0
for stuff, ``track + 1`` for things, 0 void). A thing's colour is :func:`~vidseg.viz.palette.instance_color` of
its whole panoptic id, so the same track keeps the same colour in every frame of a video (and two tracks of
different categories never share an id). Stuff uses the VIPSeg category colour. The legend, a strip to the
right of the frame, names the categories of the frame (things as ``name #track``).
"""

from __future__ import annotations

import functools

import numpy as np

from vidseg.categories import vipseg_categories
from vidseg.structures import DEFAULT_LABEL_DIVISOR
from vidseg.viz.overlay import blend, draw_contours
from vidseg.viz.palette import instance_color

LEGEND_BACKGROUND = (24, 24, 24)
LEGEND_TEXT = (235, 235, 235)


@functools.cache
def _category_table() -> tuple[dict[int, str], dict[int, tuple[int, int, int]]]:
    cats = vipseg_categories()
    return {c.id: c.name for c in cats}, {c.id: tuple(c.color) for c in cats}


def segment_color(segment_id: int, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> tuple[int, int, int]:
    """Colour of one library panoptic id: stuff -> category colour, thing -> colour of the id, void -> black."""
    if segment_id <= 0:
        return (0, 0, 0)
    category, instance = divmod(int(segment_id), label_divisor)
    if instance:
        return instance_color(int(segment_id))
    colors = _category_table()[1]
    return colors.get(category - 1, instance_color(int(segment_id)))


def segment_label(segment_id: int, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> str:
    """Legend text of one id: the category name (VIPSeg names; ``class N`` otherwise), ``#track`` for things."""
    category, instance = divmod(int(segment_id), label_divisor)
    name = _category_table()[0].get(category - 1, f"class {category - 1}")
    return f"{name} #{instance}" if instance else name


def colorize_video_panoptic(ids: np.ndarray, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> np.ndarray:
    """uint8 RGB [H, W, 3] of library ids [H, W] with :func:`segment_color` (void black)."""
    ids = np.asarray(ids, dtype=np.int64)
    uniq, inverse = np.unique(ids, return_inverse=True)
    lut = np.array([segment_color(int(u), label_divisor) for u in uniq], dtype=np.uint8).reshape(-1, 3)
    return lut[inverse.reshape(ids.shape)]


def draw_legend(height: int, entries: list[tuple[str, tuple[int, int, int]]], width: int = 160) -> np.ndarray:
    """A legend strip uint8 [height, width, 3]: one colour swatch and text per entry (cut at the bottom)."""
    from PIL import Image, ImageDraw, ImageFont

    row = max(10, min(16, height // 12))
    font = ImageFont.load_default(size=max(8, row - 3))
    canvas = Image.new("RGB", (width, height), LEGEND_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (text, color) in enumerate(entries):
        y = 2 + i * row
        if y + row > height:
            break
        draw.rectangle((3, y + 1, 3 + row - 3, y + row - 2), fill=tuple(int(c) for c in color))
        draw.text((row + 3, y + row // 2), text, fill=LEGEND_TEXT, font=font, anchor="lm")
    return np.asarray(canvas)


def overlay_panoptic(image: np.ndarray, ids: np.ndarray, *, alpha: float = 0.5, legend: bool = True,
                     legend_width: int = 160, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> np.ndarray:
    """Frame with its panoptic segments blended on top, segment contours, and (optionally) a legend strip.

    Args:
        image: uint8 RGB [H, W, 3].
        ids: library panoptic ids [H, W] (0 void: left unblended).
        alpha: colour weight.
        legend: append the legend to the right (the result is then [H, W + legend_width, 3]).
        legend_width: legend strip width in pixels.
        label_divisor: of ``ids``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.shape != image.shape[:2]:
        raise ValueError(f"ids {ids.shape} and image {image.shape[:2]} differ in size")
    out = draw_contours(blend(image, colorize_video_panoptic(ids, label_divisor), alpha, where=ids != 0), ids)
    if not legend:
        return out
    present, areas = np.unique(ids[ids != 0], return_counts=True)
    order = present[np.argsort(-areas, kind="stable")]
    entries = [(segment_label(int(i), label_divisor), segment_color(int(i), label_divisor)) for i in order]
    return np.concatenate([out, draw_legend(image.shape[0], entries, legend_width)], axis=1)
