"""Side-by-side panels with titles (frame | ground truth | prediction) and contact sheets."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from vidseg.viz.overlay import overlay_instances, overlay_semantic

BACKGROUND = (24, 24, 24)
TEXT_COLOR = (235, 235, 235)


@functools.cache
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def title_height(width: int) -> int:
    """Height in pixels of the title bar above a panel of the given width."""
    return max(12, min(28, width // 16))


def _with_title(panel: np.ndarray, title: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = panel.shape[:2]
    bar = title_height(w)
    canvas = Image.new("RGB", (w, h + bar), BACKGROUND)
    canvas.paste(Image.fromarray(panel), (0, bar))
    if title:
        draw = ImageDraw.Draw(canvas)
        draw.text((4, bar // 2), title, fill=TEXT_COLOR, font=_font(max(8, bar - 6)), anchor="lm")
    return np.asarray(canvas)


def _as_rgb(panel: np.ndarray) -> np.ndarray:
    panel = np.asarray(panel)
    if panel.ndim == 2:
        panel = np.repeat(panel[..., None], 3, axis=-1)
    if panel.ndim != 3 or panel.shape[-1] != 3 or panel.dtype != np.uint8:
        raise ValueError(f"panels must be uint8 [H, W, 3] or [H, W], got {panel.dtype} {panel.shape}")
    return panel


def side_by_side(panels: Sequence[np.ndarray], titles: Sequence[str] | None = None, pad: int = 4) -> np.ndarray:
    """Put panels of one height next to each other, each with an optional title bar.

    Args:
        panels: uint8 images [H, W_i, 3] (or [H, W_i] grey), all of height H.
        titles: one title per panel (None: no title bars).
        pad: gap between panels in pixels.

    Returns:
        uint8 [H + title bar, sum W_i + pad * (n - 1), 3].
    """
    panels = [_as_rgb(p) for p in panels]
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    if len({p.shape[0] for p in panels}) != 1:
        raise ValueError(f"panels differ in height: {[p.shape[0] for p in panels]}")
    if titles is not None:
        if len(titles) != len(panels):
            raise ValueError(f"{len(titles)} titles for {len(panels)} panels")
        bar = max(title_height(p.shape[1]) for p in panels)
        panels = [_with_title(p, t) for p, t in zip(panels, titles, strict=True)]
        # equalise bar heights (panels of different widths get different bars)
        top = max(p.shape[0] for p in panels)
        panels = [np.pad(p, ((top - p.shape[0], 0), (0, 0), (0, 0)), constant_values=BACKGROUND[0]) for p in panels]
        del bar
    h = panels[0].shape[0]
    gap = np.full((h, pad, 3), BACKGROUND, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if i:
            parts.append(gap)
        parts.append(p)
    return np.concatenate(parts, axis=1)


def comparison(frame: np.ndarray, gt: np.ndarray | None, pred: np.ndarray | None, *, kind: str = "semantic",
               alpha: float = 0.5, titles: Sequence[str] = ("frame", "ground truth", "prediction")) -> np.ndarray:
    """frame | ground truth overlay | prediction overlay, with titles.

    Args:
        frame: uint8 [H, W, 3].
        gt, pred: label maps [H, W] (semantic classes with 255 ignored, or instance/object ids with 0 = none);
            a missing one is left out.
        kind: ``"semantic"`` or ``"instance"``.
    """
    draw = overlay_semantic if kind == "semantic" else overlay_instances
    panels, names = [frame], [titles[0]]
    for labels, name in ((gt, titles[1]), (pred, titles[2])):
        if labels is not None:
            panels.append(draw(frame, labels, alpha))
            names.append(name)
    return side_by_side(panels, names)


def contact_sheet(images: Sequence[np.ndarray], columns: int | None = None, labels: Sequence[str] | None = None,
                  pad: int = 2, tile_size: tuple[int, int] | None = None) -> np.ndarray:
    """Arrange images in a grid (row-major) on a dark background.

    Args:
        images: uint8 [H_i, W_i, 3]; resized to ``tile_size`` (H, W) if given, else to the first image's size.
        columns: images per row (default: about square).
        labels: optional caption per image (drawn in a title bar above it).
        pad: border and gap in pixels.

    Returns:
        uint8 [rows * (th + bar) + (rows + 1) * pad, columns * tw + (columns + 1) * pad, 3] where ``bar`` is
        the caption height (0 without labels).
    """
    from PIL import Image

    if not images:
        raise ValueError("contact_sheet needs at least one image")
    n = len(images)
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    th, tw = tile_size or images[0].shape[:2]
    tiles = []
    for i, img in enumerate(images):
        img = _as_rgb(img)
        if img.shape[:2] != (th, tw):
            img = np.asarray(Image.fromarray(img).resize((tw, th), Image.BILINEAR))
        tiles.append(_with_title(img, labels[i]) if labels is not None else img)
    cell_h = tiles[0].shape[0]
    sheet = np.full((rows * cell_h + (rows + 1) * pad, columns * tw + (columns + 1) * pad, 3), BACKGROUND,
                    dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = pad + r * (cell_h + pad), pad + c * (tw + pad)
        sheet[y:y + cell_h, x:x + tw] = tile
    return sheet
