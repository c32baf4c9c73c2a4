"""``vidseg demo`` (basic part): a synthetic VSPW dataset, an overlay video and a ground-truth contact sheet.

The demo reads its own dataset back through the VSPW reader, so it also shows that the synthetic layout
is the official one. The training part of the demo is :mod:`vidseg.demo.runs`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseg.categories import vspw_class_names
from vidseg.data.synth import generate
from vidseg.data.vspw import VSPWDataset
from vidseg.viz.grid import comparison, contact_sheet
from vidseg.viz.palette import colorize, semantic_colors
from vidseg.viz.video import write_mp4, write_png


@dataclass
class DemoSize:
    """Data and training sizes (the defaults fit in about 10 minutes on 2 cores)."""

    videos: int = 12
    frames: int = 24
    height: int = 96
    width: int = 128
    iters: int = 300
    batch: int = 4
    lr: float = 1e-3


@dataclass
class DemoResult:
    """What the demo wrote (paths) and how long it took."""

    dataset: Path
    overlay_video: Path
    contact_sheet: Path
    videos: int
    frames: int
    seconds: float
    extra: dict[str, Path] = field(default_factory=dict)

    def rows(self) -> list[list[str]]:
        """(what, path) rows for a result table."""
        rows = [["synthetic VSPW dataset", str(self.dataset)], ["overlay video (mp4)", str(self.overlay_video)],
                ["ground-truth contact sheet", str(self.contact_sheet)]]
        rows += [[k, str(v)] for k, v in self.extra.items()]
        return rows


def overlay_frames(video, alpha: float = 0.5):
    """Yield frame | ground-truth overlay panels for every frame of a VSPW reader video."""
    for i in range(len(video)):
        frame, label = video.load_sample(i)
        yield comparison(frame, label, None, titles=(f"{video.name} frame {i + 1}", "ground truth", ""), alpha=alpha)


def gt_contact_sheet(videos, per_video: int = 6) -> np.ndarray:
    """A contact sheet with ``per_video`` evenly spaced colourised ground-truth masks per video (one row each)."""

    tiles, labels = [], []
    for video in videos:
        picks = np.linspace(0, len(video) - 1, num=min(per_video, len(video))).round().astype(int)
        for i in picks:
            tiles.append(colorize(video.load_label(int(i))))
            labels.append(f"{video.name} #{int(i) + 1}")
    sheet = contact_sheet(tiles, columns=min(per_video, max(len(v) for v in videos)), labels=labels)
    present = sorted({int(c) for v in videos for i in range(len(v)) for c in np.unique(v.load_label(i)) if c < 255})
    return np.concatenate([sheet, legend_strip(present, sheet.shape[1])], axis=0)


def legend_strip(classes: list[int], width: int, row_height: int = 18) -> np.ndarray:
    """A white strip [H, width, 3] uint8 naming each class id of ``classes`` next to its overlay colour."""
    from PIL import Image, ImageDraw

    names, colors = vspw_class_names(), semantic_colors()
    cell = 150
    per_row = max(1, width // cell)
    rows = max(1, -(-len(classes) // per_row))
    img = Image.new("RGB", (width, rows * row_height + 4), "white")
    draw = ImageDraw.Draw(img)
    for k, c in enumerate(classes):
        x, y = (k % per_row) * cell + 4, (k // per_row) * row_height + 3
        draw.rectangle([x, y, x + 12, y + 12], fill=tuple(int(v) for v in colors[c]), outline="black")
        draw.text((x + 17, y), names[c][:20], fill="black")
    return np.asarray(img)


def run_basic_demo(out: str | os.PathLike, *, videos: int = 2, frames: int = 24, size: tuple[int, int] = (240, 426),
                   seed: int = 0, fps: float = 8.0, progress: bool = True) -> DemoResult:
    """Generate a small synthetic VSPW-layout dataset in ``out`` and draw it.

    Writes ``out/synthetic_vspw/`` (the dataset, replaced if it exists), ``out/overlay.mp4`` (frame next to
    its ground-truth overlay, first video) and ``out/ground_truth.png`` (contact sheet of every video).

    Args:
        out: output folder.
        videos, frames, size, seed: dataset shape, as for :func:`vidseg.data.synth.generate`.
        fps: frame rate of the overlay video.
        progress: show progress bars.
    """

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = out / "synthetic_vspw"
    generate("vspw", root, videos=videos, frames=frames, size=size, seed=seed, val_fraction=0.5,
             overwrite=True, progress=progress)
    dataset = VSPWDataset(root)
    video_path = write_mp4(out / "overlay.mp4", overlay_frames(dataset[0]), fps=fps)
    sheet_path = write_png(out / "ground_truth.png", gt_contact_sheet(list(dataset)))
    return DemoResult(dataset=root, overlay_video=video_path, contact_sheet=sheet_path, videos=videos,
                      frames=videos * frames, seconds=time.perf_counter() - start)
