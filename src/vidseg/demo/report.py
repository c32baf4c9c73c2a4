"""The demo's HTML report: what each metric means, results with their spread, training curves, per-video
consistency, and the overlay video with a class-colour legend.

Other demo parts add their own :class:`vidseg.viz.report.Section` objects through ``extra_sections``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidseg.categories import vspw_class_names
from vidseg.data.vspw import VSPWDataset
from vidseg.engine.logging import read_metrics
from vidseg.metrics.confusion import mean_iou, weighted_iou
from vidseg.metrics.vc import mean_vc
from vidseg.metrics.vspw import VSPWEvaluator
from vidseg.tables import format_table, write_json
from vidseg.viz.grid import side_by_side
from vidseg.viz.overlay import overlay_semantic
from vidseg.viz.palette import semantic_colors
from vidseg.viz.report import Legend, Plot, Section, Table, Video, write_report
from vidseg.viz.video import write_gif, write_mp4

METRICS = ("mIoU", "WIoU", "mVC8", "mVC16", "TC")

# metric -> (what it measures, where it comes from); every one is a percentage, higher is better
METRIC_INFO = {
    "mIoU": ("mean over classes of intersection / union of predicted and true pixels: how accurate the labels are",
             "PASCAL VOC; the VSPW benchmark (Miao et al., CVPR 2021)"),
    "WIoU": ("IoU of each class weighted by its share of the pixels: accuracy dominated by large regions",
             "VSPW (Miao et al., CVPR 2021)"),
    "mVC8": ("video consistency: the share of pixels whose label stays the same over 8 consecutive frames wherever "
             "the ground truth stays the same, averaged over windows", "VSPW (Miao et al., CVPR 2021)"),
    "mVC16": ("the same consistency over windows of 16 frames", "VSPW (Miao et al., CVPR 2021)"),
    "TC": ("temporal consistency: mIoU between each frame's prediction and the previous one warped by optical "
           "flow (here OpenCV DIS flow; the official script uses RAFT)", "Liu et al., ECCV 2020; TCB / CFFM papers"),
}
BOOTSTRAP_SAMPLES = 1000


def percent(metrics: dict[str, float]) -> list[float]:
    """The demo metrics of one model in percent, in :data:`METRICS` order."""
    return [round(100 * metrics[k], 2) for k in METRICS]


def video_states(videos: Sequence[Any], preds: dict[str, list[np.ndarray]]) -> list[dict[str, Any]]:
    """Per validation video: its confusion matrix and VC window accuracies (``{"cm", "vc": {8: .., 16: ..}}``)."""
    states = []
    for video in videos:
        ev = VSPWEvaluator(vc_lengths=(8, 16))
        for i, pred in enumerate(preds[video.name]):
            ev.process(video.load_raw_mask(i), pred, video=video.name)
        state = ev.state_dict()
        states.append({"video": video.name, "cm": state["cm"], "vc": state["vc"][video.name]})
    return states


def _pooled(states: Sequence[dict[str, Any]]) -> dict[str, float]:
    cm = sum(s["cm"] for s in states)
    return {"mIoU": mean_iou(cm), "WIoU": weighted_iou(cm),
            "mVC8": mean_vc([s["vc"][8] for s in states]), "mVC16": mean_vc([s["vc"][16] for s in states])}


def bootstrap_spread(states: Sequence[dict[str, Any]], samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> dict[str, float]:
    """Standard deviation (fractions) of mIoU, WIoU, mVC8, mVC16 over ``samples`` resamplings of the videos
    with replacement: how much each number would move with another draw of validation videos of this kind."""
    rng = np.random.default_rng(seed)
    draws = [_pooled([states[i] for i in rng.integers(0, len(states), len(states))]) for _ in range(samples)]
    out = {}
    for k in draws[0]:
        values = np.array([d[k] for d in draws], np.float64)
        values = values[np.isfinite(values)]
        out[k] = float(values.std()) if len(values) else float("nan")  # NaN: no window of that length
    return out


def _pct(value: float) -> float | str:
    return "n/a" if not np.isfinite(value) else 100 * value


def _curves(results: dict[str, dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    series = {}
    for label, r in results.items():
        recs = [x for x in read_metrics(Path(r["run_dir"]) / "metrics.jsonl") if "loss" in x]
        series[label] = ([int(x["iter"]) for x in recs], [x["loss"] for x in recs])
    return series


def _overlay_frames(video: Any, results: dict[str, dict[str, Any]], labels: Sequence[str],
                    progress: bool) -> list[np.ndarray]:
    frames = []
    for i in tqdm(range(len(video)), desc="report: overlay video", unit="frame", disable=not progress):
        image = video.load_frame(i)
        panels = [overlay_semantic(image, video.load_label(i)),
                  *(overlay_semantic(image, results[label]["predictions"][video.name][i]) for label in labels)]
        frame = side_by_side(panels, ["ground truth", *labels])
        frames.append(np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1))  # twice the size: readable labels
    return frames


def _overlay_video(out: Path, video: Any, frames: list[np.ndarray]) -> Path:
    try:
        return write_mp4(out / "overlay.mp4", frames, fps=6)
    except Exception:  # PyAV missing or no H.264 encoder: fall back to a GIF
        return write_gif(out / "overlay.gif", frames, fps=6)


def class_legend(video: Any) -> Legend:
    """Swatches of the classes present in ``video``'s ground truth, in the overlay colours."""
    present = sorted({int(c) for i in range(len(video)) for c in np.unique(video.load_label(i)) if c < 255})
    names, colors = vspw_class_names(), semantic_colors()
    return Legend([(names[c], colors[c].tolist()) for c in present], "class colours of the overlays")


