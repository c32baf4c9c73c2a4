"""VSPW metrics: mIoU / weighted IoU / pixel accuracy / per-class IoU, mVC_n and TC, in one pass.

Ground truth is the raw VSPW mask (0 = others, 1..124 = classes, 255 = void) unless
``gt_format="shifted"`` (library convention: 0..123, 255 ignore). The official shift
``0 -> 255, v -> v - 1, 255 -> 255`` is applied for the confusion matrix; VC compares the GT values as
given (the official ``VC_perclip.py`` reads the raw PNG, so others (0) and void (255) stay distinct).

Folder scoring (:func:`evaluate_vspw_folder`) reads ``<root>/<split>.txt``,
``<root>/data/<video>/mask/*.png`` (and ``origin/*.jpg`` for TC) and ``<pred>/<video>/<stem>.png``,
decodes every PNG once, and runs videos in parallel; states are merged in split order so the numbers
do not depend on the number of workers.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.categories import NUM_VSPW_CLASSES, vspw_class_names
from vidseg.errors import ConfigError, DataError
from vidseg.fileio import read_image
from vidseg.flow.backends import make_flow_backend
from vidseg.flow.cache import CachedFlow, FramePair, fill_flow_cache
from vidseg.metrics.confusion import (
    check_pred_range,
    confusion_matrix,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
    weighted_iou,
)
from vidseg.metrics.evaluator import Evaluator, check_protocol
from vidseg.metrics.folder import (
    list_pngs,
    raise_missing,
    read_label_png,
    read_split,
    report_extra,
    run_jobs,
)
from vidseg.metrics.scoring import ScoredFrame, score_video
from vidseg.metrics.tc import TCEvaluator
from vidseg.metrics.vc import VCVideoAccumulator, mean_vc

_SHIFT_LUT = np.concatenate([[255], np.arange(0, 254), [255]]).astype(np.uint8)  # raw -> shifted


def shift_vspw_gt(raw: np.ndarray) -> np.ndarray:
    """Official README shift of a raw VSPW mask: 0 (others) and 255 (void) -> 255, v -> v - 1.

    Args:
        raw: [H, W] uint8 raw mask.

    Returns:
        [H, W] uint8 with classes 0..123 and 255 = ignore (raw values 125..254 become 124..253, which
        the confusion matrix ignores as the official ``gt < 124`` mask does).
    """
    if raw.dtype == np.uint8:
        import cv2

        return cv2.LUT(raw, _SHIFT_LUT)
    return _SHIFT_LUT[np.clip(raw, 0, 255)]


class VSPWEvaluator(Evaluator):
    """mIoU / WIoU / pixel accuracy / per-class IoU and mVC_n, fed frame by frame, video by video.

    Usage::

        ev = VSPWEvaluator()
        for video in videos:
            for gt, pred in frames(video):
                ev.process(gt, pred, video=video)
        ev.evaluate()

    Args:
        num_classes: K (124).
        vc_lengths: window lengths n of mVC_n (empty to skip VC).
        protocol: ``official`` or ``strict`` (VC windows; strict also rejects GT values outside the
            raw range 0..124/255).
        miou_rule: ``official`` (classes present in the GT) or ``mmseg`` (classes with non-empty union).
        gt_format: ``raw`` (VSPW PNG values) or ``shifted`` (0..K-1, 255 ignore).
    """

    def __init__(self, num_classes: int = NUM_VSPW_CLASSES, vc_lengths: Sequence[int] = (8, 16),
                 protocol: str = "official", miou_rule: str = "official", gt_format: str = "raw") -> None:
        self.num_classes = num_classes
        self.vc_lengths = tuple(int(n) for n in vc_lengths)
        self.protocol = check_protocol(protocol)
        if miou_rule not in ("official", "mmseg"):
            raise ConfigError(f"unknown mIoU rule {miou_rule!r}; choose 'official' or 'mmseg'")
        if gt_format not in ("raw", "shifted"):
            raise ConfigError(f"unknown gt_format {gt_format!r}; choose 'raw' or 'shifted'")
        self.miou_rule = miou_rule
        self.gt_format = gt_format
        self.reset()

    def reset(self) -> None:
        self.cm = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.vc: dict[str, dict[int, np.ndarray]] = {}
        self.num_frames = 0
        self._video: str | None = None
        self._acc: VCVideoAccumulator | None = None

    def process(self, gt: np.ndarray, pred: np.ndarray, video: str = "video", where: str = "prediction",  # type: ignore[override]
                gt_where: str | None = None) -> None:
        """Add one frame of ``video``. gt, pred: [H, W] integer maps of the same size.

        ``where`` names the prediction file, ``gt_where`` the ground-truth file (errors about the GT name it).
        """
        if gt.ndim != 2 or pred.ndim != 2:
            raise DataError(where, f"expected single-channel label maps, got GT {gt.shape} and prediction {pred.shape}")
        if gt.shape != pred.shape:
            raise DataError(where, f"prediction size {pred.shape[::-1]} differs from ground truth size {gt.shape[::-1]} (W, H)")
        check_pred_range(pred, self.num_classes, where)
        if self.protocol == "strict":
            self._check_gt(gt, gt_where or where)
        if video != self._video:
            self.end_video()
            if video in self.vc:
                raise DataError(video, f"video {video} processed twice (listed twice in the split, or its frames are "
                                   "not consecutive)")
            self._video = video
            self._acc = VCVideoAccumulator(self.vc_lengths, self.protocol) if self.vc_lengths else None
        shifted = shift_vspw_gt(gt) if self.gt_format == "raw" else gt
        self.cm += confusion_matrix(shifted, pred, self.num_classes, validate=False, where=where)
        if self._acc is not None:
            self._acc.add(gt, pred, gt_where or where)
        self.num_frames += 1

    def _check_gt(self, gt: np.ndarray, where: str) -> None:
        hi = self.num_classes if self.gt_format == "raw" else self.num_classes - 1
        bad = (gt > hi) & (gt != 255)
        if bad.any():
            raise DataError(where, f"ground truth value {int(gt[bad].flat[0])} outside 0..{hi} and 255")

    def end_video(self) -> None:
        """Close the current video (called automatically when the next video starts or on evaluate)."""
        if self._video is not None:
            self.vc[self._video] = self._acc.finish() if self._acc is not None else {}
        self._video, self._acc = None, None

    def evaluate(self) -> dict[str, Any]:
        """Metrics as fractions: mIoU, WIoU, pixel_acc, mVC<n>, per_class (list, NaN = absent)."""
        self.end_video()
        out: dict[str, Any] = {
            "mIoU": mean_iou(self.cm, self.miou_rule),
            "WIoU": weighted_iou(self.cm),
            "pixel_acc": pixel_accuracy(self.cm),
        }
        for n in self.vc_lengths:
            accs = [v[n] for v in self.vc.values() if n in v]
            out[f"mVC{n}"] = mean_vc(accs)
            out[f"vc{n}_windows"] = int(sum(len(a) for a in accs))
        out["per_class"] = per_class_iou(self.cm).tolist()
        out["num_frames"] = self.num_frames
        out["num_videos"] = len(self.vc)
        return out

    def state_dict(self) -> dict[str, Any]:
        self.end_video()
        return {"cm": self.cm.copy(), "vc": {k: dict(v) for k, v in self.vc.items()}, "num_frames": self.num_frames}

    def merge(self, other_state: dict[str, Any]) -> None:
        self.end_video()
        self.cm += other_state["cm"]
        for video, accs in other_state["vc"].items():
            if video in self.vc:
                raise DataError(video, "video present in two merged evaluator states")
            self.vc[video] = accs
        self.num_frames += int(other_state["num_frames"])


# ----------------------------------------------------------------------------------------------
# Folder scoring
# ----------------------------------------------------------------------------------------------

ALL_METRICS = ("miou", "wiou", "vc8", "vc16", "tc")


def parse_metrics(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"miou,wiou,vc8,tc"`` -> tuple; accepts vc<n> for any n >= 1 and ``pixel_acc``."""
    items = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    for m in items:
        if m in ("miou", "wiou", "tc", "pixel_acc"):
            continue
        if m.startswith("vc") and m[2:].isdigit() and int(m[2:]) >= 1:
            continue
        raise ConfigError(f"unknown VSPW metric {m!r}; use miou, wiou, pixel_acc, vc<n> (e.g. vc8), tc")
    return tuple(dict.fromkeys(items))


