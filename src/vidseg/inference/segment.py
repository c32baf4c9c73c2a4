"""Segment one video into a folder of per-frame masks (the VSPW submission format) and an optional overlay.

``segment_video(predictor, video, out_dir)`` writes one indexed (P-mode) PNG per frame, values 0..K-1 with the
semantic palette, to ``<out_dir>/<frame stem>.png``, each written atomically, and optionally an overlay mp4.
An interrupted run resumes: frames whose PNG exists are not decoded again (their support frames are still
read and, when another target needs them, encoded).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidseg.data.video import open_video
from vidseg.fileio import read_image, write_mask_png
from vidseg.inference.pipeline import READ_AHEAD, OrderedJobs
from vidseg.inference.predictor import FramePrediction, VideoPredictor
from vidseg.viz.overlay import overlay_semantic
from vidseg.viz.palette import semantic_colors
from vidseg.viz.video import Mp4Writer

# frame folders whose own name is a layout's, not the video's: VSPW data/<video>/origin, DAVIS-like <video>/images
FRAME_FOLDER_NAMES = frozenset({"origin", "images", "imgs", "frames", "rgb", "jpegimages"})


def video_name(path: Path) -> str:
    """Output folder name of a video: its id for dataset layouts, else the folder name or file stem.

    VSPW ``data/<video>/origin/`` -> ``<video>``; DAVIS ``JPEGImages/480p/<sequence>/`` -> ``<sequence>``;
    VIPSeg ``imgs/<video>/`` -> ``<video>``; a folder named like ``frames``/``images`` -> its parent's name;
    ``clip.mp4`` -> ``clip``.
    """
    path = Path(path)
    if not path.is_dir():
        return path.stem
    resolved = path.resolve()
    if resolved.name.lower() in FRAME_FOLDER_NAMES and resolved.parent.name:
        return resolved.parent.name
    return resolved.name


def _source_info(path: Path) -> tuple[int | None, float]:
    source = open_video(path)
    return (int(source.num_frames) or None), float(source.fps or 15.0)


def _overlay_writer(stack: contextlib.ExitStack, overlay: Path | None, fps: float) -> Mp4Writer | None:
    if overlay is None:
        return None
    return stack.enter_context(Mp4Writer(overlay, fps=fps))


def _write_frame(path: Path, pred: FramePrediction, palette: np.ndarray, writer: Mp4Writer | None) -> None:
    """Write one frame's mask (unless it was skipped: resume) and its overlay frame; reads a skipped mask back."""
    labels = pred.labels
    if pred.skipped:
        labels = read_image(path, "P") if writer is not None else None
    else:
        write_mask_png(path, np.asarray(labels, dtype=np.uint8), palette)
    if writer is not None:
        writer.write(overlay_semantic(pred.image, labels))


def segment_video(predictor: VideoPredictor, video: Path, out_dir: Path, *, overlay: Path | None = None,
                  fps: float | None = None, progress: bool = True, pipeline: bool = True) -> dict[str, Any]:
    """Write the masks (and overlay) of one video; returns a summary row.

    Frames whose mask already exists are skipped (resume); for the overlay their mask is read back. With
    ``pipeline`` the next frames are decoded and the masks and overlay written on helper threads while the
    model runs (:mod:`vidseg.inference.pipeline`; the same files).

    Returns:
        ``{"video", "frames", "written", "skipped", "seconds", "fps"}``.
    """
    total, video_fps = _source_info(video)
    palette = semantic_colors()
    out_dir.mkdir(parents=True, exist_ok=True)

    def done(index: int, name: str) -> bool:
        return (out_dir / f"{name}.png").is_file()

    written = skipped = 0
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = _overlay_writer(stack, overlay, fps or video_fps)
        jobs = stack.enter_context(OrderedJobs(enabled=pipeline))  # closed (drained) before the overlay writer
        preds = predictor.predict(video, skip=done, read_ahead=READ_AHEAD if pipeline else 0)
        for pred in tqdm(preds, total=total, desc=f"segment {video_name(video)}", unit="frame",
                         disable=not progress):
            skipped, written = skipped + pred.skipped, written + (not pred.skipped)
            jobs.submit(_write_frame, out_dir / f"{pred.name}.png", pred, palette, writer)
    seconds = time.perf_counter() - start
    return {"video": video_name(video), "frames": written + skipped, "written": written, "skipped": skipped,
            "seconds": round(seconds, 3), "fps": round(written / seconds, 3) if seconds > 0 else 0.0}
