"""VIPSeg evaluation: VPQ^k and STQ in one pass, from arrays (evaluator) or from a submission folder.

Submission layout (official): ``SUBMIT/pred.json`` and ``SUBMIT/pan_pred/<video>/<GT file_name>.png``, RGB
ids ``R + 256 G + 65536 B`` (0 = void). Ground truth: ``panoptic_gt_VIPSeg_val.json`` and
``panomasksRGB/<video>/<file_name>.png``.

Protocols:

* ``official`` reproduces ``eval_vpq_vspw.py`` and ``eval_stq_vspw.py`` (spec metrics.md §2.2-2.3): frames
  paired by list order, GT areas from the JSON, STQ instance numbers from 0 (the first segment of a video
  can become "crowd"). Inputs that make the official scripts crash or miscount raise DataError instead.
* ``strict`` pairs prediction annotations with GT frames by file name, takes GT areas from the PNGs (and
  checks them against the JSON), numbers STQ instances from 1 (no segment becomes crowd), and rejects
  questionable input: extra predictions, RGBA predictions, GT ids missing from the JSON or vice versa,
  duplicate ids in a frame, prediction id 0 listed as a segment.

Videos are scored independently (multiprocessing over videos) and merged in video order, so results do
not depend on the number of workers.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.categories import vipseg_categories
from vidseg.errors import ConfigError, DataError
from vidseg.fileio import atomic_path, write_text_atomic
from vidseg.metrics.evaluator import Evaluator, check_protocol
from vidseg.metrics.panoptic_tables import FrameReader, FrameTable, SegmentList, pair_table
from vidseg.metrics.stq import STQAccumulator, add_video_to_stq
from vidseg.metrics.vpq import (
    DEFAULT_KS,
    PanopticCategories,
    PQStats,
    VideoArrays,
    video_pq_stats,
    vpq_summary,
)

STQ_BIT_SHIFT = 16
STQ_IGNORE = 255


# ----------------------------------------------------------------------------------------------------------
# Per-frame validation
# ----------------------------------------------------------------------------------------------------------

def _first(values: Iterable[int], n: int = 5) -> str:
    vals = sorted(set(int(v) for v in values))
    more = f" (+{len(vals) - n} more)" if len(vals) > n else ""
    return ", ".join(str(v) for v in vals[:n]) + more


def check_frame(frame: FrameTable, cats: PanopticCategories, protocol: str, gt_where: str = "",
                pred_where: str = "") -> None:
    """Raise DataError if a frame's PNGs and JSON entries disagree (rules depend on the protocol)."""
    gt_where, pred_where = gt_where or frame.name, pred_where or frame.name
    png_pred, _ = frame.pred_png_ids()
    json_pred = frame.pred_segments.ids
    extra = np.setdiff1d(png_pred[png_pred != 0], json_pred)
    if extra.size:
        raise DataError(pred_where, f"segment ids {_first(extra)} are in the PNG but not in pred.json")
    missing = np.setdiff1d(json_pred, png_pred)
    if missing.size:
        raise DataError(pred_where, f"segment ids {_first(missing)} are in pred.json but not in the PNG")
    cats.index_of(frame.pred_segments.categories, f"{pred_where} (pred.json)")
    cats.index_of(frame.gt_segments.categories, f"{gt_where} (GT JSON)")
    if (frame.gt_segments.ids == 0).any():
        raise DataError(gt_where, "GT JSON lists segment id 0, which is reserved for void")
    if protocol == "strict":
        _check_frame_strict(frame, gt_where, pred_where)


