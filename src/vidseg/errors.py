"""Error types raised for bad input.

Every error that reaches a user names the file (or object) and the problem in one line, so the CLI can
print ``str(error)`` and exit non-zero without a traceback.
"""

from __future__ import annotations

import os


class VidsegError(Exception):
    """Base class of all errors vidseg raises on purpose (bad input, bad configuration)."""


class DataError(VidsegError):
    """A file or folder of a dataset, a prediction or a video is missing, unreadable or inconsistent.

    Args:
        path: the file or folder concerned.
        problem: what is wrong with it, as a short phrase.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # picklable, so an error raised in a worker process reaches the parent intact
        return (type(self), (self.path, self.problem))


class ConfigError(VidsegError):
    """A configuration, an option or a model name is invalid."""
