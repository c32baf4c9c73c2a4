"""Entry point of the ``vidseg`` command.

Each command lives in its own module ``vidseg.cli.<module>`` exposing::

    HELP: str                                  # one line for ``vidseg --help``
    def add_arguments(parser) -> None          # options, each with a help text
    def run(args) -> int | None                # calls the library; returns the exit code

Command modules import heavy dependencies inside ``run`` so that ``vidseg --help`` stays fast.
Errors derived from :class:`vidseg.errors.VidsegError`, and any ``OSError`` (disk full, permission denied), print
as one line and exit with status 2; a closed stdout (``| head``) ends the printing quietly, not the command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from vidseg.cli.argtypes import HelpFormatter
from vidseg.errors import VidsegError, os_error_message

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
    "predict": "predict",
    "export": "export",
    "train": "train",
    "pseudo-label": "pseudo_label",
    "annotate": "annotate",
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
                             formatter_class=HelpFormatter, epilog=getattr(module, "EPILOG", None))
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


class _PipeSafeStdout:
    """Stands in for ``sys.stdout`` while a command runs: a reader that closed the pipe (``vidseg ... | head -1``)
    stops the printing, not the command, so the files it was asked to write are still written."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.broken = True

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _silence_closed_stdout() -> None:
    """Point the stdout descriptor at /dev/null so the interpreter's final flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real descriptor (e.g. captured in tests)
        pass


def _run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; every expected failure becomes one line on stderr and a non-zero code."""
    try:
        return int(args._run(args) or 0)
    except VidsegError as exc:
        message = str(exc)
    except OSError as exc:  # disk full, permission denied, a folder where a file was expected ...
        message = os_error_message(exc)
    except KeyboardInterrupt:
        print(f"vidseg {args.command}: interrupted", file=sys.stderr)
        return 130
    print(f"vidseg {args.command}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 1
    real, guard = sys.stdout, _PipeSafeStdout(sys.stdout)
    sys.stdout, shown = guard, warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"vidseg {args.command}: warning: {message}\n"
    try:
        code = _run_command(args)
        guard.flush()
    finally:
        sys.stdout, warnings.formatwarning = real, shown
    if guard.broken:
        _silence_closed_stdout()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