def check_vspw_predictions(root: Path, pred: Path, videos: list[str], protocol: str,
                           tc_videos: Sequence[str] = ()) -> dict[str, list[str]]:
    """List GT frame stems per video and check that each has a prediction.

    Raises:
        DataError: missing GT folders, missing predictions (count + first names), or, in strict,
            extra predictions. In official, extra predictions only warn.
    """
    frames: dict[str, list[str]] = {}
    missing: list[str] = []
    extra: list[str] = []
    tc_set = set(tc_videos)
    for v in videos:
        mask_dir = root / "data" / v / "mask"
        stems = list_pngs(mask_dir)
        if not stems:
            raise DataError(mask_dir, "no ground-truth masks (*.png) for this video")
        frames[v] = stems
        have = set(list_pngs(pred / v))
        need = set(stems)
        if v in tc_set:
            need |= {p.stem for p in (root / "data" / v / "origin").glob("*.jpg")}
        missing += [f"{v}/{s}.png" for s in sorted(need - have)]
        extra += [f"{v}/{s}.png" for s in sorted(have - need)]
    raise_missing(missing, pred)
    vset = set(videos)
    extra_videos = sorted(p.name for p in pred.iterdir() if p.is_dir() and p.name not in vset) if pred.is_dir() else []
    extra += [f"{v}/" for v in extra_videos]
    report_extra(extra, pred, protocol)
    return frames


