"""Writers for pictures and videos: PNG, H.264 mp4 (PyAV) and GIF (Pillow), all written atomically.

The mp4 writer streams: frames go to the encoder one at a time, so memory does not grow with the video.
H.264 in yuv420p needs even sizes; odd frames are padded by one black row/column (never resized).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidseg.errors import VidsegError
from vidseg.fileio import atomic_path


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"video frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    return frame


def pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad an [H, W, 3] frame with black to even H and W (yuv420p needs even sizes)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 image ([H, W, 3] RGB or [H, W] grey) as PNG, atomically. Returns the path."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image)).save(tmp, format="PNG")
    return path


class Mp4Writer:
    """Stream frames into an H.264 mp4 (yuv420p); the file appears under its name only after :meth:`close`.

    Args:
        path: output ``.mp4`` path.
        fps: frame rate (a number or a Fraction).
        crf: x264 constant rate factor (lower = better quality, 18 is visually lossless).

    Use as a context manager; on an exception the partial file is removed.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 15.0, crf: int = 20) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.crf = crf
        self._stack = contextlib.ExitStack()
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self.frames_written = 0

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort(exc_type, exc, tb)

    def _open(self, h: int, w: int) -> None:
        try:
            import av
        except ImportError:  # pragma: no cover - av is a declared dependency of the video extra
            raise VidsegError("writing mp4 needs PyAV: pip install 'vidseg[video]'") from None
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._container = av.open(str(tmp), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        self._stream = stream
        self._size = (h, w)

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 RGB frame [H, W, 3] (all frames must share one size)."""
        frame = pad_even(_check_frame(frame))
        if self._container is None:
            self._open(*frame.shape[:2])  # raises a VidsegError naming the extra if PyAV is missing
        import av

        if frame.shape[:2] != self._size:
            raise ValueError(f"frame size {frame.shape[:2]} differs from the video's {self._size}")
        packets = self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
        self._container.mux(packets)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and publish the file."""
        if self._container is None:
            raise ValueError(f"{self.path}: no frames were written")
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = None
        self._stack.close()

    def _abort(self, exc_type, exc, tb) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        self._stack.__exit__(exc_type, exc, tb)


def write_mp4(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 15.0, crf: int = 20) -> Path:
    """Write uint8 RGB frames [H, W, 3] as an H.264 mp4 (yuv420p, even size). Returns the path."""
    with Mp4Writer(path, fps=fps, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def write_gif(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 10.0, loop: int = 0) -> Path:
    """Write uint8 RGB frames [H, W, 3] as an animated GIF (Pillow, adaptive palette per frame).

    Args:
        fps: frame rate; GIF delays are whole hundredths of a second, so it is rounded.
        loop: number of repetitions, 0 = forever.
    """
    from PIL import Image

    images = [Image.fromarray(_check_frame(f)) for f in frames]
    if not images:
        raise ValueError(f"{path}: no frames to write")
    duration = max(20, int(round(100.0 / fps)) * 10)  # ms, multiple of 10
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=loop,
                       disposal=1, optimize=False)
    return path