def _model_text(m: Any, iters: int) -> str:
    options = ", ".join(f"{k} {v}" for k, v in m.kwargs.items()) or "registry defaults"
    start = f", started from the trained {m.init_from}" if m.init_from else ", from scratch"
    return f"{m.label}: registered model {m.name} ({options}){start}, {iters} steps"


def _setup_text(summary: dict[str, Any], chosen: Sequence[Any], videos: int) -> str:
    setup = summary["setup"]
    h, w = setup["size_hw"]
    models = "; ".join(_model_text(m, setup["models"][m.label]["iters"]) for m in chosen)
    return (f"Synthetic VSPW-layout data: {setup['videos']} videos of {setup['frames']} frames, {h}x{w} (HxW), "
            f"{videos} of them for validation. Trained on CPU with {setup['batch']} clips per step (AdamW, "
            f"lr {setup['lr']}). Models: {models}. Metrics are percentages; higher is better for every one. "
            "The ± column is the standard deviation of the metric over "
            f"{BOOTSTRAP_SAMPLES} bootstrap resamplings of the {videos} validation videos: differences smaller "
            "than about twice it are not evidence that one model is better. TC has no spread (it needs optical "
            "flow per resampling). Reproducibility: a rerun with the same seed on the same machine and the same "
            "number of threads gives the same numbers; another CPU, another thread count or another PyTorch "
            "build changes the floating-point order and hence the trained weights and the numbers (by about "
            "the spread shown).")


def _metric_section() -> Section:
    rows = [[name, what, "yes", source] for name, (what, source) in METRIC_INFO.items()]
    return Section("What the metrics measure", "", [Table(["metric", "measures", "higher is better", "from"], rows)])


def stage_table(stages: dict[str, float]) -> str:
    """The per-stage times as a printed table (seconds, share of the total)."""
    total = sum(stages.values()) or 1.0
    rows = [[name, round(s, 1), round(100 * s / total, 1)] for name, s in stages.items()]
    return format_table(rows, ["stage", "seconds", "% of total"])


def write_demo_report(out: Path, root: Path, results: dict[str, dict[str, Any]], summary: dict[str, Any],
                      chosen: Sequence[Any], extra_sections: Sequence[Section] = (), progress: bool = True) -> None:
    """Write ``out/report.html``: metric meanings, results with bootstrap spread, training curves, per-video VC8,
    the overlay video with a class legend, then ``extra_sections`` (other demo parts, e.g. panoptic or VOS).

    Also records ``summary["spread"]`` (bootstrap standard deviations, fractions) and, when the results carry
    ``train_seconds``/``eval_seconds``, ``summary["stage_seconds"]``, and prints the time of each stage.

    Args:
        out: demo output folder.
        root: the synthetic VSPW root.
        results: per model label: ``metrics``, ``predictions``, ``run_dir`` (and ``train_seconds``, ``eval_seconds``).
        summary: the summary dictionary (metrics as fractions, ``train_seconds``, ``setup``).
        chosen: the demo models (``label``, ``name``, ``kwargs``, ``init_from``).
        extra_sections: further report sections, appended in order.
        progress: show progress bars.
    """
    start = time.perf_counter()
    labels = list(results)
    videos = list(VSPWDataset(root, "val").videos)
    states = {label: video_states(videos, results[label]["predictions"]) for label in labels}
    spread = {label: bootstrap_spread(states[label]) for label in labels}
    summary["spread"] = {label: {k: (round(v, 4) if np.isfinite(v) else None) for k, v in s.items()}
                         for label, s in spread.items()}
    header = ["model", *(h for k in METRICS for h in ((k, "±") if k != "TC" else (k,))), "steps", "train s"]
    rows = []
    for label in labels:
        m = summary["models"][label]
        values = [x for k in METRICS for x in ((_pct(m[k]), _pct(spread[label][k])) if k != "TC" else (_pct(m[k]),))]
        rows.append([label, *values, summary["setup"]["models"][label]["iters"], summary["train_seconds"][label]])
    names = [v.name for v in videos]
    per_video = {label: (names, [100 * mean_vc([s["vc"][8]]) for s in states[label]]) for label in labels}
    frames = _overlay_frames(videos[0], results, labels, progress)
    video_path = _overlay_video(out, videos[0], frames)
    sections = [
        Section("Results", _setup_text(summary, chosen, len(videos)), [Table(header, rows)]),
        _metric_section(),
        Section("Training curves", "Training loss per logged step.", [Plot("loss", _curves(results), "step", "loss")]),
        Section("Per-video consistency", "VC8 of each validation video.",
                [Plot("VC8 per video", per_video, "validation video", "VC8 (%)", kind="bar")]),
        Section("Overlays", f"Ground truth, then each model, on validation video {videos[0].name} (left to right).",
                [Video(video_path, " | ".join(["ground truth", *labels]), poster=frames[0],
                       width=min(1050, frames[0].shape[1])), class_legend(videos[0])]),
        *extra_sections,
    ]
    write_report(out / "report.html", sections, title="vidseg demo")
    if all("eval_seconds" in r for r in results.values()):
        stages = {**summary.get("stage_seconds", {})}
        for label in labels:
            stages[f"train {label}"] = results[label]["train_seconds"]
            stages[f"evaluate {label}"] = results[label]["eval_seconds"]
        stages["report"] = time.perf_counter() - start
        summary["stage_seconds"] = {k: round(v, 1) for k, v in stages.items()}
        print(stage_table(stages))
    write_json(out / "summary.json", summary)  # again, now with the spread and the stage times