def _check_frame_strict(frame: FrameTable, gt_where: str, pred_where: str) -> None:
    for segs, where, side in ((frame.gt_segments, gt_where, "GT"), (frame.pred_segments, pred_where, "pred")):
        if len(np.unique(segs.ids)) != len(segs.ids):
            raise DataError(where, f"{side} JSON lists a segment id twice in one frame")
    if (frame.pred_segments.ids == 0).any():
        raise DataError(pred_where, "pred.json lists segment id 0, which is reserved for void")
    png_gt, png_area = frame.gt_png_ids()
    extra = np.setdiff1d(png_gt[png_gt != 0], frame.gt_segments.ids)
    if extra.size:
        raise DataError(gt_where, f"GT segment ids {_first(extra)} are in the PNG but not in the GT JSON")
    missing = np.setdiff1d(frame.gt_segments.ids, png_gt)
    if missing.size:
        raise DataError(gt_where, f"GT segment ids {_first(missing)} are in the GT JSON but not in the PNG")
    areas = dict(zip(png_gt.tolist(), png_area.tolist(), strict=True))
    for sid, area in zip(frame.gt_segments.ids.tolist(), frame.gt_segments.areas.tolist(), strict=True):
        if areas.get(sid) != area:
            raise DataError(gt_where, f"GT segment {sid}: JSON area {area} != PNG area {areas.get(sid)}")


def frame_from_arrays(gt_ids: np.ndarray, pred_ids: np.ndarray, gt_segments_info: list[dict],
                      pred_segments_info: list[dict], name: str = "") -> FrameTable:
    """A :class:`FrameTable` from decoded id maps [H, W] and the frame's ``segments_info`` lists."""
    gt_ids = np.asarray(gt_ids, np.int64)
    pred_ids = np.asarray(pred_ids, np.int64)
    if gt_ids.shape != pred_ids.shape:
        raise DataError(name or "frame", f"prediction shape {pred_ids.shape} != ground truth {gt_ids.shape}")
    g, p, c = pair_table(gt_ids, pred_ids)
    return FrameTable(g, p, c, SegmentList.from_json(gt_segments_info, name),
                      SegmentList.from_json(pred_segments_info, name), name)


# ----------------------------------------------------------------------------------------------------------
# Evaluator
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VIPSegSettings:
    """What to compute and how (picklable; sent to worker processes)."""

    categories: PanopticCategories
    ks: tuple[int, ...] = DEFAULT_KS
    protocol: str = "official"
    short_videos: str = "skip"

    @property
    def gt_area(self) -> str:
        return "json" if self.protocol == "official" else "png"

    @property
    def first_instance(self) -> int:
        return 0 if self.protocol == "official" else 1

    def stq_accumulator(self) -> STQAccumulator:
        cats = self.categories
        num_classes = max(max(cats.ids, default=-1) + 1, 1)
        things = [c for c, t in zip(cats.ids, cats.isthing, strict=True) if t]
        return STQAccumulator(num_classes, things, STQ_IGNORE, STQ_BIT_SHIFT)


def score_video(settings: VIPSegSettings, frames: Sequence[FrameTable], video_id: Any,
                checked: bool = False) -> dict:
    """VPQ stats for every k and the STQ state of one video (a small picklable dict)."""
    if not checked:
        for f in frames:
            check_frame(f, settings.categories, settings.protocol)
    va = VideoArrays.from_frames(frames, settings.categories)
    n = len(settings.categories)
    vpq = {k: video_pq_stats(va, k, n, settings.gt_area, settings.short_videos).to_dict() for k in settings.ks}
    acc = settings.stq_accumulator()
    if frames:
        add_video_to_stq(acc, frames, video_id, settings.first_instance)
    return {"video": video_id, "vpq": vpq, "stq": acc.state_dict()}


