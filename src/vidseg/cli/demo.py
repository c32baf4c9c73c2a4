"""``vidseg demo``: generate a small synthetic dataset and draw it (overlay video, ground-truth sheet)."""

from __future__ import annotations

import argparse

HELP = "Run the demo: a small synthetic VSPW dataset, an overlay video and a ground-truth contact sheet."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="vidseg-demo", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--videos", type=int, default=2, help="synthetic videos to generate")
    parser.add_argument("--frames", type=int, default=24, help="frames per video")
    parser.add_argument("--size", default="240x426", help="frame size HxW")
    parser.add_argument("--json", default=None, help="also write what the demo wrote as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from vidseg.cli.common import format_table, write_json
    from vidseg.data.synthetic import parse_size
    from vidseg.viz.demo import run_basic_demo

    result = run_basic_demo(args.out, videos=args.videos, frames=args.frames, size=parse_size(args.size),
                            seed=args.seed, progress=not args.quiet)
    print(f"demo finished in {result.seconds:.1f} s ({result.videos} videos, {result.frames} frames)")
    print(format_table(result.rows(), ["output", "path"]))
    if args.json:
        write_json(args.json, {"seconds": result.seconds, "videos": result.videos, "frames": result.frames,
                               "outputs": dict(result.rows())})
    return 0
