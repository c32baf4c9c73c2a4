"""Segment one video with a panoptic model into the official VIPSeg submission layout (and an optional overlay).

``segment_panoptic_video(predictor, video, submit_dir)`` writes::

    submit_dir/pan_pred/<video>/<frame name>.png   # RGB ids (id = R + 256 G + 65536 B), 0 = void
    submit_dir/pred.json                           # {"annotations": [{"video_id", "annotations": [
                                                   #   {"image_id", "file_name", "segments_info": [...]}]}]}

which is what ``vidseg eval vipseg --pred submit_dir`` and the official ``eval_vpq_vspw.py`` / ``eval_stq_vspw.py``
read. Segment ids are the library panoptic ids (``(category + 1) * 1000 + track + 1`` for things,
``(category + 1) * 1000`` for stuff), the same id for the same track or stuff class in every frame (the official
scripts link tubes by id); ``category_id`` is the 0-based VIPSeg category. Frame folders keep their frame names
(VIPSeg's ``00000001.jpg`` -> ``00000001.png``), video files get ``%08d`` of the frame number.

Several videos go into one submission folder: ``pred.json`` holds one entry per video, replaced when the video
is segmented again and kept sorted by video id; runs writing into the same folder at once update it under a file
lock (``.pred.json.lock``), so none loses another's entry. Resume: tracking chains every frame to the ones before, so a
video is skipped only as a whole (every PNG of its ``pred.json`` entry exists); an interrupted video runs again
from frame 0, overwriting its PNGs with the same values. ``pred.json`` is written last and atomically, so a
video listed there is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidseg.data.video import open_video
from vidseg.errors import DataError
from vidseg.fileio import file_lock, write_text_atomic
from vidseg.inference.panoptic import PanopticVideoPredictor
from vidseg.inference.pipeline import READ_AHEAD, OrderedJobs, read_ahead
from vidseg.inference.predictor import iter_video
from vidseg.inference.segment import video_name
from vidseg.metrics.vipseg_eval import write_rgb_id_png
from vidseg.structures import DEFAULT_LABEL_DIVISOR
from vidseg.viz.panoptic import overlay_panoptic
from vidseg.viz.video import Mp4Writer

PRED_JSON = "pred.json"
PNG_DIR = "pan_pred"


def segments_info(ids: np.ndarray, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> list[dict]:
    """``segments_info`` of a library id map [H, W]: id, 0-based category, iscrowd 0, pixel area per segment."""
    uniq, counts = np.unique(ids, return_counts=True)
    return [{"id": int(i), "category_id": int(i) // label_divisor - 1, "iscrowd": 0, "area": int(n)}
            for i, n in zip(uniq, counts, strict=True) if i != 0]


def read_pred_json(path: Path) -> dict[str, Any]:
    """The submission's ``pred.json`` (an empty one when the file does not exist)."""
    if not path.is_file():
        return {"annotations": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable predictions JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DataError(path, "not a VIPSeg predictions JSON (no 'annotations' list)")
    return data


def update_pred_json(path: Path, video_id: str, frames: list[dict]) -> None:
    """Put one video's frame entries into ``pred.json`` (replacing an older entry), atomically.

    The read-modify-write holds a lock (:func:`vidseg.fileio.file_lock` on ``.pred.json.lock`` beside it), so
    several ``vidseg segment`` runs writing videos into one submission folder at once keep every entry.
    """
    with file_lock(path.parent / f".{path.name}.lock"):
        data = read_pred_json(path)
        others = [a for a in data["annotations"] if a.get("video_id") != video_id]
        data["annotations"] = sorted([*others, {"video_id": video_id, "annotations": frames}],
                                     key=lambda a: str(a.get("video_id")))
        write_text_atomic(path, json.dumps(data))


def video_done(submit_dir: Path, video_id: str) -> int | None:
    """Frame count of a video whose ``pred.json`` entry and PNGs are all present (None otherwise)."""
    entry = next((a for a in read_pred_json(submit_dir / PRED_JSON)["annotations"]
                  if a.get("video_id") == video_id), None)
    if entry is None or not entry.get("annotations"):
        return None
    folder = submit_dir / PNG_DIR / video_id
    if all((folder / str(f.get("file_name", ""))).is_file() for f in entry["annotations"]):
        return len(entry["annotations"])
    return None


def _frames_with_images(video: os.PathLike, names: list[str], images: dict[int, np.ndarray],
                        keep: bool) -> Iterator[np.ndarray]:
    for i, (frame, name) in enumerate(iter_video(video)):
        names.append(name)
        if keep:
            images[i] = frame
        yield frame


def _write_panoptic_frame(path: Path, ids: np.ndarray, label_divisor: int, image: np.ndarray | None,
                          writer: Mp4Writer | None) -> None:
    write_rgb_id_png(path, ids)
    if writer is not None:
        writer.write(overlay_panoptic(image, ids, label_divisor=label_divisor))


def segment_panoptic_video(predictor: PanopticVideoPredictor, video: Path, submit_dir: Path, *,
                           video_id: str | None = None, overlay: Path | None = None, fps: float | None = None,
                           progress: bool = True, pipeline: bool = True) -> dict[str, Any]:
    """Write one video's panoptic PNGs and ``pred.json`` entry (and overlay); returns a summary row.

    Args:
        predictor: a panoptic predictor (``predict(frames)`` yielding ``PanopticFramePrediction``).
        video: video file or frame folder.
        submit_dir: the submission folder.
        video_id: the video's id in ``pred.json`` and folder name (default: :func:`vidseg.inference.segment.video_name`).
        overlay: optional mp4 of the frames with tracks, stuff and a legend.
        fps: overlay frame rate (default: the video's, else 15).
        progress: show a progress bar.
        pipeline: read frames and write PNGs / overlay frames on helper threads
            (:mod:`vidseg.inference.pipeline`; the same files).

    Returns:
        ``{"video", "frames", "written", "skipped", "tracks", "seconds", "fps"}``.
    """
    video_id = video_id or video_name(video)
    done = video_done(submit_dir, video_id)
    if done is not None and overlay is None:
        return {"video": video_id, "frames": done, "written": 0, "skipped": done, "tracks": None,
                "seconds": 0.0, "fps": 0.0}
    source = open_video(video)
    total, video_fps = (int(source.num_frames) or None), float(source.fps or 15.0)
    folder = submit_dir / PNG_DIR / video_id
    names: list[str] = []
    images: dict[int, np.ndarray] = {}
    entries: list[dict] = []
    tracks: set[int] = set()
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(Mp4Writer(overlay, fps=fps or video_fps)) if overlay is not None else None
        jobs = stack.enter_context(OrderedJobs(enabled=pipeline))  # drained before the overlay writer closes
        frames = _frames_with_images(video, names, images, writer is not None)
        stream = predictor.predict(read_ahead(frames, READ_AHEAD if pipeline else 0))
        for pred in tqdm(stream, total=total, desc=video_id, unit="frame", disable=not progress):
            ids = pred.ids
            file_name = f"{names[pred.index]}.png"
            entries.append({"image_id": names[pred.index], "file_name": file_name,
                            "segments_info": segments_info(ids, pred.label_divisor)})
            tracks.update(int(i) for i in np.unique(ids) if i % pred.label_divisor)
            jobs.submit(_write_panoptic_frame, folder / file_name, ids, pred.label_divisor,
                        images.pop(pred.index) if writer is not None else None, writer)
    update_pred_json(submit_dir / PRED_JSON, video_id, entries)
    seconds = time.perf_counter() - start
    return {"video": video_id, "frames": len(entries), "written": len(entries), "skipped": 0, "tracks": len(tracks),
            "seconds": round(seconds, 3), "fps": round(len(entries) / seconds, 3) if seconds > 0 else 0.0}
