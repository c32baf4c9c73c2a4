"""``vidseg eval youtube-objects``: mean IoU per category and overall of a YouTube-Objects results folder."""

from __future__ import annotations

import argparse

HELP = ("YouTube-Objects mIoU (mean over categories of the per-video mean frame IoU) of <pred>/<category>/<video>/"
        "<frame>.png, e.g. 'vidseg segment --model stcnn_r101 --out PRED/<category>' per video.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="ground-truth root <category>/<video>/<frame>.png (annotated frames)")
    parser.add_argument("--pred", required=True, help="results root with the same relative paths (non-zero = object)")
    parser.add_argument("--json", default=None, help="write the results (fractions) to this JSON file")


def run(args: argparse.Namespace) -> int:
    from vidseg.metrics.youtube_objects import evaluate_youtube_objects_folder
    from vidseg.tables import format_table, jsonable, write_json

    res = evaluate_youtube_objects_folder(args.gt, args.pred)
    rows = [[c, 100.0 * v] for c, v in res["per_category"].items()]
    rows += [["mIoU (categories)", 100.0 * res["mIoU"]], ["mIoU (frames)", 100.0 * res["frame_mIoU"]]]
    print(f"YouTube-Objects ({len(res['per_video'])} videos, {res['num_frames']} annotated frames)")
    print(format_table(rows, ["category", "IoU"]))
    if args.json:
        write_json(args.json, jsonable(res))
    return 0
