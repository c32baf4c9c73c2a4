"""``vidseg segment``: segment a video file or a frame folder with a registered model.

Argument parsing only: the masks are written by :func:`vidseg.inference.segment.segment_video` (VSPW-format
PNGs in ``<out>/<video>/``, resumable, optional overlay mp4).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Segment a video file or frame folder: per-frame VSPW-format PNG masks and an optional overlay video."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file (mp4/mov/avi/webm/mkv) or folder of frames")
    parser.add_argument("--model", required=True, help="registered model name (see 'vidseg models')")
    parser.add_argument("--weights", default=None,
                        help="local checkpoint (.pth/.safetensors or Hugging Face folder; official layouts are "
                             "converted); without it the model has random weights")
    parser.add_argument("--out", required=True, help="output folder; masks go to OUT/<video>/<frame>.png")
    parser.add_argument("--overlay", default=None, help="also write an overlay mp4 to this path")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: scales 0.5-1.75 and flip")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run the model")
    parser.add_argument("--mode", default="online", choices=["online", "offline"],
                        help="online: past frames only; offline: may use future frames (TCB's test rule)")
    parser.add_argument("--num-classes", type=int, default=124, help="classes of the model (VSPW: 124)")
    parser.add_argument("--img-scale", default=None, metavar="LONGxSHORT",
                        help="keep-ratio test resize, e.g. 853x480 (CFFM's); default: frames as they are")
    parser.add_argument("--size-divisor", type=int, default=1,
                        help="round the model input size up to a multiple of this (CFFM uses 32)")
    parser.add_argument("--fps", type=float, default=None, help="overlay frame rate (default: the video's, or 15)")
    parser.add_argument("--json", default=None, help="also write the run summary to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_scale(text: str | None) -> tuple[int, int] | None:
    """``"853x480"`` -> (853, 480); None stays None."""
    from vidseg.tables import parse_size

    return None if text is None else parse_size(text, "--img-scale", "853x480")


def run(args: argparse.Namespace) -> int:
    from vidseg.errors import DataError
    from vidseg.inference import TTA
    from vidseg.inference.segment import segment_video, video_name
    from vidseg.models import load_model, make_predictor
    from vidseg.tables import format_table, write_json

    video = Path(args.video)
    if not video.exists():
        raise DataError(video, "video file or frame folder not found")
    model = load_model(args.model, args.weights, num_classes=args.num_classes)
    predictor = make_predictor(args.model, model, mode=args.mode, device=args.device,
                               tta=TTA() if args.tta else None, img_scale=parse_scale(args.img_scale),
                               size_divisor=args.size_divisor, keep_images=args.overlay is not None)
    row = segment_video(predictor, video, Path(args.out) / video_name(video),
                        overlay=Path(args.overlay) if args.overlay else None, fps=args.fps,
                        progress=not args.quiet)
    print(format_table([list(row.values())], list(row)))
    if args.json:
        write_json(args.json, {"model": args.model, "mode": args.mode, "tta": bool(args.tta), **row})
    return 0
