"""The demo's HTML report: results table, training curves, per-video consistency and the overlay video.

Other demo parts add their own :class:`vidseg.viz.report.Section` objects through ``extra_sections``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidseg.data.vspw import VSPWDataset
from vidseg.engine.logging import read_metrics
from vidseg.viz.grid import side_by_side
from vidseg.viz.overlay import overlay_semantic
from vidseg.viz.report import Plot, Section, Table, Video, write_report
from vidseg.viz.video import write_gif, write_mp4

METRICS = ("mIoU", "WIoU", "mVC8", "mVC16", "TC")


def percent(metrics: dict[str, float]) -> list[float]:
    """The demo metrics of one model in percent, in :data:`METRICS` order."""
    return [round(100 * metrics[k], 2) for k in METRICS]



def _curves(results: dict[str, dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    series = {}
    for label, r in results.items():
        recs = [x for x in read_metrics(Path(r["run_dir"]) / "metrics.jsonl") if "loss" in x]
        series[label] = ([int(x["iter"]) for x in recs], [x["loss"] for x in recs])
    return series


def _overlay_video(out: Path, root: Path, results: dict[str, dict[str, Any]], labels: Sequence[str]) -> Path | None:
    video = VSPWDataset(root, "val").videos[0]
    frames = []
    for i in range(len(video)):
        image = video.load_frame(i)
        panels = [overlay_semantic(image, video.load_label(i)),
                  *(overlay_semantic(image, results[label]["predictions"][video.name][i]) for label in labels)]
        frames.append(side_by_side(panels, ["ground truth", *labels]))
    try:
        return write_mp4(out / "overlay.mp4", frames, fps=6)
    except Exception:  # PyAV missing or no H.264 encoder: fall back to a GIF
        return write_gif(out / "overlay.gif", frames, fps=6)


def write_demo_report(out: Path, root: Path, results: dict[str, dict[str, Any]], summary: dict[str, Any],
                      chosen: Sequence[Any], extra_sections: Sequence[Section] = ()) -> None:
    """Write ``out/report.html``: results table, training curves, per-video VC8, overlays, then ``extra_sections``
    (what other demo parts, e.g. panoptic or VOS, contribute).

    Args:
        out: demo output folder.
        root: the synthetic VSPW root.
        results: per model label: ``metrics``, ``predictions``, ``run_dir``, ``per_video_vc8``.
        summary: the summary dictionary (metrics as fractions, ``train_seconds``, ``setup``).
        chosen: the demo models (``label``, ``name``, ``kwargs``, ``init_from``).
        extra_sections: further report sections, appended in order.
    """
    labels = list(results)
    rows = [[label, *percent(summary["models"][label]), summary["train_seconds"][label]]
            for label in labels]
    videos = sorted(next(iter(results.values()))["per_video_vc8"])
    per_video = {label: (list(range(len(videos))), [results[label]["per_video_vc8"][v] for v in videos])
                 for label in labels}
    video_path = _overlay_video(out, root, results, labels)
    setup = summary["setup"]
    text = (f"Synthetic VSPW-layout data: {setup['videos']} videos x {setup['frames']} frames of "
            f"{setup['size_hw'][1]}x{setup['size_hw'][0]}; the baseline trained from scratch on CPU, every model for "
            f"{setup['iters']} steps of {setup['batch']} clips (AdamW, lr {setup['lr']}). Models: "
            + "; ".join(f"{m.label} = {m.name} {m.kwargs}" + (f", initialised from {m.init_from}" if m.init_from else "")
                        for m in chosen) + ". Metrics in percent; TC uses "
            "OpenCV DIS flow (the official script uses RAFT).")
    sections = [
        Section("Results", text, [Table(["model", *METRICS, "train s"], rows)]),
        Section("Training curves", "Training loss per logged step.", [Plot("loss", _curves(results), "step", "loss")]),
        Section("Per-video consistency", "VC8 of each validation video (x = video index: " + ", ".join(videos) + ").",
                [Plot("VC8 per video", per_video, "video", "VC8 (%)", kind="bar")]),
    ]
    if video_path is not None:
        sections.append(Section("Overlays", "Ground truth, the baseline and the temporal models on the first "
                                "validation video.", [Video(video_path, " | ".join(["ground truth", *labels]))]))
    sections.extend(extra_sections)
    write_report(out / "report.html", sections, title="vidseg demo")