class VIPSegEvaluator(Evaluator):
    """VPQ^k (all/thing/stuff, per category) and STQ/AQ/IoU (global, per sequence) over whole videos.

    ``process`` takes one complete video (VPQ windows span frames); the state is a per-k table of four
    numbers per category plus the per-sequence STQ summaries, so states add up across processes.

    Args:
        categories: category list (default: the 124 VIPSeg categories).
        ks: window lengths (default 1, 2, 4, 6, 8 as the official script).
        protocol: ``official`` or ``strict``.
        short_videos: ``skip`` (official: videos shorter than k add nothing) or ``whole`` (DEVA variant).
    """

    def __init__(self, *, categories: PanopticCategories | None = None, ks: Sequence[int] = DEFAULT_KS,
                 protocol: str = "official", short_videos: str = "skip") -> None:
        if short_videos not in ("skip", "whole"):
            raise ConfigError(f"short_videos must be 'skip' or 'whole', got {short_videos!r}")
        ks = tuple(int(k) for k in ks)
        if not ks or min(ks) < 1:
            raise ConfigError(f"window lengths k must be >= 1, got {ks}")
        self.settings = VIPSegSettings(categories or PanopticCategories.vipseg(), ks,
                                       check_protocol(protocol), short_videos)
        self.reset()

    def reset(self) -> None:
        n = len(self.settings.categories)
        self._vpq = {k: PQStats.zeros(n) for k in self.settings.ks}
        self._stq = self.settings.stq_accumulator()
        self._videos: list = []

    def process(self, video_id: Any, frames: Sequence[FrameTable]) -> None:
        """Add one whole video given as frame tables (see :func:`frame_from_arrays`)."""
        self.add_video_result(score_video(self.settings, frames, video_id))

    def process_arrays(self, video_id: Any, gt_ids: Sequence[np.ndarray], pred_ids: Sequence[np.ndarray],
                       gt_segments: Sequence[list[dict]], pred_segments: Sequence[list[dict]]) -> None:
        """Add one video given as id maps [H, W] per frame and the per-frame ``segments_info`` lists."""
        if not len(gt_ids) == len(pred_ids) == len(gt_segments) == len(pred_segments):
            raise DataError(str(video_id), "GT and prediction frame lists differ in length")
        frames = [frame_from_arrays(g, p, gs, ps, f"{video_id}/{i}")
                  for i, (g, p, gs, ps) in enumerate(zip(gt_ids, pred_ids, gt_segments, pred_segments, strict=True))]
        self.process(video_id, frames)

    def add_video_result(self, result: dict) -> None:
        """Merge the output of :func:`score_video` (call in video order for bit-identical sums)."""
        for k, d in result["vpq"].items():
            self._vpq[k] += PQStats.from_dict(d)
        self._stq.merge(result["stq"])
        self._videos.append(result["video"])

    def evaluate(self) -> dict[str, Any]:
        """{"VPQ", "VPQ_final", "VPQ_detail", "per_category", "STQ", "AQ", "SQ", "IoU", "per_sequence"}."""
        out = vpq_summary(self._vpq, self.settings.categories)
        stq = self._stq.result()
        out.update({"STQ": stq["STQ"], "AQ": stq["AQ"], "SQ": stq["IoU"], "IoU": stq["IoU"],
                    "per_sequence": [{"video": v, "STQ": s, "AQ": a, "IoU": i, "frames": n} for v, s, a, i, n in
                                     zip(stq["ID_per_seq"], stq["STQ_per_seq"], stq["AQ_per_seq"],
                                         stq["IoU_per_seq"], stq["Length_per_seq"], strict=True)],
                    "protocol": self.settings.protocol, "k": list(self.settings.ks),
                    "videos": len(self._videos)})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"vpq": {k: s.to_dict() for k, s in self._vpq.items()}, "stq": self._stq.state_dict(),
                "videos": list(self._videos)}

    def merge(self, other_state: dict[str, Any]) -> None:
        self.add_video_result({"vpq": other_state["vpq"], "stq": other_state["stq"], "video": None})
        self._videos.pop()
        self._videos.extend(other_state["videos"])


# ----------------------------------------------------------------------------------------------------------
# Submission folders
# ----------------------------------------------------------------------------------------------------------

@dataclass
class VideoJob:
    """One video to score: paired frame paths and JSON segment lists."""

    index: int
    video_id: str
    gt_paths: list[str]
    pred_paths: list[str]
    gt_segments: list[list[dict]]
    pred_segments: list[list[dict]]
    names: list[str]


