"""``vidseg annotate propagate FRAMES_DIR --keyframes LABELS_DIR --out OUT``: key-frame labels -> every frame (VSPW §3.2.2)."""

from __future__ import annotations

import argparse

HELP = ("Propagate the labels of annotated key frames bidirectionally to every frame of a video (optical flow); "
        "write VSPW masks, per-frame spot maps and review.html (worst frames first).")
EPILOG = ("FRAMES_DIR: one video's frames (<stem>.jpg/.png, or a VSPW video folder with origin/). LABELS_DIR: "
          "key frames as VSPW raw masks <stem>.png (0 others, 1..K classes, 255 void). OUT: mask/<stem>.png, "
          "spots/<stem>.png (255 where forward and backward propagation disagree), review.html, propagation.json. "
          "Re-running with added or refined key frames recomputes only the intervals whose bounding key frames "
          "(or frames, or flow) changed; an interrupted run resumes.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vidseg.cli.argtypes import add_quiet, float_in, int_at_least

    parser.add_argument("frames_dir", help="one video's frame folder")
    parser.add_argument("--keyframes", required=True, help="folder of key-frame label PNGs named like the frames")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--flow", default="dis",
                        help="dis, dis:<preset>, farneback, raft / raft-small / raft-standard (with --flow-weights), "
                             "or a folder of flow files: <stem>.npy|.flo (to the next frame) and backward/<stem>.npy "
                             "(to the previous frame)")
    parser.add_argument("--flow-weights", default=None, help="local RAFT checkpoint for --flow raft")
    parser.add_argument("--device", default="cpu", help="torch device for RAFT")
    parser.add_argument("--tolerance", type=float_in(0.0, low_open=True), default=1.5,
                        help="forward/backward flow agreement (pixels) for a propagated pixel to stay confident")
    parser.add_argument("--num-classes", type=int_at_least(1), default=124,
                        help="K: key-frame values must be 0..K or 255")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from vidseg.annotate.propagate_folder import propagate_folder

    progress = None if getattr(args, "quiet", False) else print
    summary = propagate_folder(args.frames_dir, args.keyframes, args.out, flow=args.flow, weights=args.flow_weights,
                               device=args.device, tolerance=args.tolerance, num_classes=args.num_classes,
                               progress=progress)
    print(f"{summary.frames} frames, {summary.keyframes} key frames: {summary.intervals_recomputed} intervals "
          f"propagated ({len(summary.recomputed)} frames), {summary.intervals_kept} up to date; "
          f"review {args.out}/review.html")
    if summary.worst and summary.worst[0][1] > 0:
        print("most spots: " + ", ".join(f"{s} {100 * v:.2f}%" for s, v in summary.worst if v > 0))
    return 0
