"""``vidseg eval {vspw,vipseg,davis,youtube-objects}``: score predictions against ground truth."""

from __future__ import annotations

import argparse
import importlib

from vidseg.cli.argtypes import HelpFormatter

HELP = "Evaluate predictions (VSPW mIoU/WIoU/VC/TC, VIPSeg VPQ/STQ, DAVIS J/F/T) exactly as the official code."

# benchmark -> module under vidseg.cli implementing add_arguments/run for that benchmark
BENCHMARKS = {"vspw": "eval_vspw", "vipseg": "eval_vipseg", "davis": "eval_davis",
              "youtube-objects": "eval_youtube_objects"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="<benchmark>", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(f"vidseg.cli.{module_name}")  # a broken module is an error, never skipped
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=HelpFormatter, epilog=getattr(module, "EPILOG", None))
        module.add_arguments(p)
        p.set_defaults(_eval_run=module.run)


def run(args: argparse.Namespace) -> int | None:
    return args._eval_run(args)
