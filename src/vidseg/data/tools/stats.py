"""Dataset statistics for ``vidseg info`` (the quantities of Table 1 of the VSPW and VIPSeg papers).

For datasets: videos, frames, annotated frames, resolutions, frames per video (min/mean/max), categories
present (things/stuff), categories per frame and per video, and for panoptic / VOS data the instances
(thing tubes, DAVIS objects) per video. For a video file or a frame folder: frames, fps, size, duration.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vidseg.categories import IGNORE_LABEL, vipseg_categories
from vidseg.data.davis import DAVISDataset, masks_are_binary
from vidseg.data.layout import detect_layout, image_size
from vidseg.data.video import FrameFolder, open_video
from vidseg.data.vipseg import VIPSeg720Dataset, VIPSegRawDataset
from vidseg.data.vspw import VSPWDataset

# frame -> (categories present, instance keys present)
FrameLabels = Callable[[object, int], tuple[set[int], set]]


def _vspw_labels(video, i: int) -> tuple[set[int], set]:
    return {int(v) for v in np.unique(video.load_label(i))} - {IGNORE_LABEL}, set()


def _vipseg_raw_labels(video, i: int) -> tuple[set[int], set]:
    cat, inst = video.load_panoptic(i)
    pairs = np.unique(cat.astype(np.int64) * 1000 + inst, return_counts=False)
    cats = {int(p // 1000) for p in pairs} - {IGNORE_LABEL}
    return cats, {int(p) for p in pairs if p % 1000 and p // 1000 != IGNORE_LABEL}


def _vipseg_720_labels(video, i: int) -> tuple[set[int], set]:
    segs = video.segments[i]  # from the JSON: no PNG decoding needed
    return set(segs.values()), {sid for sid in segs if sid in video.instance_of}


def _davis_labels(video, i: int) -> tuple[set[int], set]:
    return set(), {int(v) for v in np.unique(video.load_label(i))} - {0, 255}


def _open(path: Path, layout: str) -> tuple[list, FrameLabels]:
    if layout in ("vspw", "vspw-480p"):
        return list(VSPWDataset(path)), _vspw_labels
    if layout == "vipseg-raw":
        return list(VIPSegRawDataset(path)), _vipseg_raw_labels
    if layout == "vipseg-720p":
        return list(VIPSeg720Dataset(path)), _vipseg_720_labels
    from dataclasses import replace

    videos = list(DAVISDataset(path, split=None))
    single = masks_are_binary(videos)  # a DAVIS 2016 package
    return [replace(v, single_object=single) for v in videos], _davis_labels


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": float(np.mean(values)), "max": max(values)}


def _label_stats(videos: list, frame_labels: FrameLabels, bar) -> dict:
    per_frame_cats, per_video_cats, per_video_inst, per_frame_inst = [], [], [], []
    all_cats: set[int] = set()
    total_inst = 0
    for video in videos:
        v_cats: set[int] = set()
        v_inst: set = set()
        for i, mask in enumerate(video.masks):
            if mask is not None:
                cats, inst = frame_labels(video, i)
                per_frame_cats.append(len(cats))
                per_frame_inst.append(len(inst))
                v_cats |= cats
                v_inst |= inst
            bar.update(1)
        if video.has_labels:
            per_video_cats.append(len(v_cats))
            per_video_inst.append(len(v_inst))
            all_cats |= v_cats
            total_inst += len(v_inst)
    things = {c.id for c in vipseg_categories() if c.isthing}
    return {
        "categories": {"total": len(all_cats), "things": len(all_cats & things), "stuff": len(all_cats - things),
                       "per_frame_mean": float(np.mean(per_frame_cats)) if per_frame_cats else 0.0,
                       "per_video_mean": float(np.mean(per_video_cats)) if per_video_cats else 0.0},
        "instances": {"total": total_inst,
                      "per_video_mean": float(np.mean(per_video_inst)) if per_video_inst else 0.0,
                      "per_frame_mean": float(np.mean(per_frame_inst)) if per_frame_inst else 0.0},
    }


def dataset_stats(path: str | os.PathLike, layout: str | None = None, labels: bool = True,
                  max_videos: int | None = None, progress: bool = False) -> dict:
    """Statistics of a dataset root, a video file or a frame folder.

    Args:
        path: what to describe.
        layout: its layout, or None to detect it.
        labels: also decode the masks for category / instance statistics (slower).
        max_videos: only the first N videos (a quick look at a large dataset).
        progress: show a progress bar.

    Returns:
        a JSON-serialisable dict (see the module docstring); DAVIS data has no categories, its
        ``instances`` are the objects.
    """
    from tqdm import tqdm

    path = Path(path)
    layout = layout or detect_layout(path)
    if layout in ("video", "frames"):
        return _video_stats(path, layout)
    videos, frame_labels = _open(path, layout)
    videos = videos[:max_videos] if max_videos else videos
    resolutions: Counter[str] = Counter()
    for video in videos:
        for frame in video.frames:
            h, w = image_size(frame)
            resolutions[f"{h}x{w}"] += 1
    lengths = [len(v) for v in videos]
    out = {
        "path": str(path), "layout": layout, "videos": len(videos), "frames": sum(lengths),
        "annotated_frames": sum(m is not None for v in videos for m in v.masks),
        "labelled_videos": sum(v.has_labels for v in videos),
        "resolutions": dict(resolutions.most_common()),
        "frames_per_video": _summary(lengths),
    }
    if labels:
        with tqdm(total=sum(lengths), desc="info", unit="frame", disable=not progress) as bar:
            out.update(_label_stats(videos, frame_labels, bar))
        if layout == "davis":
            out.pop("categories")
        if layout.startswith("vspw"):
            out.pop("instances")  # semantic labels only
    return out


def _video_stats(path: Path, layout: str) -> dict:
    video = open_video(path)
    h, w = video.size
    if isinstance(video, FrameFolder):  # photos may differ in size: each distinct size (from the file headers)
        sizes = Counter("{}x{}".format(*image_size(frame, oriented=True)) for frame in video.frames)
        resolutions = dict(sizes.most_common())
    else:  # a video file has one frame size
        resolutions = {f"{h}x{w}": video.num_frames}
    return {"path": str(path), "layout": layout, "videos": 1, "frames": video.num_frames, "fps": video.fps,
            "resolutions": resolutions, "duration_s": video.duration, "codec": video.codec}
