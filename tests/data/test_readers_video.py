"""Video files and frame folders as lazy frame sources."""

from __future__ import annotations

import numpy as np
import pytest
from _layouts import frame, save_jpg, write_video

from vidseg.data.video import FrameFolder, VideoFile, open_video
from vidseg.errors import DataError


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mov", ".webm"])
def test_video_file(tmp_path, ext):
    path = tmp_path / f"v{ext}"
    written = write_video(path, frames=6, h=32, w=48, fps=15)
    video = open_video(path)
    assert isinstance(video, VideoFile)
    assert video.fps == pytest.approx(15.0)
    assert video.size == (32, 48)
    assert len(video) == 6
    frames = list(video)
    assert len(frames) == 6
    assert all(f.dtype == np.uint8 and f.shape == (32, 48, 3) for f in frames)
    # lossy codecs: flat grey frames come back close to what was written
    assert max(abs(float(f.mean()) - float(w.mean())) for f, w in zip(frames, written, strict=True)) < 6


def test_iteration_is_lazy(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, frames=10)
    it = iter(open_video(path))
    first = next(it)
    assert first.shape == (32, 48, 3)


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".avi"])
def test_truncated_or_unreadable_video(tmp_path, ext):
    path = tmp_path / f"v{ext}"
    write_video(path, frames=12)
    data = path.read_bytes()
    bad = tmp_path / f"bad{ext}"
    bad.write_bytes(data[: int(len(data) * 0.85)])
    with pytest.raises(DataError, match=rf"bad\{ext}: .*(truncated|corrupt|unreadable|no video)"):
        list(open_video(bad))
    (tmp_path / f"zero{ext}").write_bytes(b"")
    with pytest.raises(DataError, match="zero-byte video"):
        open_video(tmp_path / f"zero{ext}")
    (tmp_path / f"junk{ext}").write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="junk"):
        open_video(tmp_path / f"junk{ext}")


def test_frame_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        save_jpg(tmp_path / "f" / f"{i:05d}.jpg", frame(rng, 16, 24))
    video = open_video(tmp_path / "f", fps=25)
    assert isinstance(video, FrameFolder)
    assert (len(video), video.size, video.fps) == (4, (16, 24), 25.0)
    assert [f.shape for f in video] == [(16, 24, 3)] * 4
    (tmp_path / "f" / "00002.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="00002.jpg: zero-byte"):
        list(video)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty video folder"):
        open_video(tmp_path / "empty")
