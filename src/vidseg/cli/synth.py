"""``vidseg synth {vspw,vipseg,davis}``: write a synthetic dataset in the official layout."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import fraction, nonnegative_int, positive_int

HELP = "Write a synthetic VSPW, VIPSeg or DAVIS dataset in the exact official layout (for tests and demos)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vidseg.data.synth import DEFAULT_STUFF, DEFAULT_THINGS  # numpy only: keeps --help fast

    parser.add_argument("kind", choices=["vspw", "vipseg", "davis"], help="layout to write")
    parser.add_argument("--out", required=True, help="dataset root to create (absent or empty; required)")
    parser.add_argument("--videos", type=positive_int, default=4, help="number of videos")
    parser.add_argument("--frames", type=positive_int, default=30, help="frames per video")
    parser.add_argument("--size", default="480x853", help="frame size HxW")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed; the same arguments give the same bytes")
    parser.add_argument("--val-fraction", type=fraction, default=0.4, help="share of videos in the val split")
    parser.add_argument("--test-fraction", type=fraction, default=0.0,
                        help="share of videos in the test split (written without masks, as officially)")
    parser.add_argument("--stuff", default=",".join(DEFAULT_STUFF),
                        help="comma-separated stuff class names (VSPW/VIPSeg names)")
    parser.add_argument("--things", default=",".join(DEFAULT_THINGS),
                        help="comma-separated thing class names; '' for none")
    parser.add_argument("--objects", default="2,5", help="min,max thing objects per video")
    parser.add_argument("--degrade-prob", type=fraction, default=0.15,
                        help="probability that a frame is degraded (motion blur, noise, lighting)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier dataset of this layout at --out")
    parser.add_argument("--json", default=None, help="also write the summary as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _names(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if text is None:
        return default
    return tuple(n.strip() for n in text.split(",") if n.strip())


def build_config(args: argparse.Namespace):
    """The :class:`SynthConfig` the options describe."""
    from vidseg.data.synth import DEFAULT_STUFF, DEFAULT_THINGS, SynthConfig
    from vidseg.errors import ConfigError

    try:
        lo, hi = (int(v) for v in args.objects.split(","))
    except ValueError:
        raise ConfigError(f"--objects must look like MIN,MAX, got {args.objects!r}") from None
    things = _names(args.things, DEFAULT_THINGS)
    if not things:
        lo = hi = 0
    return SynthConfig(stuff=_names(args.stuff, DEFAULT_STUFF), things=things, objects=(lo, hi),
                       degrade_prob=args.degrade_prob)


def run(args: argparse.Namespace) -> int:
    from vidseg.data.synth import generate, parse_size
    from vidseg.tables import format_table, write_json

    config = build_config(args)
    summary = generate(args.kind, args.out, videos=args.videos, frames=args.frames, size=parse_size(args.size),
                       seed=args.seed, config=config, val_fraction=args.val_fraction,
                       test_fraction=args.test_fraction, overwrite=args.overwrite, progress=not args.quiet)
    rows = [[split, len(names), len(names) * summary.frames_per_video] for split, names in summary.splits.items()
            if names or args.kind != "davis"]
    print(f"wrote {summary.kind} dataset to {summary.root} ({summary.size[0]}x{summary.size[1]}, seed "
          f"{summary.seed}, {summary.num_frames / max(summary.seconds, 1e-9):.0f} frames/s)")
    print(format_table(rows, ["split", "videos", "frames"]))
    if args.json:
        write_json(args.json, {"kind": summary.kind, "root": str(summary.root), "size": list(summary.size),
                               "frames_per_video": summary.frames_per_video, "seed": summary.seed,
                               "splits": summary.splits, "seconds": summary.seconds})
    return 0
