"""Any video as a frame source: a video file (mp4/mov/avi/webm/mkv through PyAV) or a folder of frames.

Both decode lazily: iterating yields one uint8 RGB frame [H, W, 3] at a time and nothing else is kept in
memory, so a 10,000-frame video costs what a 100-frame one does.

Example::

    video = open_video("street.mp4")
    print(video.fps, video.num_frames, video.size)
    for frame in video:          # uint8 [H, W, 3]
        ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidseg.data.layout import IMAGE_EXTS, VIDEO_EXTS, image_size, list_files
from vidseg.errors import DataError
from vidseg.fileio import read_image


def _import_av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is installed in the dev environment
        raise DataError("av", "reading video files needs PyAV: pip install 'vidseg[video]'") from None
    return av


class _DecoderErrors:
    """Collects FFmpeg's decoder errors while a file is decoded (its log, at ERROR level, on this thread).

    A damaged stream often decodes "successfully" into concealed garbage: FFmpeg only logs the damage
    ("error while decoding MB ...") and marks the frame corrupt. Both become a :class:`DataError`.
    """

    def __init__(self, av) -> None:
        self._av = av
        self._capture = None
        self._level = None

    def __enter__(self) -> _DecoderErrors:
        logging = self._av.logging
        self._level = logging.get_level()
        if self._level is None or self._level < logging.ERROR:
            logging.set_level(logging.ERROR)
        self._capture = logging.Capture(True)
        self.logs = self._capture.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._capture.__exit__(*exc)
        self._av.logging.set_level(self._level)

    def raise_if_corrupt(self, path: Path, frame, index: int) -> None:
        errors = [text.strip() for level, _, text in self.logs if level <= self._av.logging.ERROR]
        if errors or getattr(frame, "is_corrupt", False):
            detail = errors[0] if errors else "frame marked corrupt"
            raise DataError(path, f"corrupt video data at frame {index} (decoder: {detail})")


class VideoFile:
    """A video file decoded lazily with PyAV.

    Attributes:
        path: the file.
        fps: frames per second (average rate of the first video stream).
        num_frames: frame count from the container header, or estimated from duration x fps when the
            header has none (0 when neither is known); :meth:`count_frames` decodes to get the exact value.
        size: (height, width).
        codec: codec name of the video stream.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "video file not found")
        if self.path.stat().st_size == 0:
            raise DataError(self.path, "zero-byte video file")
        av = _import_av()
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise DataError(self.path, "no video stream found (truncated or not a video file)")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                self.fps = float(rate) if rate else 0.0
                self.size = (int(stream.codec_context.height), int(stream.codec_context.width))
                self.codec = stream.codec_context.name
                self._exact_count = bool(stream.frames)
                self.num_frames = int(stream.frames) or self._estimate(stream, container)
        except DataError:
            raise
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise DataError(self.path, f"unreadable or truncated video file ({exc})") from None
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise DataError(self.path, "video stream has no frame size")

    def _estimate(self, stream, container) -> int:
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000
        else:
            return 0
        return int(round(seconds * self.fps))

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        """Decode frames one at a time as uint8 RGB [H, W, 3].

        Raises:
            DataError: the stream is corrupt, or the header promised more frames than could be decoded
                (a truncated file).
        """
        av = _import_av()
        decoded = 0
        try:
            with av.open(str(self.path)) as container, _DecoderErrors(av) as errors:
                for frame in container.decode(video=0):
                    errors.raise_if_corrupt(self.path, frame, decoded)
                    decoded += 1
                    yield frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise DataError(self.path, f"corrupt or truncated video after frame {decoded} ({exc})") from None
        if decoded == 0:
            raise DataError(self.path, "no frame could be decoded (truncated or corrupt video file)")
        # exact header counts must be met; counts estimated from the duration get a small tolerance
        short = self.num_frames - decoded
        if short > 0 and (self._exact_count or short > 1 + 0.02 * self.num_frames):
            raise DataError(self.path, f"truncated video: decoded {decoded} of {self.num_frames} frames")

    def count_frames(self) -> int:
        """Decode the whole file and return the number of frames (validates it on the way)."""
        return sum(1 for _ in self)

    @property
    def duration(self) -> float:
        """Length in seconds (``num_frames / fps``)."""
        return self.num_frames / self.fps if self.fps else 0.0


class FrameFolder:
    """A folder of frame images read lazily in file-name order, turned upright by their EXIF orientation (as
    the official test pipelines' OpenCV decode does).

    Args:
        path: the folder.
        fps: frame rate to report (frame folders carry none; VSPW frames are 15 fps).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 15.0) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(self.path, "frame folder not found")
        self.frames = list_files(self.path, IMAGE_EXTS)
        if not self.frames:
            raise DataError(self.path, "empty video folder: no frames")
        self.fps = float(fps)
        self.num_frames = len(self.frames)
        self.size = image_size(self.frames[0], oriented=True)
        self.codec = "images"

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame ``index`` as uint8 RGB [H, W, 3]; DataError if unreadable or of another size."""
        frame = read_image(self.frames[index], "RGB")
        if frame.shape[:2] != self.size:
            raise DataError(self.frames[index], f"frame size {frame.shape[0]}x{frame.shape[1]} differs from "
                            f"the first frame's {self.size[0]}x{self.size[1]} (HxW)")
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.num_frames):
            yield self[i]

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0


VideoSource = VideoFile | FrameFolder


def open_video(path: str | os.PathLike, fps: float | None = None) -> VideoSource:
    """Open a video file or a folder of frames as a lazy frame source.

    Args:
        path: an mp4/mov/avi/webm/mkv file, or a folder of images (sorted by name).
        fps: for frame folders, the frame rate to report (default 15, the VSPW rate); ignored for files.

    Raises:
        DataError: missing, empty, unreadable or truncated input.
    """
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path, fps if fps is not None else 15.0)
    if path.suffix.lower() not in VIDEO_EXTS and path.exists():
        raise DataError(path, f"not a video file (expected one of {', '.join(VIDEO_EXTS)})")
    return VideoFile(path)

