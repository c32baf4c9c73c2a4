"""Optical-flow backends for TC: OpenCV DIS (default, CPU), OpenCV Farneback, flow files, or any user callable.

A backend is a callable ``flow(frame_t, frame_t1, *, video, stem_t, stem_t1) -> [H, W, 2] float32``
giving for each pixel of frame t its displacement (dx, dy) to frame t+1 (the direction the official
code asks RAFT for: ``image1 = frame_t, image2 = frame_t+1``). Frames are RGB uint8 [H, W, 3].
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidseg.errors import ConfigError, DataError
from vidseg.fileio import write_bytes_atomic


class FlowBackend(Protocol):
    """Computes the flow from frame t to frame t+1; ``needs_frames`` says whether it reads the images."""

    needs_frames: bool

    def __call__(self, frame_t: np.ndarray | None, frame_t1: np.ndarray | None, *, video: str,
                 stem_t: str, stem_t1: str) -> np.ndarray: ...


class DISFlow:
    """OpenCV DIS optical flow on grayscale frames (a CPU stand-in for RAFT).

    Args:
        preset: ``ultrafast``, ``fast`` or ``medium`` (OpenCV DIS presets).
    """

    needs_frames = True

    def __init__(self, preset: str = "medium") -> None:
        presets = {"ultrafast": 0, "fast": 1, "medium": 2}
        if preset not in presets:
            raise ConfigError(f"unknown DIS preset {preset!r}; choose one of {', '.join(presets)}")
        self.preset = preset
        self._dis: Any = None

    def __call__(self, frame_t, frame_t1, *, video="", stem_t="", stem_t1=""):
        import cv2

        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create({"ultrafast": 0, "fast": 1, "medium": 2}[self.preset])
        a = cv2.cvtColor(frame_t, cv2.COLOR_RGB2GRAY) if frame_t.ndim == 3 else frame_t
        b = cv2.cvtColor(frame_t1, cv2.COLOR_RGB2GRAY) if frame_t1.ndim == 3 else frame_t1
        if min(a.shape[:2]) < 12:
            raise DataError(video or "frames", f"OpenCV DIS needs frames of at least 12x12 pixels, got {a.shape[:2]}")
        return self._dis.calc(a, b, None).astype(np.float32)

    def __getstate__(self):  # the OpenCV object is not picklable; workers rebuild it
        return {"preset": self.preset, "_dis": None}


class FarnebackFlow:
    """OpenCV Farneback dense optical flow on grayscale frames (no learned weights, slower and smoother than DIS)."""

    needs_frames = True

    def __call__(self, frame_t, frame_t1, *, video="", stem_t="", stem_t1=""):
        import cv2

        a = cv2.cvtColor(frame_t, cv2.COLOR_RGB2GRAY) if frame_t.ndim == 3 else frame_t
        b = cv2.cvtColor(frame_t1, cv2.COLOR_RGB2GRAY) if frame_t1.ndim == 3 else frame_t1
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0).astype(np.float32)


class FileFlow:
    """Flow read from files ``<root>/<video>/<stem_t>.npy`` ([H, W, 2] float) or ``.flo`` (Middlebury).

    The file for frame t holds the flow from frame t to frame t+1.
    """

    needs_frames = False

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "flow folder not found")

    def __call__(self, frame_t, frame_t1, *, video, stem_t, stem_t1=""):
        base = self.root / video / stem_t
        for suffix, reader in ((".npy", _read_npy), (".flo", read_flo)):
            path = base.with_suffix(suffix)
            if path.is_file():
                return reader(path)
        raise DataError(base.with_suffix(".npy"), "flow file not found (.npy or .flo)")


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable flow file ({exc})") from None
    if arr.ndim != 3 or arr.shape[2] != 2:
        raise DataError(path, f"flow must be [H, W, 2], got {arr.shape}")
    return arr.astype(np.float32, copy=False)


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file (magic 202021.25, int32 width/height, float32 [H, W, 2])."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 12 or np.frombuffer(data[:4], "<f4")[0] != np.float32(202021.25):
        raise DataError(path, "not a .flo file (bad magic number)")
    w, h = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    body = np.frombuffer(data[12:], "<f4")
    if body.size != h * w * 2:
        raise DataError(path, f"truncated .flo file: expected {h * w * 2} floats, found {body.size}")
    return body.reshape(h, w, 2).copy()


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write a Middlebury ``.flo`` file (atomically)."""
    h, w, _ = flow.shape
    head = np.array([202021.25], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()
    write_bytes_atomic(path, head + np.ascontiguousarray(flow, "<f4").tobytes())


class CallableFlow:
    """Wrap a plain ``fn(frame_t, frame_t1) -> [H, W, 2]`` (e.g. RAFT on a GPU) as a backend."""

    needs_frames = True

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], Any]) -> None:
        self.fn = fn

    def __call__(self, frame_t, frame_t1, *, video="", stem_t="", stem_t1=""):
        flow = self.fn(frame_t, frame_t1)
        if hasattr(flow, "detach"):
            flow = flow.detach().cpu().numpy()
        flow = np.asarray(flow, dtype=np.float32)
        if flow.ndim == 3 and flow.shape[0] == 2 and flow.shape[2] != 2:
            flow = flow.transpose(1, 2, 0)
        return flow


def make_flow_backend(spec: str | os.PathLike | Callable | None) -> Any:
    """Build a backend from ``"dis"`` / ``"dis:fast"`` / ``"farneback"`` / a folder path / a callable / an existing backend."""
    if spec is None or spec == "dis":
        return DISFlow()
    if spec == "farneback":
        return FarnebackFlow()
    if isinstance(spec, (DISFlow, FarnebackFlow, FileFlow, CallableFlow)) or hasattr(spec, "needs_frames"):
        return spec  # an existing backend (also RAFTFlow, CachedFlow, or any object declaring needs_frames)
    if isinstance(spec, str) and spec.startswith("dis:"):
        return DISFlow(spec.split(":", 1)[1])
    if callable(spec):
        return CallableFlow(spec)
    return FileFlow(spec)
