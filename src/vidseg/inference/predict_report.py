"""Scoring a ``vidseg predict`` output folder and its short HTML page.

The scores come from the folder evaluators that ``vidseg eval`` runs (:func:`evaluate_vspw_folder`,
:func:`evaluate_vipseg_folder`, :func:`evaluate_davis_folder`), so ``predict --eval`` and ``eval`` give the same
numbers. The page lists the main metrics, the worst videos (VSPW: per-video mIoU through
:func:`vidseg.metrics.scoring.score_video`; VIPSeg: per-sequence STQ; DAVIS: per-sequence J&F) and overlays of
the middle frame of the worst few.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.categories import davis_palette
from vidseg.data.layout import IMAGE_EXTS, list_files
from vidseg.fileio import read_image
from vidseg.inference.predict import PredictVideo, final_path
from vidseg.metrics.davis_folder import evaluate_davis_folder
from vidseg.metrics.folder import list_pngs, read_label_png
from vidseg.metrics.scoring import ScoredFrame, score_video
from vidseg.metrics.vipseg_eval import evaluate_vipseg_folder
from vidseg.metrics.vspw import VSPWEvaluator, evaluate_vspw_folder
from vidseg.viz.overlay import overlay_semantic
from vidseg.viz.panoptic import overlay_panoptic
from vidseg.viz.report import Image, Section, Table, write_report

HEADLINE = {"vspw": ("mIoU", "WIoU", "mVC8", "mVC16", "pixel_acc"),
            "vipseg": ("VPQ_final", "STQ", "AQ", "SQ", "IoU"),
            "davis": ("J&F-Mean", "J-Mean", "J-Recall", "F-Mean", "F-Recall")}


def headline(benchmark: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The benchmark's main numbers as fractions (VIPSeg: VPQ_final and VPQ^k over all classes, then STQ ...)."""
    out: dict[str, float] = {}
    for key in HEADLINE[benchmark]:
        value = metrics.get(key)
        if isinstance(value, dict):  # VIPSeg VPQ tables: {"all", "thing", "stuff"}
            value = value.get("all")
        if isinstance(value, (int, float)):
            out[key] = float(value)
        if key == "VPQ_final":
            out.update({f"VPQ^{k}": float(v["all"]) for k, v in metrics.get("VPQ", {}).items()})
    return out


def vipseg_gt(root: Path, split: str) -> tuple[Path, Path]:
    """The 720P GT JSON of ``split`` and the RGB-id mask folder (``vidseg convert vipseg-720p`` writes both)."""
    return root / f"panoptic_gt_VIPSeg_{split}.json", root / "panomasksRGB"


def score_folder(benchmark: str, root: str | os.PathLike, split: str, out: str | os.PathLike, *,
                 davis_year: str = "2017", progress: bool = True) -> dict[str, Any]:
    """The official metrics of a prediction folder (the dict of the benchmark's folder evaluator)."""
    root, out = Path(root), Path(out)
    if benchmark == "vspw":
        return evaluate_vspw_folder(root, out, split=split, progress=progress)
    if benchmark == "vipseg":
        gt_json, gt_dir = vipseg_gt(root, split)
        return evaluate_vipseg_folder(gt_json, gt_dir, out, progress=progress)
    return evaluate_davis_folder(root, out, year=davis_year, subset=split, progress=progress)


def vspw_video_miou(root: Path, out: Path, video: str) -> float:
    """mIoU of one VSPW video over its annotated frames (the scoring loop of ``vidseg eval``)."""
    ev = VSPWEvaluator(vc_lengths=())
    mask_dir = root / "data" / video / "mask"
    frames = (ScoredFrame(stem, read_label_png(out / video / f"{stem}.png"), read_label_png(mask_dir / f"{stem}.png"),
                          where=str(out / video / f"{stem}.png"), gt_where=str(mask_dir / f"{stem}.png"))
              for stem in list_pngs(mask_dir))
    score_video(video, frames, ev)
    return float(ev.evaluate()["mIoU"])


def per_video_scores(benchmark: str, root: Path, out: Path, metrics: dict[str, Any],
                     videos: list[PredictVideo]) -> tuple[str, list[tuple[str, float]]]:
    """(score name, [(video, score)]) worst first."""
    if benchmark == "vspw":
        name, rows = "mIoU", [(v.name, vspw_video_miou(root, out, v.name)) for v in videos]
    elif benchmark == "vipseg":
        name, rows = "STQ", [(str(r["video"]), float(r["STQ"])) for r in metrics.get("per_sequence", [])]
    else:
        per: dict[str, list[float]] = {}
        for key, row in metrics.get("per_object", {}).items():
            per.setdefault(key.rsplit("_", 1)[0], []).append((row["J-Mean"] + row["F-Mean"]) / 2)
        name, rows = "J&F", [(seq, float(np.mean(vals))) for seq, vals in per.items()]
    return name, sorted(rows, key=lambda r: (r[1], r[0]))


def _rgb_ids(path: Path) -> np.ndarray:
    rgb = read_image(path, "RGB").astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def overlay_frame(benchmark: str, out: Path, video: PredictVideo) -> tuple[np.ndarray, str]:
    """The middle frame of a video with its prediction blended in, and the frame name."""
    frame = list_files(video.frames, IMAGE_EXTS)[video.num_frames // 2]
    image = read_image(frame, "RGB")
    pred = final_path(benchmark, out, video.name) / f"{frame.stem}.png"
    if benchmark == "vipseg":
        return overlay_panoptic(image, _rgb_ids(pred)), frame.stem
    if benchmark == "davis":
        return overlay_semantic(image, read_label_png(pred), palette=davis_palette(), ignore_label=0), frame.stem
    return overlay_semantic(image, read_label_png(pred)), frame.stem


def write_predict_report(path: str | os.PathLike, benchmark: str, model: str, metrics: dict[str, Any],
                         worst: tuple[str, list[tuple[str, float]]], videos: list[PredictVideo], out: Path, *,
                         num_worst: int = 5, num_overlays: int = 3) -> Path:
    """``report.html``: headline metrics, the worst videos and overlays of a few of them."""
    head = headline(benchmark, metrics)
    score_name, rows = worst
    by_name = {v.name: v for v in videos}
    images = []
    for name, score in rows[:num_overlays]:
        image, stem = overlay_frame(benchmark, out, by_name[name])
        images.append(Image(image, f"{name}/{stem} ({score_name} {100 * score:.1f})"))
    sections = [
        Section("Metrics", f"{benchmark.upper()} split scored by the official protocol (vidseg eval).",
                [Table(list(head), [[100 * v for v in head.values()]], caption="percent")]),
        Section("Worst videos", f"lowest {score_name} first",
                [Table(["video", score_name], [[n, 100 * s] for n, s in rows[:num_worst]])]),
        Section("Overlays", "middle frame of the worst videos", images),
    ]
    return write_report(path, sections, title=f"vidseg predict: {model} on {benchmark}")
