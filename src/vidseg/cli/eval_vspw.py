"""``vidseg eval vspw``: mIoU / weighted IoU / mVC_n / TC of a VSPW prediction folder."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import add_quiet, positive_int

HELP = ("Score VSPW predictions (<pred>/<video>/<frame>.png, 0-based class ids 0..123 = raw GT value - 1) "
        "against a VSPW root.")
EPILOG = ("Label convention: VSPW ground-truth masks hold raw values (0 = others, 1..124 = classes, 255 = void); "
          "the official scoring shifts them (0 and 255 -> ignore, v -> v - 1), so predictions are 0-based class ids "
          "0..123. Predictions saved as raw values 1..124 need --pred-offset 1; a root whose masks are already "
          "shifted needs --gt-format shifted. Printed tables are in percent; the --json file holds fractions.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="VSPW root holding <split>.txt and data/<video>/{mask,origin}")
    parser.add_argument("--pred", required=True,
                        help="prediction folder <video>/<frame>.png (single-channel, 0-based class ids 0..123)")
    parser.add_argument("--pred-offset", type=int, choices=[0, 1], default=0,
                        help="0: predictions are 0-based class ids 0..123 (VSPW convention); 1: 1-based raw values "
                             "1..124 (0 = others, allowed only where the GT ignores the pixel)")
    parser.add_argument("--gt-format", choices=["raw", "shifted"], default="raw",
                        help="raw: VSPW masks as released (0 others, 1..124, 255 void); shifted: masks already "
                             "shifted to 0..123 with 255 = ignore")
    parser.add_argument("--split", default="val", help="split file <root>/<split>.txt, or 'all' for every video")
    parser.add_argument("--metrics", default="miou,wiou,vc8,vc16",
                        help="comma list of miou, wiou, pixel_acc, vc<n> (any n), tc")
    parser.add_argument("--protocol", default="official", choices=["official", "strict"],
                        help="official: numbers of the official scripts (quirks kept); strict: paper formulas, "
                             "questionable input rejected")
    parser.add_argument("--miou-rule", default="official", choices=["official", "mmseg"],
                        help="classes averaged in mIoU: present in GT (official) or non-empty union (mmseg)")
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes (results do not depend on it)")
    parser.add_argument("--json", metavar="FILE", help="write the results (fractions in [0,1]) to this JSON file")
    parser.add_argument("--flow", default="dis",
                        help="TC flow: 'dis' (OpenCV DIS, CPU), 'dis:fast', 'raft' (RAFT, needs --flow-weights; "
                             "the official TC), or a folder <video>/<frame>.npy|.flo holding the flow from each "
                             "frame to the next")
    parser.add_argument("--flow-weights", default=None,
                        help="local RAFT checkpoint for --flow raft (raft-things.pth as the official TC, or "
                             "another released RAFT / RAFT-small checkpoint)")
    parser.add_argument("--flow-cache", default=None,
                        help="folder caching each computed flow as .flo (written once, reused by later runs and "
                             "other models' predictions on the same dataset)")
    parser.add_argument("--device", default="cpu", help="torch device for RAFT: cpu, cuda, cuda:1")
    parser.add_argument("--tc-videos", default="100",
                        help="TC over the first N videos of the split (official: 100) or 'all'")
    parser.add_argument("--per-class", action="store_true", help="also print the per-class IoU table")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from vidseg.errors import ConfigError
    from vidseg.flow.factory import build_flow_backend
    from vidseg.metrics.vspw import evaluate_vspw_folder
    from vidseg.tables import format_table, jsonable, write_json

    if args.tc_videos == "all":
        tc_videos = None
    elif args.tc_videos.isdigit():
        tc_videos = int(args.tc_videos)
    else:
        raise ConfigError(f"--tc-videos must be a number or 'all', got {args.tc_videos!r}")
    flow = build_flow_backend(args.flow, weights=args.flow_weights, device=args.device, cache=args.flow_cache)
    res = evaluate_vspw_folder(args.root, args.pred, split=args.split, metrics=args.metrics,
                               protocol=args.protocol, miou_rule=args.miou_rule, workers=args.workers,
                               flow=flow, tc_videos=tc_videos, progress=not args.quiet,
                               gt_format=args.gt_format, pred_offset=args.pred_offset)
    keys = [k for k in res if k in ("mIoU", "WIoU", "pixel_acc", "TC") or (k.startswith("mVC") and k[3:].isdigit())]
    rows = [[k, 100.0 * res[k]] for k in keys]
    print(f"VSPW {args.split}: {res['num_videos']} videos, {res['num_frames']} frames, protocol {res['protocol']}")
    print(format_table(rows, ["metric", "(%)"]))
    if args.per_class:
        pc = [[name, "n/a" if v is None else 100.0 * v] for name, v in res["per_class"].items()]
        print(format_table(pc, ["class", "IoU (%)"]))
    if args.json:
        write_json(args.json, jsonable(res))
    return 0
