"""``vidseg demo``: the end-to-end run on built-in synthetic VSPW data (train, evaluate, report)."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import nonnegative_int, positive_int

HELP = ("Run the demo: generate synthetic VSPW data, train a SegFormer baseline and temporal models (CFFM, TCB) "
        "on this CPU, evaluate mIoU/WIoU/mVC8/mVC16/TC; synthetic VIPSeg: Clip-PanoFCN vs PanopticFCN + IoU "
        "association (VPQ, STQ); synthetic DAVIS: STCNN vs its spatial branch vs copying the first mask (J&F); "
        "write summary.json and report.html.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vidseg.demo.data import DemoSize

    d = DemoSize()
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the synthetic data and of training")
    parser.add_argument("--videos", type=positive_int, default=d.videos, help="synthetic videos to generate")
    parser.add_argument("--frames", type=positive_int, default=d.frames, help="frames per video")
    parser.add_argument("--size", default=f"{d.height}x{d.width}", help="frame size HxW")
    parser.add_argument("--iters", type=positive_int, default=d.iters, help="training iterations per model")
    parser.add_argument("--batch", type=positive_int, default=d.batch, help="clips per training batch")
    parser.add_argument("--no-tcb", action="store_true", help="skip the TCB model")
    parser.add_argument("--parts", default="semantic,panoptic,vos",
                        help="comma-separated demo parts: semantic (VSPW; --videos/--frames/--size/--iters/--batch "
                             "size it), panoptic (VIPSeg), vos (DAVIS)")
    parser.add_argument("--basic", action="store_true",
                        help="no training: only write the synthetic dataset, an overlay video and a ground-truth "
                             "contact sheet")
    parser.add_argument("--json", default=None, help="also write the summary (or, with --basic, the outputs) "
                                                     "as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_basic(args: argparse.Namespace, size: tuple[int, int]) -> int:
    from vidseg.demo.data import run_basic_demo
    from vidseg.tables import format_table, write_json

    result = run_basic_demo(args.out, videos=args.videos, frames=args.frames, size=size, seed=args.seed,
                            progress=not args.quiet)
    print(f"demo finished in {result.seconds:.1f} s ({result.videos} videos, {result.frames} frames)")
    print(format_table(result.rows(), ["output", "path"]))
    if args.json:
        write_json(args.json, {"seconds": result.seconds, "videos": result.videos, "frames": result.frames,
                               "outputs": dict(result.rows())})
    return 0


def run(args: argparse.Namespace) -> int:
    from vidseg.data.synth import parse_size

    height, width = parse_size(args.size)
    if args.basic:
        return _run_basic(args, (height, width))
    from vidseg.demo.data import DemoSize
    from vidseg.demo.runs import run_demo
    from vidseg.tables import write_json

    d = DemoSize()
    size = DemoSize(videos=args.videos, frames=args.frames, height=height, width=width, iters=args.iters,
                    batch=args.batch, lr=d.lr)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    summary = run_demo(args.out, size=size, tcb=not args.no_tcb, seed=args.seed, progress=not args.quiet,
                       parts=parts)
    print(f"wrote {args.out}/summary.json and {args.out}/report.html")
    if args.json:
        write_json(args.json, summary)
    return 0
