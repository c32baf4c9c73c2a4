"""``vidseg info PATH``: detect a dataset layout (or video) and print its statistics; ``--check`` verifies it."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import positive_int

HELP = "Describe a dataset, video file or frame folder (layout, Table-1 statistics); --check verifies every file."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset root (VSPW, VSPW-480p, VIPSeg raw or 720P, DAVIS), a video file "
                        "or a folder of frames")
    parser.add_argument("--layout", default=None,
                        choices=["vspw", "vspw-480p", "vipseg-raw", "vipseg-720p", "davis", "video", "frames"],
                        help="layout of PATH (detected when omitted)")
    parser.add_argument("--check", action="store_true",
                        help="decode and verify every file, list every problem, exit 1 if there is any")
    parser.add_argument("--no-labels", action="store_true",
                        help="skip decoding masks (no category/instance statistics; much faster)")
    parser.add_argument("--max-videos", type=positive_int, default=None, help="only describe the first N videos")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the result as JSON to OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _stats_rows(stats: dict) -> list[list]:
    rows: list[list] = [["layout", stats["layout"]]]
    for key in ("videos", "labelled_videos", "frames", "annotated_frames", "fps", "duration_s", "codec"):
        if key in stats:
            rows.append([key.replace("_", " "), stats[key]])
    if "frames_per_video" in stats:
        f = stats["frames_per_video"]
        rows.append(["frames per video (min/mean/max)", f"{f['min']} / {f['mean']:.1f} / {f['max']}"])
    res = stats.get("resolutions", {})
    shown = ", ".join(f"{k} ({v})" for k, v in list(res.items())[:4]) + (" ..." if len(res) > 4 else "")
    rows.append(["resolutions HxW (frames)", shown])
    if "categories" in stats:
        c = stats["categories"]
        rows += [["categories (things/stuff)", f"{c['total']} ({c['things']}/{c['stuff']})"],
                 ["categories per frame", c["per_frame_mean"]], ["categories per video", c["per_video_mean"]]]
    if "instances" in stats:
        i = stats["instances"]
        name = "objects" if stats["layout"] == "davis" else "thing instances"
        rows += [[f"{name}", i["total"]], [f"{name} per video", i["per_video_mean"]],
                 [f"{name} per frame", i["per_frame_mean"]]]
    return rows


def run(args: argparse.Namespace) -> int:
    from vidseg.tables import format_table, write_json

    if args.check:
        from vidseg.data.tools.check import check_path

        report = check_path(args.path, args.layout, progress=not args.quiet)
        for problem in report.problems:
            print(problem)
        print(f"{report.layout}: {report.files_checked} files checked, {len(report.problems)} problems")
        if args.json:
            write_json(args.json, report.to_dict())
        return 0 if report.ok else 1
    from vidseg.data.tools.stats import dataset_stats

    stats = dataset_stats(args.path, args.layout, labels=not args.no_labels, max_videos=args.max_videos,
                          progress=not args.quiet)
    print(format_table(_stats_rows(stats), [str(args.path), "value"]))
    if args.json:
        write_json(args.json, stats)
    return 0
