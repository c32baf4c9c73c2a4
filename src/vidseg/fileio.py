"""Small file helpers used everywhere: atomic writes and image reading with clear errors."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidseg.errors import DataError, DiskFullError

TMP_MARK = ".tmp"  # every temporary name of :func:`atomic_path` is ``.<stem>.<random>.tmp<suffix>``
STALE_SECONDS = 3600.0  # a temporary file older than this belongs to a killed run


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _prepare_parent(path: Path) -> None:
    if path.is_dir():
        raise DataError(path, "is a folder; expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(path.parent, "is a file; expected a folder to write into") from None


def remove_stale_temporaries(folder: str | os.PathLike, max_age: float = STALE_SECONDS) -> list[Path]:
    """Delete :func:`atomic_path` temporaries in ``folder`` (not recursive) older than ``max_age`` seconds.

    A killed process leaves its temporary file behind; the next run in the same folder calls this.
    Returns the removed paths.
    """
    import time

    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for tmp in folder.glob(f".*{TMP_MARK}*"):
        with contextlib.suppress(OSError):
            if tmp.is_file() and now - tmp.stat().st_mtime > max_age:
                tmp.unlink()
                removed.append(tmp)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_orphaned_staging(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Delete staging folders ``<parent>/<prefix><pid>`` whose process no longer runs (a killed earlier run).

    Writers that build a result in a hidden folder named after their process id (e.g. ``.VSPW.synth-1234``) call
    this before starting, so a killed run's tens of megabytes do not stay forever. Returns the removed paths.
    """
    import shutil

    removed = []
    for folder in Path(parent).glob(f"{prefix}*"):
        pid = folder.name[len(prefix):]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error remove it.

    A reader never sees a half-written file: the final name appears only when the content is complete.
    The temporary name keeps the suffix so that writers choosing a format by extension still work. The
    result has the permissions of a plainly created file (``0o666`` less the umask), not ``mkstemp``'s 0600.

    Raises:
        DataError: ``path`` is a folder, or its parent is a file.
        DiskFullError: the device ran out of space (the temporary file is removed, ``path`` is untouched).
    """
    path = Path(path)
    _prepare_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{TMP_MARK}{path.suffix}", dir=path.parent)
    except OSError as exc:
        _raise_disk_full(exc, path)
        raise
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        _raise_disk_full(exc, path)
        raise


def _raise_disk_full(exc: BaseException, path: Path) -> None:
    """Re-raise an out-of-space error (also one wrapped by a writer, e.g. torch's) as :class:`DiskFullError`."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path) from exc
        seen = seen.__cause__ or seen.__context__
    if "No space left on device" in str(exc):  # a library that wrapped the OSError in its own type
        raise DiskFullError(path) from exc


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, never removed) while the block runs.

    ``fcntl.flock`` on a file opened here: it excludes other processes and other threads of this process (each
    call opens its own file description) and is released when the holder exits, even if it is killed. Use it
    around a read-modify-write of a shared file that several runs may update at once.
    """
    import fcntl

    path = Path(path)
    _prepare_parent(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def exif_orientation(img) -> int:
    """EXIF orientation tag (1..8) of an open PIL image; 1 (upright) when absent or invalid."""
    value = img.getexif().get(EXIF_ORIENTATION, 1)
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(img):
    """The PIL image turned upright by its EXIF orientation (the image itself when already upright)."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(img) if exif_orientation(img) != 1 else img


def oriented_size(img) -> tuple[int, int]:
    """(height, width) of an open PIL image after its EXIF orientation is applied (header only)."""
    if exif_orientation(img) in _TRANSPOSED_ORIENTATIONS:
        return img.width, img.height
    return img.height, img.width


def read_image(path: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """Read an image file into a numpy array, raising :class:`DataError` naming the file on any problem.

    Args:
        path: image file.
        mode: if given, the PIL mode the file must have (e.g. ``"L"``, ``"P"``, ``"RGB"``, ``"I;16"``);
            ``"RGB"`` converts other colour modes, the others are checked, not converted.

    Returns:
        array [H, W] or [H, W, C] as stored (palette indices for ``P``). ``"RGB"`` reads are frames: their EXIF
        orientation is applied, as the official decoders (OpenCV ``IMREAD_COLOR``) do; other modes are masks,
        read as stored (OpenCV ``IMREAD_UNCHANGED`` ignores the orientation too).
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
            check_image_format(path, img.format)
            img.load()
            if mode == "RGB":
                img = _upright(img)
            if mode == "RGB" and img.mode != "RGB":
                img = img.convert("RGB")
            elif mode is not None and img.mode != mode and not (mode.startswith("I") and img.mode.startswith("I")):
                raise DataError(path, f"image mode is {img.mode}, expected {mode}")
            return np.asarray(img)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable or truncated image ({exc})") from None


_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def check_image_format(path: Path, found: str | None) -> None:
    """A ``.png`` must hold PNG data (a JPEG saved as ``.png`` would give lossy, wrong labels), likewise ``.jpg``."""
    expected = _FORMATS.get(path.suffix.lower())
    if expected is not None and found is not None and found != expected:
        raise DataError(path, f"holds {found} data, not {expected} as its extension says")


def encode_mask_png(array: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """Encode a label mask as PNG bytes, the one way every vidseg writer does it (so round trips are byte-exact).

    Args:
        array: uint8 [H, W] (8-bit grey, mode ``L``), uint16 [H, W] (16-bit grey, ``I;16``), or uint8 [H, W]
            palette indices when ``palette`` is given.
        palette: uint8 [N, 3] colours for an indexed (``P``) PNG.

    Grey masks go through OpenCV without PNG row filters (masks are flat regions: filtering costs about 3x the
    time and saves nothing); indexed PNGs need Pillow (OpenCV cannot write palettes).
    """
    array = np.ascontiguousarray(array)
    if array.ndim != 2 or array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"masks must be uint8/uint16 [H, W], got {array.dtype} {array.shape}")
    if palette is None:
        import cv2

        ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                               cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE])
        if not ok:  # pragma: no cover - encoding a valid 2-D uint8/uint16 array does not fail
            raise ValueError("PNG encoding failed")
        return buf.tobytes()
    import io

    from PIL import Image

    if array.dtype != np.uint8:
        raise ValueError("indexed (palette) masks must be uint8")
    img = Image.fromarray(array, mode="L")
    img.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())  # L + palette -> P, raw indices
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_mask_png(path: str | os.PathLike, array: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write :func:`encode_mask_png` output to ``path`` atomically."""
    write_bytes_atomic(path, encode_mask_png(array, palette))
