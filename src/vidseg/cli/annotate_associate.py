"""``vidseg annotate associate IN_DIR --out OUT_DIR``: per-frame instance ids -> consistent track ids (VIPSeg §3.4.1)."""

from __future__ import annotations

import argparse

HELP = ("Link per-frame instance masks into video tracks by IoU + Hungarian matching (VIPSeg raw panomask layout "
        "<video>/<frame>.png in and out).")
EPILOG = ("Input: raw VIPSeg panomasks (16-bit PNG: 0 void, stuff = category + 1, thing = (category + 1) * 100 + "
          "instance) whose instance numbers may differ from frame to frame. Output: the same masks with each "
          "thing's instance replaced by its track number within its category, so an object keeps its value "
          "through the video. IN_DIR may be a root of video folders or one video's folder.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vidseg.cli.argtypes import nonnegative_float

    parser.add_argument("in_dir", help="raw panomask root (<video>/<frame>.png) or one video folder")
    parser.add_argument("--out", required=True, help="output root; masks go to OUT/<video>/<frame>.png")
    parser.add_argument("--min-iou", type=nonnegative_float, default=0.0,
                        help="an instance continues a track only with IoU above this (0: any overlap)")
    parser.add_argument("--json", default=None, help="also write the summary (tracks per video) to this JSON file")


def run(args: argparse.Namespace) -> int:
    from vidseg.annotate.associate_folder import associate_folder
    from vidseg.tables import format_table, write_json

    summary = associate_folder(args.in_dir, args.out, min_iou=args.min_iou)
    print(format_table([[v, n] for v, n in summary.tracks.items()], ["video", "tracks"]))
    print(f"wrote {summary.frames} masks of {summary.videos} videos to {args.out}")
    if args.json:
        write_json(args.json, {"videos": summary.videos, "frames": summary.frames, "tracks": summary.tracks})
    return 0
