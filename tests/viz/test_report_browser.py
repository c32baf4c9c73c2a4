"""Issue 14: a report opens in headless Chromium with every image and the video loaded; video and legend markup."""

from __future__ import annotations

import numpy as np
import pytest
from tests.viz.browser_check import find_chromium, loaded_media

from vidseg.viz.report import Image, Legend, Plot, Section, Table, Video, render_report, write_report

BROWSER = find_chromium()


def _report(tmp_path):
    from vidseg.viz.video import write_mp4

    frames = [np.full((64, 96, 3), 20 * i, np.uint8) for i in range(8)]
    video = write_mp4(tmp_path / "overlay.mp4", frames, fps=6)
    sections = [Section("Results", "text", [
        Table(["model", "mIoU"], [["a", 1.0]]),
        Plot("VC8 per video", {"a": (["vid_one", "vid_two"], [1, 2]), "b": (["vid_one", "vid_two"], [2, 1])},
             kind="bar"),
        Image(frames[3], "a frame"),
        Video(video, "overlay", poster=frames[0], width=400),
        Legend([("wall", (120, 120, 120)), ("sky", (70, 130, 180))], "class colours"),
    ])]
    return write_report(tmp_path / "report.html", sections)


def test_video_has_poster_size_and_controls_below(tmp_path):
    text = _report(tmp_path).read_text()
    video_tag = text[text.index("<video"):text.index("</video>")]
    assert 'poster="data:image/png;base64,' in video_tag and 'width="400"' in video_tag
    assert " controls" not in video_tag  # native controls would cover the bottom of the picture
    assert text.index("</video>") < text.index("play / pause")  # our controls come after (below) it
    assert "rgb(70,130,180)" in text and ">sky<" in text.replace("</i>", ">")
    assert "{" not in render_report([Section("s", "plain prose")]).split("<body>")[1]


@pytest.mark.skipif(BROWSER is None, reason="no headless browser (chromium) installed; .ci/run installs one")
def test_report_images_and_video_load_in_chromium(tmp_path):
    media = loaded_media(_report(tmp_path), BROWSER)
    kinds = [m[0] for m in media]
    assert kinds.count("img") == 2 and kinds.count("video") == 1, media
    assert all(w > 0 and h > 0 for _, w, h in media), media  # 0x0 = failed to load or decode
    assert ("video", 96, 64) in media


def test_contact_sheet_legend_strip_shows_class_colours():
    from vidseg.demo.data import legend_strip
    from vidseg.viz.palette import semantic_colors

    strip = legend_strip([0, 5, 17], 320)
    assert strip.dtype == np.uint8 and strip.shape[1] == 320 and strip.shape[2] == 3
    colors = {tuple(c) for c in strip.reshape(-1, 3).tolist()}
    for c in (0, 5, 17):  # each class's swatch is drawn in its overlay colour
        assert tuple(int(v) for v in semantic_colors()[c]) in colors