def offset_prediction(pred: np.ndarray, gt: np.ndarray | None, gt_format: str, where: str) -> np.ndarray:
    """A 1-based prediction (raw VSPW values: 1..124 = classes, 0 = others) as 0-based class ids.

    0 ("others") is accepted only on pixels the ground truth ignores (there it becomes 0, which the
    confusion matrix never sees); on a pixel with a ground-truth class it raises DataError.
    """
    if pred.size and int(pred.max()) > NUM_VSPW_CLASSES:
        raise DataError(where, f"prediction value {int(pred.max())} outside the 1-based range 0..{NUM_VSPW_CLASSES} "
                        "(--pred-offset 1)")
    others = pred == 0
    if gt is not None and others.any():
        valid = (gt >= 1) & (gt <= NUM_VSPW_CLASSES) if gt_format == "raw" else gt < NUM_VSPW_CLASSES
        if (others & valid).any():
            raise DataError(where, f"prediction value 0 ('others') on {int((others & valid).sum())} pixels that have a "
                            "ground-truth class: 1-based predictions (--pred-offset 1) hold classes 1..124")
    out = pred.astype(np.int16) - 1
    out[others] = 0
    return out.astype(np.uint8)


def agreement(pred: np.ndarray, gt: np.ndarray, gt_format: str) -> np.ndarray:
    """[valid, pred == GT value, pred == GT class id] pixel counts on the pixels with a GT class (int64 [3]).

    A 0-based prediction agrees with the class id (raw value - 1); a 1-based one, or one scored against GT
    that is already shifted while ``gt_format`` says raw, agrees with the GT value instead.
    """
    g = gt.astype(np.int16)
    if gt_format == "raw":
        valid, cls = (g >= 1) & (g <= NUM_VSPW_CLASSES), g - 1
    else:
        valid, cls = g < NUM_VSPW_CLASSES, g
    p = pred.astype(np.int16)[valid]
    same_value = int((p == g[valid]).sum()) if gt_format == "raw" else int((p == g[valid] + 1).sum())
    return np.array([int(valid.sum()), same_value, int((p == cls[valid]).sum())], np.int64)


def convention_warning(counts: np.ndarray, gt_format: str, pred_offset: int) -> str | None:
    """One line naming the label convention when predictions evidently use the other one (None if not).

    ``counts`` sums :func:`agreement` over the scored frames (after any offset). "Evident" means the
    predictions match the GT shifted by one class on at least 90% of the pixels with a GT class and match
    it unshifted on at most half as many.
    """
    valid, same_value, same_class = (int(c) for c in counts)
    if valid == 0 or same_value < 0.9 * valid or same_class > 0.5 * same_value:
        return None
    frac = 100.0 * same_value / valid
    if gt_format == "raw":
        return (f"predictions equal the raw ground-truth values on {frac:.1f}% of the labelled pixels: VSPW "
                "predictions are 0-based class ids (raw GT value - 1; the official shift maps 0 'others' and 255 to "
                "ignore). Pass --pred-offset 1 for 1-based predictions, or --gt-format shifted if the GT masks are "
                "already shifted")
    return (f"predictions equal the shifted ground truth + 1 on {frac:.1f}% of the labelled pixels: they look "
            "1-based (raw VSPW values); pass --pred-offset 1")


