"""``vidseg annotate <tool>``: the dataset papers' annotation tools.

One sub-command per tool, each a module under ``vidseg.cli`` with ``HELP``, ``add_arguments(parser)`` and
``run(args)``; add a tool by adding one line to :data:`TOOLS`.
"""

from __future__ import annotations

import argparse
import importlib

HELP = ("Annotation tools: propagate key-frame labels to every frame (VSPW), associate per-frame instance masks "
        "into video tracks (VIPSeg).")

# tool -> module under vidseg.cli implementing HELP / add_arguments / run
TOOLS = {"associate": "annotate_associate", "propagate": "annotate_propagate"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="tool", metavar="<tool>", required=True)
    for name, module_name in TOOLS.items():
        module = importlib.import_module(f"vidseg.cli.{module_name}")  # a broken module is an error, never skipped
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=parser.formatter_class, epilog=getattr(module, "EPILOG", None))
        module.add_arguments(p)
        p.set_defaults(_annotate_run=module.run)


def run(args: argparse.Namespace) -> int | None:
    return args._annotate_run(args)
