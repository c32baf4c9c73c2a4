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


class DiskFullError(DataError):
    """The device ran out of space while writing ``path``; nothing complete-looking was left behind."""

    def __init__(self, path: str | os.PathLike, problem: str = "no space left on device") -> None:
        super().__init__(path, problem)

    def __str__(self) -> str:
        return f"no space left on device while writing {self.path}"


def os_error_message(exc: OSError) -> str:
    """One line for an :class:`OSError` that escaped to the CLI: the problem and the file it concerns.

    ``ENOSPC`` reads "no space left on device while writing FILE"; other errors read "FILE: strerror".
    """
    import errno

    name = exc.filename if exc.filename is not None else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device while writing {name or 'a file'}"
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{name}: {text}" if name else text
