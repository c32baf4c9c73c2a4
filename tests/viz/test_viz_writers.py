"""Grids, contact sheets and the PNG / mp4 / GIF writers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vidseg.viz.grid import comparison, contact_sheet, side_by_side, title_height
from vidseg.viz.video import Mp4Writer, pad_even, write_gif, write_mp4, write_png


def _frames(n=7, h=31, w=45):
    return [np.full((h, w, 3), 20 + 30 * i, dtype=np.uint8) for i in range(n)]


def test_side_by_side_and_comparison_sizes():
    a = np.zeros((20, 30, 3), np.uint8)
    b = np.full((20, 10), 255, np.uint8)
    out = side_by_side([a, b], pad=4)
    assert out.shape == (20, 44, 3) and out[0, 34:].min() == 255
    titled = side_by_side([a, a], titles=["x", "y"], pad=2)
    assert titled.shape == (20 + title_height(30), 62, 3)
    with pytest.raises(ValueError):
        side_by_side([a, np.zeros((21, 30, 3), np.uint8)])
    labels = np.zeros((20, 30), np.uint8)
    grid = comparison(a, labels, labels)
    assert grid.shape == (20 + title_height(30), 3 * 30 + 2 * 4, 3)
    assert comparison(a, labels, None).shape[1] == 2 * 30 + 4


@pytest.mark.parametrize("n, columns, labels", [(7, 3, False), (4, None, True), (1, None, False)])
def test_contact_sheet_size(n, columns, labels):
    images = [np.full((10, 16, 3), i * 30, np.uint8) for i in range(n)]
    names = [f"#{i}" for i in range(n)] if labels else None
    sheet = contact_sheet(images, columns=columns, labels=names, pad=2)
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    bar = title_height(16) if labels else 0
    assert sheet.shape == (rows * (10 + bar) + (rows + 1) * 2, cols * 16 + (cols + 1) * 2, 3)
    # the second image sits in the first row, second column
    if n > 1:
        assert sheet[2 + bar + 5, 2 + 16 + 2 + 8].tolist() == [30, 30, 30]


def test_contact_sheet_resizes_to_tile_size():
    sheet = contact_sheet([np.zeros((10, 10, 3), np.uint8), np.zeros((30, 40, 3), np.uint8)],
                          columns=2, pad=0, tile_size=(8, 12))
    assert sheet.shape == (8, 24, 3)


def test_png_round_trip_and_atomic(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    path = write_png(tmp_path / "a" / "x.png", img)
    assert np.array_equal(np.asarray(Image.open(path)), img)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]


def test_mp4_is_h264_yuv420p_even_sized_and_readable(tmp_path):
    import av

    path = write_mp4(tmp_path / "v.mp4", _frames(), fps=12)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == pytest.approx(12)
    assert len(decoded) == 7 and decoded[0].shape == (32, 46, 3)
    means = [d[:31, :45].mean() for d in decoded]
    assert all(abs(m - (20 + 30 * i)) < 6 for i, m in enumerate(means))
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_mp4_writer_streams_and_cleans_up_on_error(tmp_path):
    with Mp4Writer(tmp_path / "s.mp4", fps=5) as w:
        for f in _frames(3, 16, 16):
            w.write(f)
    assert w.frames_written == 3 and (tmp_path / "s.mp4").stat().st_size > 0
    with pytest.raises(ValueError, match="differs"), Mp4Writer(tmp_path / "bad.mp4") as w:
        w.write(np.zeros((16, 16, 3), np.uint8))
        w.write(np.zeros((18, 16, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mp4"]
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "empty.mp4", [])
    assert not (tmp_path / "empty.mp4").exists()


def test_pad_even():
    assert pad_even(np.ones((3, 5, 3), np.uint8)).shape == (4, 6, 3)
    f = np.ones((4, 6, 3), np.uint8)
    assert pad_even(f) is f


def test_gif_frames_size_and_timing(tmp_path):
    frames = _frames(5, 12, 20)
    path = write_gif(tmp_path / "g.gif", frames, fps=10)
    with Image.open(path) as img:
        assert img.n_frames == 5 and img.size == (20, 12)
        assert img.info["duration"] == 100 and img.info["loop"] == 0
        img.seek(3)
        assert abs(np.asarray(img.convert("RGB")).mean() - (20 + 90)) < 3
    with pytest.raises(ValueError):
        write_gif(tmp_path / "e.gif", [])