def _load_json(path: Path, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise DataError(path, f"{what} not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read {what} ({exc})") from None
    if not isinstance(data, dict) or "annotations" not in data:
        raise DataError(path, f"{what} has no 'annotations' list")
    return data


def _annotations_by_video(data: dict, path: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for entry in data["annotations"]:
        try:
            video, annotations = str(entry["video_id"]), list(entry["annotations"])
        except (KeyError, TypeError):
            raise DataError(path, "an 'annotations' entry lacks video_id/annotations") from None
        if video in out:
            raise DataError(path, f"video {video} is listed twice in 'annotations'")
        out[video] = annotations
    return out


def _video_ids(gt: dict, path: Path) -> list[str]:
    """The ``video_id`` of each entry of the GT JSON's ``videos`` list, each with ``images`` having file names."""
    ids = []
    for index, v in enumerate(gt["videos"]):
        if not isinstance(v, dict) or "video_id" not in v:
            raise DataError(path, f"'videos' entry {index} has no video_id")
        images = v.get("images", [])
        if not isinstance(images, list) or any(not isinstance(im, dict) or "file_name" not in im for im in images):
            raise DataError(path, f"video {v['video_id']}: an 'images' entry has no file_name")
        ids.append(str(v["video_id"]))
    if len(set(ids)) != len(ids):
        twice = sorted({v for v in ids if ids.count(v) > 1})
        raise DataError(path, f"video {twice[0]} is listed twice in 'videos'")
    return ids


def _complain(msg_path: Path | str, problem: str, strict: bool) -> None:
    if strict:
        raise DataError(msg_path, problem)
    warnings.warn(f"{msg_path}: {problem} (ignored)", stacklevel=3)


def _pair_frames(video: str, images: list[dict], gt_annos: list[dict], pred_annos: list[dict],
                 pred_json: Path, strict: bool) -> list[dict]:
    """Prediction annotations in GT frame order (by list order; by file name in strict)."""
    gt_names = [str(im.get("file_name", "")) for im in images]
    if len(pred_annos) != len(gt_annos):
        raise DataError(pred_json, f"video {video}: {len(pred_annos)} predicted frames, {len(gt_annos)} in the GT")
    pred_names = [str(a.get("file_name", "")) for a in pred_annos]
    if pred_names == gt_names:
        return pred_annos
    if not strict:
        bad = [f"{p}!={g}" for p, g in zip(pred_names, gt_names, strict=True) if p != g]
        warnings.warn(f"{pred_json}: video {video}: {len(bad)} prediction file names differ from the GT frame at "
                      f"the same position (first: {bad[0]}); pairing by list order as the official script does",
                      stacklevel=3)
        return pred_annos
    by_name = {n: a for n, a in zip(pred_names, pred_annos, strict=True)}
    missing = [g for g in gt_names if g not in by_name]
    if missing or len(by_name) != len(pred_annos):
        raise DataError(pred_json, f"video {video}: prediction frames do not pair with the GT by name "
                                   f"({len(missing)} GT frames unmatched, first: {missing[:3]})")
    return [by_name[g] for g in gt_names]


def build_jobs(gt_json: str | os.PathLike, gt_dir: str | os.PathLike, submit_dir: str | os.PathLike,
               protocol: str = "official") -> tuple[list[VideoJob], PanopticCategories]:
    """Read both JSON files, check the submission is complete and pair frames; no PNG is decoded."""
    strict = check_protocol(protocol) == "strict"
    gt_json, gt_dir, submit_dir = Path(gt_json), Path(gt_dir), Path(submit_dir)
    gt = _load_json(gt_json, "GT JSON")
    pred_json = submit_dir / "pred.json"
    pred = _load_json(pred_json, "pred.json")
    if "videos" not in gt or "categories" not in gt:
        raise DataError(gt_json, "GT JSON lacks 'videos' or 'categories'")
    cats = PanopticCategories.from_json(gt["categories"])
    gt_annos = _annotations_by_video(gt, gt_json)
    pred_annos = _annotations_by_video(pred, pred_json)
    videos = _video_ids(gt, gt_json)
    missing = [v for v in videos if v not in pred_annos]
    if missing:
        raise DataError(pred_json, f"{len(missing)} of {len(videos)} GT videos have no prediction "
                                   f"(first: {', '.join(missing[:5])})")
    extra = sorted(set(pred_annos) - set(videos))
    if extra:
        _complain(pred_json, f"{len(extra)} predicted videos are not in the GT (first: {', '.join(extra[:5])})",
                  strict)
    jobs = []
    for index, v in enumerate(gt["videos"]):
        jobs.append(_video_job(index, v, gt_annos, pred_annos, gt_json, gt_dir, submit_dir, strict))
    _check_files(jobs, submit_dir, strict)
    return jobs, cats


def _video_job(index: int, v: dict, gt_annos: dict, pred_annos: dict, gt_json: Path, gt_dir: Path,
               submit_dir: Path, strict: bool) -> VideoJob:
    vid = str(v["video_id"])
    images = list(v.get("images", []))
    if vid not in gt_annos:
        raise DataError(gt_json, f"video {vid} has no entry in 'annotations'")
    annos = gt_annos[vid]
    if len(annos) != len(images):
        raise DataError(gt_json, f"video {vid}: {len(images)} images but {len(annos)} annotations")
    preds = _pair_frames(vid, images, annos, pred_annos[vid], submit_dir / "pred.json", strict)
    names = [str(im["file_name"]) for im in images]
    return VideoJob(index, vid, [str(gt_dir / vid / n) for n in names],
                    [str(submit_dir / "pan_pred" / vid / n) for n in names],
                    [list(a.get("segments_info", [])) for a in annos],
                    [list(a.get("segments_info", [])) for a in preds], names)


def _check_files(jobs: list[VideoJob], submit_dir: Path, strict: bool) -> None:
    missing = [p for job in jobs for p in job.pred_paths if not os.path.isfile(p)]
    if missing:
        n_total = sum(len(j.pred_paths) for j in jobs)
        first = ", ".join(os.path.relpath(p, submit_dir) for p in missing[:5])
        raise DataError(submit_dir / "pan_pred", f"{len(missing)} of {n_total} prediction PNGs are missing "
                                                 f"(first: {first})")
    pan = submit_dir / "pan_pred"
    expected = {j.video_id: set(j.names) for j in jobs}
    extra = []
    for entry in sorted(os.listdir(pan)) if pan.is_dir() else []:
        if entry not in expected:
            extra.append(entry + "/")
            continue
        extra.extend(f"{entry}/{f}" for f in sorted(os.listdir(pan / entry))
                     if f.endswith(".png") and f not in expected[entry])
    if extra:
        _complain(pan, f"{len(extra)} extra prediction files/folders not in the GT (first: "
                       f"{', '.join(extra[:5])})", strict)


def read_video(job: VideoJob, settings: VIPSegSettings, reader: FrameReader | None = None) -> list[FrameTable]:
    """Decode every frame of a job once into frame tables, validating each frame."""
    reader = reader or FrameReader(allow_rgba=settings.protocol == "official")
    frames = []
    for gt_path, pred_path, gsegs, psegs, name in zip(job.gt_paths, job.pred_paths, job.gt_segments,
                                                      job.pred_segments, job.names, strict=True):
        g, p, c = reader.read(gt_path, pred_path)
        frame = FrameTable(g, p, c, SegmentList.from_json(gsegs, gt_path), SegmentList.from_json(psegs, pred_path),
                           f"{job.video_id}/{name}")
        if settings.gt_area == "json" and any("area" not in s for s in gsegs):
            raise DataError(gt_path, "a GT segment lacks 'area' (the official protocol takes GT areas from the JSON)")
        check_frame(frame, settings.categories, settings.protocol, gt_path, pred_path)
        frames.append(frame)
    return frames


_WORKER: dict[str, Any] = {}


def _init_worker(settings: VIPSegSettings) -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER["settings"] = settings
    _WORKER["reader"] = FrameReader(allow_rgba=settings.protocol == "official")


def _score_job(job: VideoJob) -> dict:
    settings = _WORKER["settings"]
    frames = read_video(job, settings, _WORKER["reader"])
    return score_video(settings, frames, job.video_id, checked=True)


def _results(jobs: list[VideoJob], settings: VIPSegSettings, workers: int) -> Iterator[dict]:
    if workers <= 1 or len(jobs) <= 1:
        _init_worker(settings)
        yield from map(_score_job, jobs)
        return
    import multiprocessing as mp

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
        yield from pool.imap(_score_job, jobs, chunksize=1)


def evaluate_vipseg_folder(gt_json: str | os.PathLike, gt_dir: str | os.PathLike, submit_dir: str | os.PathLike,
                           *, ks: Sequence[int] = DEFAULT_KS, protocol: str = "official", workers: int = 1,
                           short_videos: str = "skip", progress: bool = True) -> dict[str, Any]:
    """Score an official VIPSeg submission folder: VPQ^k for every k, VPQ_final, STQ/AQ/IoU, per category
    and per sequence. Every PNG is decoded once; videos run in ``workers`` processes.

    Returns:
        the dict of :meth:`VIPSegEvaluator.evaluate` (fractions in [0, 1]).
    """
    jobs, cats = build_jobs(gt_json, gt_dir, submit_dir, protocol)
    ev = VIPSegEvaluator(categories=cats, ks=ks, protocol=protocol, short_videos=short_videos)
    from tqdm import tqdm

    n_frames = sum(len(j.names) for j in jobs)
    with tqdm(total=len(jobs), unit="video", disable=not progress, desc="VIPSeg eval") as bar:
        for result in _results(jobs, ev.settings, max(int(workers), 1)):
            ev.add_video_result(result)
            bar.update(1)
    out = ev.evaluate()
    out["frames"] = n_frames
    return out


# ----------------------------------------------------------------------------------------------------------
# Writing the official format (synthetic data, conversions)
# ----------------------------------------------------------------------------------------------------------

def write_rgb_id_png(path: str | os.PathLike, ids: np.ndarray) -> None:
    """Write an id map [H, W] (0 .. 2**24-1) as an RGB PNG with ``id = R + 256 G + 65536 B``, atomically."""
    import cv2

    ids = np.asarray(ids, np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 24):
        raise ValueError("ids must lie in 0 .. 2**24-1")
    bgr = np.stack([ids >> 16, (ids >> 8) & 255, ids & 255], axis=-1).astype(np.uint8)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), bgr):
            raise DataError(path, "cannot write PNG")