def _frames(root: Path, pred: Path, video: str, stems: Sequence[str], with_gt: bool,
            pred_offset: int = 0, gt_format: str = "raw", tally: np.ndarray | None = None) -> Iterator[ScoredFrame]:
    """The frames of one video read from the folders (GT masks when ``with_gt``; otherwise range-checked).

    ``pred_offset`` 1 converts 1-based predictions; ``tally`` ([3] int64) accumulates :func:`agreement`.
    """
    for stem in stems:
        where = str(pred / video / f"{stem}.png")
        gt = read_label_png(root / "data" / video / "mask" / f"{stem}.png") if with_gt else None
        p = read_label_png(pred / video / f"{stem}.png")
        if pred_offset:
            p = offset_prediction(p, gt, gt_format, where)
        elif p.size and int(p.max()) == NUM_VSPW_CLASSES:
            raise DataError(where, f"prediction value {NUM_VSPW_CLASSES} outside the class range 0..123: VSPW "
                            "predictions are 0-based (raw GT value - 1); pass --pred-offset 1 for 1-based ones")
        if tally is not None and gt is not None and gt.shape == p.shape:  # (a size mismatch is raised by the evaluator)
            tally += agreement(p, gt, gt_format)
        if not with_gt:
            check_pred_range(p, NUM_VSPW_CLASSES, where)
        image_path = root / "data" / video / "origin" / f"{stem}.jpg"
        image = functools.partial(read_image, image_path, mode="RGB")
        yield ScoredFrame(stem, p, gt, image, where, image_where=str(image_path),
                          gt_where=str(root / "data" / video / "mask" / f"{stem}.png"))


def tc_frame_pairs(root: Path, videos: Sequence[str]) -> list[FramePair]:
    """Consecutive frame pairs of ``data/<video>/origin/*.jpg`` (the pairs TC scores), video by video."""
    pairs = []
    for video in videos:
        origin = root / "data" / video / "origin"
        stems = sorted(p.stem for p in origin.glob("*.jpg"))
        pairs += [FramePair(video, a, b, str(origin / f"{a}.jpg"), str(origin / f"{b}.jpg"))
                  for a, b in zip(stems, stems[1:])]
    return pairs


def _video_job(job: dict[str, Any]) -> dict[str, Any]:
    """Score one video (worker side). Returns its VSPW state and, if asked, its TC state."""
    root, pred, video = Path(job["root"]), Path(job["pred"]), job["video"]
    ev = VSPWEvaluator(vc_lengths=job["vc_lengths"], protocol=job["protocol"], miou_rule=job["miou_rule"],
                       gt_format=job["gt_format"])
    tc = TCEvaluator() if job["tc"] else None
    tally = np.zeros(3, np.int64)
    read = functools.partial(_frames, root, pred, video, pred_offset=job["pred_offset"], gt_format=job["gt_format"])
    flow = job["flow"]
    origin_stems = sorted(p.stem for p in (root / "data" / video / "origin").glob("*.jpg")) if tc else []
    gap = sorted(set(job["stems"]) - set(origin_stems)) if tc else []
    if gap:  # the official TC_cal.py lists origin/ only, so it would silently pair the frames around the gap
        raise DataError(root / "data" / video / "origin", f"frame {gap[0]}.jpg is missing but its mask exists "
                        f"({len(gap)} such frames): TC would compare frames across the gap")
    if tc is not None and origin_stems == job["stems"]:  # one pass scores both
        score_video(video, read(job["stems"], True, tally=tally), ev, tc, flow)
    else:
        score_video(video, read(job["stems"], True, tally=tally), ev)
        if tc is not None:
            score_video(video, read(origin_stems, False), None, tc, flow)
    return {"vspw": ev.state_dict(), "tc": tc.state_dict() if tc is not None else None, "agreement": tally}


