"""Argument types for numbers on the command line, checked by the parser.

``parser.add_argument("--height", type=positive_int)`` makes argparse print
``vidseg convert: error: argument --height: must be an integer >= 1, got '0'`` (the option is named by argparse)
and exit 2, before any work starts. One helper for every count, size and class number of every command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def float_in(low: float, high: float | None = None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` accepting finite floats in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    bound = f"{'>' if low_open else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {bound}, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        if value != value or too_low or (high is not None and value > high) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a number {bound}, got {text!r}")
        return value

    parse.__name__ = f"number {bound}"
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)
positive_float = float_in(0.0, low_open=True)
nonnegative_float = float_in(0.0)
fraction = float_in(0.0, 1.0)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default shown once: not for required options, switches, ``None``
    defaults, hidden options, or help texts that already say their default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.required or action.default in (None, False, argparse.SUPPRESS) or "default" in text
                or isinstance(action, argparse._StoreTrueAction) or action.help == argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def add_partial_weights(parser: argparse.ArgumentParser) -> None:
    """``--partial-weights``: strict loading unless given (``load_model(strict=not args.partial_weights)``);
    the one definition of the switch for every command that loads ``--weights``."""
    parser.add_argument("--partial-weights", action="store_true",
                        help="load the tensors of --weights that match the model and warn about the rest (e.g. a "
                             "backbone-only checkpoint); by default any missing or unexpected tensor is an error")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` (no progress bars), with the older ``--no-progress`` as a hidden alias."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)
