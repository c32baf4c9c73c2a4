"""The HTML report builder."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from vidseg.viz.report import Image, Plot, Section, Table, Video, render_plot, write_report
from vidseg.viz.video import write_gif, write_mp4


def test_plot_renders_png():
    png = render_plot(Plot("loss", {"train": ([0, 1, 2], [3.0, 2.0, 1.5]), "val": [3.1, 2.5, 2.0]}, "step", "loss"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    bar = render_plot(Plot("miou", {"a": (["tcb", "cffm"], [40.0, 42.0])}, kind="bar", logy=False))
    assert bar[:4] == b"\x89PNG"


def test_report_embeds_tables_plots_images_and_media(tmp_path):
    mp4 = write_mp4(tmp_path / "media" / "v.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3)
    gif = write_gif(tmp_path / "media" / "g.gif", [np.zeros((8, 8, 3), np.uint8)] * 2)
    sections = [
        Section("Results <1>", "mIoU & friends", [Table(["model", "mIoU", "frames"], [["tcb", 41.234, 12]])]),
        Section("Curves", items=[Plot("loss", {"train": [1.0, 0.5]}), "a note",
                                 Image(np.zeros((4, 4, 3), np.uint8), "black")]),
        Section("Videos", items=[Video(mp4, "embedded"), Video(mp4, "linked", embed=False), Video(gif)]),
    ]
    path = write_report(tmp_path / "out" / "report.html", sections, title="run 1")
    text = path.read_text()
    assert "<h1>run 1</h1>" in text and "Results &lt;1&gt;" in text and "mIoU &amp; friends" in text
    assert '<td class="num">41.23</td>' in text and '<td class="num">12</td>' in text
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(pngs) == 2 and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)
    embedded = re.findall(r"data:video/mp4;base64,([A-Za-z0-9+/=]+)", text)
    assert len(embedded) == 1 and base64.b64decode(embedded[0]) == mp4.read_bytes()
    assert 'src="../media/v.mp4"' in text
    assert "data:image/gif;base64," in text
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_report_rejects_unknown_items(tmp_path):
    with pytest.raises(TypeError):
        write_report(tmp_path / "r.html", [Section("x", items=[object()])])
    assert not (tmp_path / "r.html").exists()


def test_report_accepts_matplotlib_figures(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    text = write_report(tmp_path / "r.html", [Section("fig", items=[fig])]).read_text()
    assert "data:image/png;base64," in text