def evaluate_vspw_folder(root: str | os.PathLike, pred: str | os.PathLike, *, split: str = "val",
                         metrics: str | Sequence[str] = "miou,wiou,vc8,vc16", protocol: str = "official",
                         miou_rule: str = "official", workers: int = 1, flow: Any = "dis",
                         tc_videos: int | None = 100, progress: bool = True, gt_format: str = "raw",
                         pred_offset: int = 0) -> dict[str, Any]:
    """Score a prediction folder against a VSPW root.

    Args:
        root: VSPW root holding ``<split>.txt`` and ``data/<video>/{mask,origin}``.
        pred: folder ``<video>/<stem>.png`` of single-channel class-id PNGs (0..123).
        split: split file name (``val``), or ``all`` for every video folder.
        metrics: subset of miou, wiou, pixel_acc, vc<n>, tc.
        protocol: ``official`` or ``strict``.
        miou_rule: ``official`` or ``mmseg``.
        workers: processes (results do not depend on it).
        flow: TC flow backend or spec (``"dis"``, a flow folder, a callable), see :mod:`vidseg.flow` and
            :func:`vidseg.flow.factory.build_flow_backend` (RAFT, flow cache). With a
            :class:`~vidseg.flow.cache.CachedFlow`, the missing flows are computed first, frame pairs
            spread over ``workers`` processes, and the scoring pass reads them from the cache.
        tc_videos: TC uses the first ``tc_videos`` videos of the split (official 100); None = all.
        progress: show a tqdm bar.
        gt_format: ``raw`` (VSPW masks: 0 others, 1..124 classes, 255 void) or ``shifted`` (0..123, 255).
        pred_offset: 0 for 0-based predictions (class ids 0..123 = raw GT value - 1, the VSPW convention),
            1 for 1-based ones (raw values 1..124; 0 "others" only where the GT ignores the pixel).
            When the predictions evidently use the other convention, a one-line warning says so.

    Returns:
        dict with mIoU, WIoU, pixel_acc, mVC<n>, TC (fractions), per_class ({name: IoU or None}), counts.
    """
    check_protocol(protocol)
    if pred_offset not in (0, 1):
        raise ConfigError(f"pred_offset must be 0 (0-based class ids) or 1 (1-based), got {pred_offset!r}")
    VSPWEvaluator(gt_format=gt_format, vc_lengths=())  # checks gt_format
    mets = parse_metrics(metrics)
    root, pred = Path(root), Path(pred)
    if not pred.is_dir():
        raise DataError(pred, "prediction folder not found")
    videos = read_split(root, split)
    vc_lengths = tuple(int(m[2:]) for m in mets if m.startswith("vc"))
    tc_list = (videos if tc_videos is None else videos[:tc_videos]) if "tc" in mets else []
    frames = check_vspw_predictions(root, pred, videos, protocol, tc_list)
    backend = make_flow_backend(flow) if tc_list else None
    if isinstance(backend, CachedFlow):  # flows first, frame pairs spread over the workers
        fill_flow_cache(backend, tc_frame_pairs(root, tc_list), workers=workers, progress=progress)
        backend = backend.reading_only()  # every flow is on disk now: no frame decoding in the scoring pass
    tc_set = set(tc_list)
    jobs = [{"root": str(root), "pred": str(pred), "video": v, "stems": frames[v], "vc_lengths": vc_lengths,
             "protocol": protocol, "miou_rule": miou_rule, "tc": v in tc_set, "flow": backend,
             "gt_format": gt_format, "pred_offset": pred_offset} for v in videos]
    ev = VSPWEvaluator(vc_lengths=vc_lengths, protocol=protocol, miou_rule=miou_rule, gt_format=gt_format)
    tc = TCEvaluator()
    counts = np.zeros(3, np.int64)
    for res in run_jobs(_video_job, jobs, workers, progress, desc="VSPW videos"):
        ev.merge(res["vspw"])
        counts += res["agreement"]
        if res["tc"] is not None:
            tc.merge(res["tc"])
    out = ev.evaluate()
    names = vspw_class_names()
    out["per_class"] = {names[i]: (None if np.isnan(v) else v) for i, v in enumerate(out["per_class"])}
    if tc_list:
        out.update(tc.evaluate())
    out["protocol"] = protocol
    message = convention_warning(counts, gt_format, pred_offset)
    if message:
        warnings.warn(f"{pred}: {message}", stacklevel=2)
    return out
