"""``vidseg info --check``: verify every file of a dataset, a video or a frame folder and list every problem.

Unlike the readers, which stop at the first problem, :func:`check_path` keeps going and returns all of
them: structural ones (missing masks, empty videos, split files naming missing videos, interrupted
conversions) and per-file ones (zero-byte or truncated images, masks of the wrong mode, label values outside
the category range, frame/mask size mismatches, JSON segments absent from the PNG and the reverse, JSON
areas that differ from the PNG, truncated video files).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from vidseg.data import vipseg, vspw
from vidseg.data.davis import _names_from_imageset, masks_are_binary, scan_davis
from vidseg.data.layout import (
    INCOMPLETE_MARKER,
    VideoRecord,
    check_same_size,
    detect_layout,
    list_dirs,
    split_videos,
)
from vidseg.data.video import FrameFolder, open_video
from vidseg.data.vipseg import JSON_NAME, load_panoptic_json, scan_vipseg_720, scan_vipseg_raw
from vidseg.data.vspw import read_raw_mask, scan_vspw
from vidseg.errors import DataError
from vidseg.fileio import read_image

T = TypeVar("T")


@dataclass
class CheckReport:
    """Result of a check: the layout, how many files were read, and every problem found."""

    path: str
    layout: str
    files_checked: int = 0
    problems: list[DataError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"path": self.path, "layout": self.layout, "files_checked": self.files_checked,
                "problems": [{"path": p.path, "problem": p.problem} for p in self.problems]}


def _try(report: CheckReport, fn: Callable[[], T]) -> T | None:
    """Run ``fn``; on DataError record it and return None."""
    try:
        return fn()
    except DataError as exc:
        report.problems.append(exc)
        return None


MaskCheck = Callable[[VideoRecord, int], tuple[int, int]]


def _check_video(video: VideoRecord, check_mask: MaskCheck, report: CheckReport, bar) -> None:
    """Decode every frame and mask of a video; record problems; ``check_mask`` returns the mask's (H, W)."""
    for i, frame in enumerate(video.frames):
        frame_hw = _try(report, lambda frame=frame: read_image(frame, "RGB").shape[:2])
        report.files_checked += 1
        mask = video.masks[i]
        if mask is not None:
            mask_hw = _try(report, lambda i=i: check_mask(video, i))
            report.files_checked += 1
            if frame_hw is not None and mask_hw is not None:
                _try(report, lambda m=mask, f=frame, fh=frame_hw, mh=mask_hw: check_same_size(f, fh, m, mh))
        bar.update(1)


REQUIRED_SPLITS = ("train", "val")  # read by `vidseg train` and `vidseg eval`; test.txt is optional


def _split_problems(root: Path, split_files: list[Path], available: list[str]) -> list[DataError]:
    problems: list[DataError] = []
    for path in split_files:
        if not path.is_file() and path.stem in REQUIRED_SPLITS:
            problems.append(DataError(path, "split file not found (training and evaluation read it)"))
        elif path.is_file():
            try:
                problems += split_videos(path, available)[1]
            except DataError as exc:
                problems.append(exc)
    return problems


def _run_videos(videos: list, check_mask: MaskCheck, report: CheckReport, progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=sum(len(v) for v in videos), desc="check", unit="frame", disable=not progress) as bar:
        for video in videos:
            _check_video(video, check_mask, report, bar)


# ----------------------------------------------------------------------------------------------------------
# per layout
# ----------------------------------------------------------------------------------------------------------

def _check_vspw(root: Path, report: CheckReport, progress: bool) -> None:
    videos, problems = scan_vspw(root)
    report.problems += problems
    report.problems += _split_problems(root, [root / f"{s}.txt" for s in vspw.SPLITS], list_dirs(root / "data"))
    _run_videos(videos, lambda v, i: read_raw_mask(v.masks[i]).shape, report, progress)


def _check_vipseg_raw(root: Path, report: CheckReport, progress: bool) -> None:
    videos, problems = scan_vipseg_raw(root)
    report.problems += problems
    report.problems += _split_problems(root, [root / f"{s}.txt" for s in vipseg.SPLITS], list_dirs(root / "imgs"))
    _run_videos(videos, lambda v, i: v.load_panoptic(i)[0].shape, report, progress)


def _check_720_mask(video, index: int) -> tuple[int, int]:
    ids = video.load_rgb_ids(index)
    uniq, counts = np.unique(ids, return_counts=True)
    video.check_segments(index, set(uniq.tolist()))
    png_area = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    wrong = [(sid, area, png_area[sid]) for sid, area in video.areas[index].items()
             if area is not None and area != png_area.get(sid)]
    if wrong:
        sid, area, real = wrong[0]
        raise DataError(video.masks[index], f"JSON area {area} of segment {sid} differs from its {real} PNG pixels"
                        + (f" (and {len(wrong) - 1} more segments)" if len(wrong) > 1 else ""))
    return ids.shape


