"""Predict a whole benchmark split into its official submission layout, on one or many processes.

``vidseg predict {vspw,vipseg,davis}`` lists the split's videos (:func:`list_videos`), gives each rank a share
balanced by frame count (:func:`balance`, deterministic greedy), and runs every video through the writers of
``vidseg segment`` into ``out``:

* VSPW (semantic models): ``out/<video>/<frame>.png`` (:func:`vidseg.inference.segment.segment_video`);
* VIPSeg (panoptic models): ``out/pan_pred/<video>/<frame>.png`` + ``out/pred.json``
  (:func:`vidseg.inference.panoptic_segment.segment_panoptic_video`);
* DAVIS (object models, first-frame GT mask per sequence): ``out/<sequence>/<frame>.png``
  (:func:`vidseg.inference.vos_segment.segment_object_video`).

Each video is written into a hidden staging folder ``out/.partial-<video>/``, renamed onto its final place
when complete, and then its completion marker ``out/.vidseg-done-<video>.json`` is written (last, atomically).
A killed run resumes with the videos that have no marker (a semantic video also keeps its finished frames).
After a barrier, rank 0 merges (VIPSeg: ``pred.json`` from the markers, sorted by video id), so the files do
not depend on the number of processes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vidseg.data.layout import IMAGE_EXTS, list_files
from vidseg.errors import ConfigError, DataError
from vidseg.fileio import write_text_atomic
from vidseg.inference.panoptic_segment import PNG_DIR, PRED_JSON, read_pred_json, segment_panoptic_video
from vidseg.inference.segment import segment_video
from vidseg.inference.vos_segment import segment_object_video
from vidseg.metrics.davis_folder import davis_sequences
from vidseg.metrics.folder import read_split

BENCHMARKS = ("vspw", "vipseg", "davis")
TASK_OF = {"vspw": "semantic", "vipseg": "panoptic", "davis": "object"}
DONE_PREFIX = ".vidseg-done-"
PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class PredictVideo:
    """One video of the split.

    Attributes:
        name: the video id (output folder name).
        frames: its frame folder.
        num_frames: frame count (for balancing and the progress bar).
        first_mask: DAVIS: the first frame's GT mask (semi-supervised input), else None.
    """

    name: str
    frames: Path
    num_frames: int
    first_mask: Path | None = None


def _split_file(benchmark: str, root: Path, split: str, davis_year: str) -> Path:
    if benchmark == "davis":
        return root / "ImageSets" / davis_year / f"{split}.txt"
    return root / f"{split}.txt"


def _frame_folder(benchmark: str, root: Path, name: str) -> Path:
    if benchmark == "vspw":
        return root / "data" / name / "origin"
    if benchmark == "vipseg":  # the 720P conversion (official evaluation) if present, else the raw layout
        return root / "images" / name if (root / "images").is_dir() else root / "imgs" / name
    return root / "JPEGImages" / "480p" / name


def list_videos(benchmark: str, root: str | os.PathLike, split: str = "val", *,
                davis_year: str = "2017") -> list[PredictVideo]:
    """The videos of ``split`` with their frame folders, in split order.

    Raises:
        DataError: the split file is missing or empty, or lists a video whose frames (or DAVIS first mask)
            are missing: the message names the missing folder and the split file.
    """
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")
    root = Path(root)
    split_file = _split_file(benchmark, root, split, davis_year)
    names = davis_sequences(root, davis_year, split) if benchmark == "davis" else read_split(root, split)
    videos = []
    for name in names:
        folder = _frame_folder(benchmark, root, name)
        frames = list_files(folder, IMAGE_EXTS) if folder.is_dir() else []
        if not frames:
            raise DataError(folder, f"no frames for video {name!r} listed in {split_file}")
        first_mask = None
        if benchmark == "davis":
            first_mask = root / "Annotations" / "480p" / name / f"{frames[0].stem}.png"
            if not first_mask.is_file():
                raise DataError(first_mask, f"first-frame mask of sequence {name!r} (listed in {split_file}) "
                                            "not found")
        videos.append(PredictVideo(name, folder, len(frames), first_mask))
    return videos


def balance(frame_counts: list[int], world_size: int) -> list[list[int]]:
    """Video indices per rank, balanced by frame count: longest video first onto the least-loaded rank.

    Deterministic (ties: lower index first, then lower rank); each rank's indices come back in split order.
    """
    loads = [0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(frame_counts)), key=lambda i: (-frame_counts[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        loads[rank] += frame_counts[i]
        shares[rank].append(i)
    return [sorted(s) for s in shares]


def output_patterns(benchmark: str) -> list[str]:
    """Glob patterns (relative to ``out``) of everything ``predict`` writes (for the provenance check)."""
    pngs = [f"{PNG_DIR}/*/*.png", PRED_JSON] if benchmark == "vipseg" else ["*/*.png"]
    return [*pngs, f"{DONE_PREFIX}*.json", f"{PARTIAL_PREFIX}*/*.png", f"{PARTIAL_PREFIX}*/**/*.png",
            "metrics.json", "report.html", "predict_summary.json"]


def marker_path(out: Path, name: str) -> Path:
    return out / f"{DONE_PREFIX}{name}.json"


def final_path(benchmark: str, out: Path, name: str) -> Path:
    """Where a video's masks end up."""
    return out / PNG_DIR / name if benchmark == "vipseg" else out / name


