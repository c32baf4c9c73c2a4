"""Small file helpers used everywhere: atomic writes and image reading with clear errors."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidseg.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error remove it.

    A reader never sees a half-written file: the final name appears only when the content is complete.
    The temporary name keeps the suffix so that writers choosing a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def read_image(path: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """Read an image file into a numpy array, raising :class:`DataError` naming the file on any problem.

    Args:
        path: image file.
        mode: if given, the PIL mode the file must have (e.g. ``"L"``, ``"P"``, ``"RGB"``, ``"I;16"``);
            ``"RGB"`` converts other colour modes, the others are checked, not converted.

    Returns:
        array [H, W] or [H, W, C] as stored (palette indices for ``P``).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    if size == 0:
        raise DataError(path, "zero-byte image file")
    try:
        with Image.open(path) as img:
            img.load()
            if mode == "RGB" and img.mode != "RGB":
                img = img.convert("RGB")
            elif mode is not None and img.mode != mode and not (mode.startswith("I") and img.mode.startswith("I")):
                raise DataError(path, f"image mode is {img.mode}, expected {mode}")
            return np.asarray(img)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable or truncated image ({exc})") from None