def _check_vipseg_720(root: Path, report: CheckReport, progress: bool) -> None:
    try:
        videos, problems = scan_vipseg_720(root)
    except DataError as exc:
        report.problems.append(exc)
        return
    report.problems += problems
    names = {v.name for v in videos}
    main = _try(report, lambda: load_panoptic_json(root / JSON_NAME)) or {"annotations": []}
    checked = {str(a.get("video_id")): a.get("annotations") for a in main["annotations"] if isinstance(a, dict)}
    for split_json in sorted(root.glob("panoptic_gt_VIPSeg_*.json")):
        data = _try(report, lambda p=split_json: load_panoptic_json(p))
        if data is not None:
            report.problems += [DataError(split_json, f"video '{v['video_id']}' is absent from {JSON_NAME}")
                                for v in data["videos"] if str(v["video_id"]) not in names]
            report.problems += _split_json_differences(split_json, data, checked)
    _run_videos(videos, _check_720_mask, report, progress)


def _split_json_differences(path: Path, data: dict, checked: dict[str, object]) -> list[DataError]:
    """The split JSON (the file ``eval vipseg`` reads) must repeat the segments of the JSON checked against the
    masks, video by video; a segment missing there would be scored wrongly."""
    problems = []
    for entry in data["annotations"]:
        video = str(entry.get("video_id")) if isinstance(entry, dict) else "?"
        if video in checked and entry.get("annotations") != checked[video]:
            problems.append(DataError(path, f"video '{video}': segments differ from {JSON_NAME} (which matches "
                                            "the masks), e.g. a missing segment"))
    return problems


def _davis_mask_check(first_ids: dict[str, set[int]]) -> MaskCheck:
    def check(video, index: int) -> tuple[int, int]:
        label = video.load_label(index)
        ids = {int(v) for v in np.unique(label)} - {0, 255}
        if video.name not in first_ids:
            first_ids[video.name] = ids
        elif ids - first_ids[video.name]:
            raise DataError(video.masks[index], f"object ids {sorted(ids - first_ids[video.name])} are absent "
                            "from the first frame's annotation")
        return label.shape
    return check


def _check_davis(root: Path, report: CheckReport, progress: bool) -> None:
    from dataclasses import replace

    resolutions = list_dirs(root / "JPEGImages") or ["480p"]
    for res in resolutions:
        videos, problems = scan_davis(root, 2017, None, res)
        report.problems += problems
        single = masks_are_binary(videos)
        videos = [replace(v, single_object=single) for v in videos]
        _run_videos(videos, _davis_mask_check({}), report, progress)
    available = set(list_dirs(root / "JPEGImages" / resolutions[0]))
    for split_file in sorted((root / "ImageSets").glob("*/*.txt")):
        names = _try(report, lambda p=split_file: _names_from_imageset(p)) or []
        report.problems += [DataError(split_file, f"names video '{n}' which does not exist")
                            for n in names if n not in available]


def _check_video_file(path: Path, report: CheckReport, progress: bool) -> None:
    video = _try(report, lambda: open_video(path))
    if video is not None:
        count = _try(report, video.count_frames)
        report.files_checked += 1 if count is None else count


def _check_frames(path: Path, report: CheckReport, progress: bool) -> None:
    folder = _try(report, lambda: FrameFolder(path))
    if folder is None:
        return
    for i in range(len(folder)):
        _try(report, lambda i=i: folder[i])
        report.files_checked += 1


CHECKERS: dict[str, Callable[[Path, CheckReport, bool], None]] = {
    "vspw": _check_vspw,
    "vspw-480p": _check_vspw,
    "vipseg-raw": _check_vipseg_raw,
    "vipseg-720p": _check_vipseg_720,
    "davis": _check_davis,
    "video": _check_video_file,
    "frames": _check_frames,
}


def check_path(path: str | os.PathLike, layout: str | None = None, progress: bool = False) -> CheckReport:
    """Verify every file under ``path`` and return all problems found.

    Args:
        path: dataset root, video file or frame folder.
        layout: one of :data:`~vidseg.data.layout.LAYOUTS`, or None to detect it.
        progress: show a progress bar.

    Raises:
        DataError: only when the path does not exist or its layout cannot be recognised.
    """
    path = Path(path)
    layout = layout or detect_layout(path)
    report = CheckReport(str(path), layout)
    if path.is_dir() and (path / INCOMPLETE_MARKER).exists():
        report.problems.append(DataError(path, "incomplete conversion output (interrupted?); run the same "
                                         "vidseg convert command again to finish it"))
    CHECKERS[layout](path, report, progress)
    return report


__all__ = ["CheckReport", "check_path"]