class _CountingPredictor:
    """Wraps a predictor so that every frame it yields advances a progress bar (the writers own their loops)."""

    def __init__(self, predictor: Any, bar: tqdm) -> None:
        self._predictor, self._bar = predictor, bar

    def __getattr__(self, name: str) -> Any:
        return getattr(self._predictor, name)

    def _count(self, stream: Iterator[Any]) -> Iterator[Any]:
        for item in stream:
            self._bar.update(1)
            yield item

    def predict(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._count(self._predictor.predict(*args, **kwargs))

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._count(self._predictor.stream(*args, **kwargs))


def _write_video(benchmark: str, predictor: Any, video: PredictVideo, staging: Path,
                 pipeline: bool = True) -> dict[str, Any]:
    """Run one video into ``staging``; returns the writer's row (+ the VIPSeg ``pred.json`` entry)."""
    if benchmark == "vspw":
        return segment_video(predictor, video.frames, staging, progress=False, pipeline=pipeline)
    if benchmark == "davis":
        return segment_object_video(predictor, video.frames, video.first_mask, staging, progress=False,
                                    pipeline=pipeline)
    row = segment_panoptic_video(predictor, video.frames, staging, video_id=video.name, progress=False,
                                 pipeline=pipeline)
    entries = [a for a in read_pred_json(staging / PRED_JSON)["annotations"] if a.get("video_id") == video.name]
    return {**row, "entry": entries[0]}


def predict_video(benchmark: str, predictor: Any, video: PredictVideo, out: Path,
                  pipeline: bool = True) -> dict[str, Any]:
    """Predict one video into ``out`` (staging, rename, marker last); a video with a marker is skipped."""
    marker = marker_path(out, video.name)
    if marker.is_file():
        return {**json.loads(marker.read_text(encoding="utf-8")), "written": 0, "skipped": video.num_frames,
                "seconds": 0.0}
    final = final_path(benchmark, out, video.name)
    if final.exists():  # renamed by a run killed before its marker: not trusted, made again
        shutil.rmtree(final)
    staging = out / f"{PARTIAL_PREFIX}{video.name}"
    row = _write_video(benchmark, predictor, video, staging, pipeline)
    produced = staging / PNG_DIR / video.name if benchmark == "vipseg" else staging
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(produced, final)
    done = {"video": video.name, "frames": row["frames"], **({"entry": row["entry"]} if "entry" in row else {})}
    write_text_atomic(marker, json.dumps(done))
    shutil.rmtree(staging, ignore_errors=True)
    return {**done, "written": row["written"], "skipped": row["skipped"], "seconds": row["seconds"]}


def predict_share(benchmark: str, predictor: Any, videos: list[PredictVideo], out: str | os.PathLike, *,
                  rank: int = 0, progress: bool = True, position: int | None = None,
                  pipeline: bool = True) -> dict[str, Any]:
    """Predict ``videos`` (this rank's share) into ``out``; returns this rank's summary (``pipeline``: read
    frames and write outputs on helper threads, :mod:`vidseg.inference.pipeline`).

    Returns:
        ``{"rank", "videos", "frames", "written", "skipped", "seconds", "fps"}`` (fps over written frames).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(v.num_frames for v in videos)
    written = skipped = 0
    start = time.perf_counter()
    with tqdm(total=total, desc=f"rank {rank}", unit="frame", disable=not progress, position=position,
              dynamic_ncols=True) as bar:
        counting = _CountingPredictor(predictor, bar)
        for video in videos:
            counted = bar.n
            row = predict_video(benchmark, counting, video, out, pipeline)
            written += row["written"]
            skipped += row["skipped"]
            bar.update(max(video.num_frames - (bar.n - counted), 0))  # videos skipped without decoding
    seconds = time.perf_counter() - start
    return {"rank": rank, "videos": len(videos), "frames": written + skipped, "written": written,
            "skipped": skipped, "seconds": round(seconds, 3),
            "fps": round(written / seconds, 3) if seconds > 0 else 0.0}


def merge_outputs(benchmark: str, videos: list[PredictVideo], out: str | os.PathLike) -> None:
    """Rank 0, after every rank finished: check every video is complete; VIPSeg: write ``pred.json``.

    Raises:
        DataError: a video of the split has no completion marker (a rank failed).
    """
    out = Path(out)
    missing = [v.name for v in videos if not marker_path(out, v.name).is_file()]
    if missing:
        raise DataError(out, f"{len(missing)} videos were not completed (first: {', '.join(missing[:5])}); "
                             "run the same command again to finish them")
    if benchmark != "vipseg":
        return
    entries = [json.loads(marker_path(out, v.name).read_text(encoding="utf-8"))["entry"] for v in videos]
    entries.sort(key=lambda a: str(a.get("video_id")))
    write_text_atomic(out / PRED_JSON, json.dumps({"annotations": entries}))