def _segments_info(ids: np.ndarray, categories: dict[int, int]) -> list[dict]:
    uniq, counts = np.unique(ids, return_counts=True)
    return [{"id": int(i), "category_id": int(categories[int(i)]), "iscrowd": 0, "area": int(c)}
            for i, c in zip(uniq, counts, strict=True) if i != 0]


def write_vipseg_folders(root: str | os.PathLike, gt: dict[str, list[np.ndarray]],
                         pred: dict[str, list[np.ndarray]], gt_categories: dict[int, int],
                         pred_categories: dict[int, int], categories: list[dict] | None = None) -> dict[str, Path]:
    """Write GT and a prediction in the official VIPSeg formats (GT JSON + RGB PNGs, pred.json + pan_pred).

    Args:
        root: output folder.
        gt / pred: video name -> list of id maps [H, W] (frame i is named ``%08d.png`` % (i + 1)).
        gt_categories / pred_categories: segment id -> category id.
        categories: the ``categories`` list of the GT JSON (default: the 124 VIPSeg categories).

    Returns:
        {"gt_json", "gt_dir", "submit_dir"}.
    """
    root = Path(root)
    if categories is None:
        categories = [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
                      for c in vipseg_categories()]
    gt_json = {"videos": [], "annotations": [], "categories": categories}
    pred_json = {"annotations": []}
    for vid, frames in gt.items():
        names = [f"{i + 1:08d}.png" for i in range(len(frames))]
        h, w = (frames[0].shape if frames else (0, 0))
        gt_json["videos"].append({"video_id": vid, "images": [
            {"id": n[:-4], "width": int(w), "height": int(h), "file_name": n} for n in names]})
        gt_json["annotations"].append({"video_id": vid, "annotations": [
            {"image_id": n[:-4], "file_name": n, "segments_info": _segments_info(f, gt_categories)}
            for n, f in zip(names, frames, strict=True)]})
        for n, f in zip(names, frames, strict=True):
            write_rgb_id_png(root / "gt" / vid / n, f)
    for vid, frames in pred.items():
        names = [f"{i + 1:08d}.png" for i in range(len(frames))]
        pred_json["annotations"].append({"video_id": vid, "annotations": [
            {"image_id": n[:-4], "file_name": n, "segments_info": _segments_info(f, pred_categories)}
            for n, f in zip(names, frames, strict=True)]})
        for n, f in zip(names, frames, strict=True):
            write_rgb_id_png(root / "submit" / "pan_pred" / vid / n, f)
    write_text_atomic(root / "gt.json", json.dumps(gt_json))
    write_text_atomic(root / "submit" / "pred.json", json.dumps(pred_json))
    return {"gt_json": root / "gt.json", "gt_dir": root / "gt", "submit_dir": root / "submit"}
