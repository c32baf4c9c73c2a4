"""``vidseg convert {vspw-480p,vipseg-720p}``: official layout conversions (resumable, atomic)."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import HelpFormatter, nonnegative_int, positive_int

HELP = "Convert datasets: VSPW to VSPW-480p, raw VIPSeg to the 720P COCO-style panoptic layout."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="conversion", metavar="<conversion>", required=True)
    vspw = sub.add_parser(
        "vspw-480p", help="resize VSPW to 480p (frames bilinear, masks nearest), as change2_480p.py",
        description="Resize a VSPW root to short side 480: frames BILINEAR, masks NEAREST, size "
        "(int(480*w/h), 480), as the official change2_480p.py. Interrupted runs resume.",
        formatter_class=HelpFormatter)
    vspw.add_argument("--src", required=True, help="VSPW root holding data/ and the split files")
    vspw.add_argument("--out", required=True, help="output root (created; an interrupted run is resumed)")
    vspw.add_argument("--height", type=positive_int, default=480, help="target frame height")
    vspw.add_argument("--quiet", action="store_true", help="no progress bar")
    vip = sub.add_parser(
        "vipseg-720p", help="raw VIPSeg -> 720P images, RGB-id panomasksRGB and panoptic_gt_VIPSeg*.json",
        description="Turn the raw VIPSeg release (imgs/, 16-bit panomasks/) into the 720P COCO-style layout "
        "(images/, panomasks/, panomasksRGB/, panoptic_gt_VIPSeg.json and the train/val split JSONs) as "
        "change2_720p.py + create_panoptic_video_labels.py + splitjson.py do, without panopticapi. "
        "Thing ids are random colours near the category colour, deterministic for --seed.",
        formatter_class=HelpFormatter)
    vip.add_argument("--src", required=True, help="raw VIPSeg root holding imgs/, panomasks/ and split files")
    vip.add_argument("--out", required=True, help="output root, e.g. VIPSeg_720P (an interrupted run is resumed)")
    vip.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the thing segment colours (ids)")
    vip.add_argument("--height", type=positive_int, default=720, help="target frame height")
    vip.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vidseg.data.tools.convert import convert_vipseg_720p, convert_vspw_480p
    from vidseg.tables import format_table

    if args.conversion == "vspw-480p":
        counts = convert_vspw_480p(args.src, args.out, height=args.height, progress=not args.quiet)
    else:
        counts = convert_vipseg_720p(args.src, args.out, seed=args.seed, height=args.height,
                                     progress=not args.quiet)
    print(format_table([[k, v] for k, v in counts.items()], ["converted", "count"]))
    print(f"wrote {args.out}")
    return 0
