"""Entry point of the ``vidseg`` command.

Each command lives in its own module ``vidseg.cli.<module>`` exposing::

    HELP: str                                  # one line for ``vidseg --help``
    def add_arguments(parser) -> None          # options, each with a help text
    def run(args) -> int | None                # calls the library; returns the exit code

Command modules import heavy dependencies inside ``run`` so that ``vidseg --help`` stays fast.
Errors derived from :class:`vidseg.errors.VidsegError` print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vidseg.errors import VidsegError

# command name -> module under vidseg.cli
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "info": "info",
    "synth": "synth",
    "dream": "dream",
    "convert": "convert",
    "eval": "eval",
    "models": "models",
    "segment": "segment",
    "export": "export",
    "train": "train",
    "pseudo-label": "pseudo_label",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with one sub-parser per available command."""
    from vidseg import __version__

    parser = argparse.ArgumentParser(
        prog="vidseg",
        description="Video segmentation toolkit: VSPW scene parsing, VIPSeg panoptic segmentation, DAVIS "
        "object segmentation. Run 'vidseg <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"vidseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"vidseg.cli.{module_name}")  # a broken command module is an error
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP,
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 1
    try:
        code = args._run(args)
    except VidsegError as exc:
        print(f"vidseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidseg {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
