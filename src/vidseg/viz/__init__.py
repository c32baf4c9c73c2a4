"""vidseg.viz: palettes, overlays, side-by-side grids, contact sheets, mp4/GIF/PNG writers, HTML reports.

Submodules: ``palette`` (class and instance colours), ``overlay`` (alpha blend, contours), ``grid``
(side-by-side panels, contact sheets), ``video`` (PNG, mp4 via PyAV, GIF via Pillow; atomic writes),
``report`` (self-contained HTML with tables, plots and videos). The demo lives in :mod:`vidseg.demo`.
Importing this package loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "semantic_colors": "palette", "davis_colors": "palette", "instance_color": "palette", "colorize": "palette",
    "colorize_instances": "palette", "colorize_panoptic": "palette",
    "blend": "overlay", "boundaries": "overlay", "draw_contours": "overlay", "overlay_semantic": "overlay",
    "overlay_instances": "overlay",
    "side_by_side": "grid", "comparison": "grid", "contact_sheet": "grid",
    "write_png": "video", "write_mp4": "video", "write_gif": "video", "Mp4Writer": "video",
    "write_report": "report", "Section": "report", "Table": "report", "Plot": "report", "Video": "report",
    "Image": "report",

}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vidseg.viz' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vidseg.viz.{module}"), name)
