"""Segment objects through one video from a first-frame mask with STCNN, into a DAVIS-layout results folder.

``segment_object_video(predictor, video, first_mask, out_dir)`` reads a video file or a frame folder, the
first-frame mask (:func:`vidseg.inference.vos.read_first_mask`), streams the frames through
:class:`~vidseg.inference.vos.StcnnVosPredictor` and writes one DAVIS palette PNG of object ids per frame to
``<out_dir>/<frame name>.png`` (frame folders keep their frame names, e.g. ``00000.png``; video files get
``00000000.png``-style numbers), each written atomically, plus an optional overlay mp4.

Resume: STCNN's gating chains every frame to the previous one, so a video can only be skipped as a whole. A
video whose masks all exist (and whose frame count is known) is not run again; a partial one is re-run from
frame 0 (the written masks are identical, so it completes the folder).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidseg.categories import davis_palette
from vidseg.data.davis import write_davis_mask
from vidseg.data.video import FrameFolder, open_video
from vidseg.inference.pipeline import READ_AHEAD, OrderedJobs, read_ahead
from vidseg.inference.predictor import iter_video
from vidseg.inference.segment import video_name
from vidseg.inference.vos import StcnnVosPredictor, read_first_mask
from vidseg.viz.overlay import overlay_semantic
from vidseg.viz.video import Mp4Writer


def _frame_names(video: Path) -> tuple[list[str] | None, float]:
    """The output names of the frames (None when the count is unknown) and the frame rate."""
    source = open_video(video)
    fps = float(source.fps or 15.0)
    if isinstance(source, FrameFolder):
        return [Path(p).stem for p in source.frames], fps
    count = int(source.num_frames or 0)
    return ([f"{i + 1:08d}" for i in range(count)] if count else None), fps


def _write_object_frame(path: Path, mask: np.ndarray, image: np.ndarray | None, writer: Mp4Writer | None) -> None:
    write_davis_mask(path, mask)
    if writer is not None:
        writer.write(overlay_semantic(image, mask, palette=davis_palette(), ignore_label=0))


def segment_object_video(predictor: StcnnVosPredictor, video: Path, first_mask: Path, out_dir: Path, *,
                         overlay: Path | None = None, fps: float | None = None, progress: bool = True,
                         pipeline: bool = True) -> dict[str, Any]:
    """Write the object masks (and overlay) of one video; returns a summary row.

    Args:
        predictor: the STCNN predictor (one model, or one per object).
        video: video file or frame folder.
        first_mask: the mask of frame 0 (indexed PNG, one id per object).
        out_dir: the folder of this video's masks.
        overlay: optional mp4 path of the frames with the masks blended in.
        fps: overlay frame rate (default: the video's, else 15).
        progress: show a progress bar.
        pipeline: read frames and write masks / overlay frames on helper threads
            (:mod:`vidseg.inference.pipeline`; the same files).

    Returns:
        ``{"video", "frames", "written", "skipped", "objects", "seconds", "fps"}``.

    Raises:
        DataError: unreadable video or mask, a mask of another size, without objects, or a video shorter
            than delta frames.
    """
    names, video_fps = _frame_names(video)
    video_id = video_name(video)  # as the CLI names the folder: clip.mp4 -> clip
    mask = read_first_mask(first_mask)
    if names and overlay is None and all((out_dir / f"{n}.png").is_file() for n in names):
        return {"video": video_id, "frames": len(names), "written": 0, "skipped": len(names),
                "objects": None, "seconds": 0.0, "fps": 0.0}
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = read_ahead(iter_video(video), READ_AHEAD if pipeline else 0)
    frame_names: list[str] = []

    def frames():
        for frame, name in pairs:
            frame_names.append(name)
            yield frame

    written, ids, start = 0, None, time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(Mp4Writer(overlay, fps=fps or video_fps)) if overlay is not None else None
        jobs = stack.enter_context(OrderedJobs(enabled=pipeline))  # drained before the overlay writer closes
        stream = predictor.stream(frames(), mask, source=str(video), mask_source=str(first_mask))
        for out in tqdm(stream, total=len(names) if names else None, desc=video_id, unit="frame",
                        disable=not progress):
            jobs.submit(_write_object_frame, out_dir / f"{frame_names[out.index]}.png", out.mask, out.image, writer)
            written, ids = written + 1, out.ids
    seconds = time.perf_counter() - start
    return {"video": video_id, "frames": written, "written": written, "skipped": 0, "objects": ids,
            "seconds": round(seconds, 3), "fps": round(written / seconds, 3) if seconds > 0 else 0.0}
