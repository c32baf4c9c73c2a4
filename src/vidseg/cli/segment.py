"""``vidseg segment``: segment a video file or a frame folder with a registered model.

Argument parsing only: the masks are written by :func:`vidseg.inference.segment.segment_video` (VSPW-format
PNGs in ``<out>/<video>/``, resumable, optional overlay mp4). With no test options the model runs its official
test pipeline (registry ``official_settings``: resize, normalisation, clip rule, memory); TCB's supports before
frame 0 are clamped (user videos) unless ``--short-video wrap`` asks for the official loader's wrap-around.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidseg.cli.argtypes import positive_float, positive_int
from vidseg.cli.test_options import add_test_arguments, settings_from_args

HELP = "Segment a video file or frame folder: per-frame VSPW-format PNG masks and an optional overlay video."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file (mp4/mov/avi/webm/mkv) or folder of frames")
    parser.add_argument("--model", required=True, help="registered model name (see 'vidseg models')")
    parser.add_argument("--weights", default=None,
                        help="local checkpoint (.pth/.safetensors or Hugging Face folder; official layouts are "
                             "converted); without it the model has random weights")
    parser.add_argument("--partial-weights", action="store_true",
                        help="load the tensors of --weights that match the model and warn about the rest (e.g. a "
                             "backbone-only checkpoint); by default any missing or unexpected tensor is an error")
    parser.add_argument("--out", required=True, help="output folder; masks go to OUT/<video>/<frame>.png")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the masks in OUT/<video>/ when they were made by another model, other weights "
                             "or other options (by default such a folder is refused; the same run resumes)")
    parser.add_argument("--overlay", default=None, help="also write an overlay mp4 to this path")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run the model")
    parser.add_argument("--num-classes", type=positive_int, default=124, help="classes of the model (VSPW: 124)")
    add_test_arguments(parser)
    parser.add_argument("--fps", type=positive_float, default=None, help="overlay frame rate (default: the video's, or 15)")
    parser.add_argument("--json", default=None, help="also write the run summary to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vidseg.errors import DataError
    from vidseg.inference.segment import segment_video, video_name
    from vidseg.models import load_model, make_predictor
    from vidseg.provenance import make_record, prepare_output_folder
    from vidseg.tables import format_table, write_json

    video = Path(args.video)
    if not video.exists():
        raise DataError(video, "video file or frame folder not found")
    settings = settings_from_args(args.model, args, short_video="clamp")
    if args.tta and not settings.official_tta:
        print(f"note: --tta on {args.model} is vidseg's multi-scale test ({settings.tta_dataset} ratios + flip); "
              "the official code has no working one for this model")
    model = load_model(args.model, args.weights, num_classes=args.num_classes, strict=not args.partial_weights,
                       **settings.model_kwargs)
    predictor = make_predictor(args.model, model, device=args.device, keep_images=args.overlay is not None,
                               **settings.predictor_options(tta=args.tta))
    out_dir = Path(args.out) / video_name(video)
    record = make_record("segment", args.model, args.weights,
                         {"settings": settings.to_dict(), "tta": bool(args.tta), "num_classes": args.num_classes,
                          "partial_weights": bool(args.partial_weights)})
    prepare_output_folder(out_dir, record, outputs=["*.png"], overwrite=args.overwrite)
    row = segment_video(predictor, video, out_dir,
                        overlay=Path(args.overlay) if args.overlay else None, fps=args.fps,
                        progress=not args.quiet)
    print(format_table([list(row.values())], list(row)))
    if args.json:
        write_json(args.json, {"model": args.model, "mode": settings.mode, "tta": bool(args.tta),
                               "official_settings": settings.to_dict(), **row})
    return 0
