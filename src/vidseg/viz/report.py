"""A self-contained HTML report: sections of text, tables, plots (matplotlib, Agg), images and videos.

Plots and small media are embedded as base64 data URIs so the report is one file that can be mailed or
attached to a CI run; large videos are linked by a path relative to the report.

Example::

    from vidseg.viz.report import Plot, Section, Table, Video, write_report
    write_report("out/report.html", [
        Section("Training", "Loss per iteration.", [Plot("loss", {"train": (steps, losses)}, "step", "loss")]),
        Section("Results", items=[Table(["model", "mIoU"], [["tcb", 41.2]]), Video("out/overlay.mp4")]),
    ])
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.errors import VidsegError
from vidseg.fileio import write_text_atomic

EMBED_LIMIT = 8 * 1024 * 1024  # media larger than this are linked instead of embedded


@dataclass
class Table:
    """A table; floats print with ``digits`` decimals."""

    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""
    digits: int = 2


@dataclass
class Plot:
    """A line (or bar) plot.

    Attributes:
        title: plot title.
        series: name -> (x values, y values), or name -> y values (x = 0, 1, ...).
        xlabel, ylabel: axis labels.
        kind: ``"line"`` or ``"bar"`` (bars: one group per x, one bar per series).
        logy: logarithmic y axis.
    """

    title: str
    series: Mapping[str, Any]
    xlabel: str = ""
    ylabel: str = ""
    kind: str = "line"
    logy: bool = False


@dataclass
class Image:
    """A picture: a uint8 array [H, W, 3] (embedded as PNG) or a path to an image file."""

    source: np.ndarray | str | os.PathLike
    caption: str = ""


@dataclass
class Video:
    """A video file (mp4, webm or gif): embedded when small (or when ``embed`` is True), else linked.

    ``poster``: a uint8 [H, W, 3] frame shown before playback; ``width``: display width in CSS pixels (None:
    the video's own). Play/pause and a frame slider sit below the picture, never over it.
    """

    path: str | os.PathLike
    caption: str = ""
    embed: bool | None = None
    poster: np.ndarray | None = None
    width: int | None = None


@dataclass
class Legend:
    """Colour swatches with names (e.g. the classes an overlay shows). ``entries``: (name, (r, g, b))."""

    entries: Sequence[tuple[str, Sequence[int]]]
    caption: str = ""


@dataclass
class Section:
    """One section: a heading, a paragraph and items (Table, Plot, Image, Video, a matplotlib Figure or text)."""

    title: str
    text: str = ""
    items: list[Any] = field(default_factory=list)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:4px 10px}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}figcaption{color:#555;font-size:90%}img,video{max-width:100%}
video{display:block;image-rendering:pixelated}.vctl{margin:4px 0}.vctl input{width:60%;vertical-align:middle}
.legend .sw{display:inline-block;margin:2px 10px 2px 0;font-size:90%}
.legend i{display:inline-block;width:14px;height:14px;margin-right:4px;vertical-align:middle;border:1px solid #888}
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_html(src: str, caption: str, tag: str = "img") -> str:
    media = (f'<video controls loop muted src="{src}"></video>' if tag == "video"
             else f'<img src="{src}" alt="{html.escape(caption)}">')
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{media}{cap}</figure>"


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return f'<td class="num">{float(value):.{digits}f}</td>'
    if isinstance(value, (int, np.integer)):
        return f'<td class="num">{int(value)}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def table_html(table: Table) -> str:
    """HTML of a :class:`Table`."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(_cell(v, table.digits) for v in row) + "</tr>" for row in table.rows)
    cap = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _xy(values: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(values, tuple) and len(values) == 2:
        return np.asarray(values[0]), np.asarray(values[1], dtype=float)
    y = np.asarray(values, dtype=float)
    return np.arange(len(y)), y


def render_plot(plot: Plot, dpi: int = 100) -> bytes:
    """Render a :class:`Plot` to PNG bytes with matplotlib's Agg canvas (no pyplot, no global state)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is the 'plots' extra

        raise VidsegError("plots in reports need matplotlib: pip install 'vidseg[plots]'") from None

    names = list(plot.series)
    fig = Figure(figsize=(8.4 if len(names) > 1 else 6.4, 3.8), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for k, name in enumerate(names):
        x, y = _xy(plot.series[name])
        if plot.kind == "bar":
            width = 0.8 / max(1, len(names))
            ax.bar(np.arange(len(y)) + k * width, y, width=width, label=name)
            labels = [str(v) for v in x]
            turn = max(map(len, labels), default=0) > 4
            ax.set_xticks(np.arange(len(y)) + 0.4 - width / 2, labels, rotation=20 if turn else 0,
                          ha="right" if turn else "center")
        else:
            ax.plot(x, y, label=name)
    if plot.logy:
        ax.set_yscale("log")
    ax.set_title(plot.title)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.grid(alpha=0.3)
    if len(names) > 1:  # outside the axes, so it never covers bars or curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    return figure_png(fig)


def figure_png(fig: Any) -> bytes:
    """PNG bytes of a matplotlib Figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _image_html(item: Image) -> str:
    if isinstance(item.source, np.ndarray):
        return _figure_html(_png_uri(item.source), item.caption)
    path = Path(item.source)
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}.get(
        path.suffix.lower(), "application/octet-stream")
    return _figure_html(_data_uri(path.read_bytes(), mime), item.caption or path.name)


_VIDEO_CONTROLS = (
    '<div class="vctl"><button type="button" onclick="var v=this.parentNode.previousElementSibling;'
    'v.paused?v.play():v.pause()">play / pause</button> <input type="range" min="0" max="1000" value="0" '
    'aria-label="position" oninput="var v=this.parentNode.previousElementSibling;'
    'if(v.duration)v.currentTime=v.duration*this.value/1000"></div>')


def _png_uri(array: np.ndarray) -> str:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="PNG")
    return _data_uri(buf.getvalue(), "image/png")


def _video_html(item: Video, report_dir: Path) -> str:
    path = Path(item.path)
    suffix = path.suffix.lower()
    mime = {".mp4": "video/mp4", ".webm": "video/webm", ".gif": "image/gif"}.get(suffix, "video/mp4")
    embed = item.embed if item.embed is not None else (path.is_file() and path.stat().st_size <= EMBED_LIMIT)
    if embed:
        src = _data_uri(path.read_bytes(), mime)
    else:
        src = html.escape(os.path.relpath(path.resolve(), report_dir.resolve()).replace(os.sep, "/"))
    if suffix == ".gif":
        return _figure_html(src, item.caption or path.name, "img")
    width = f' width="{int(item.width)}"' if item.width else ""
    poster = f' poster="{_png_uri(item.poster)}"' if item.poster is not None else ""
    cap = html.escape(item.caption or path.name)
    return (f'<figure><video loop muted playsinline preload="auto"{width}{poster} src="{src}"></video>'
            f"{_VIDEO_CONTROLS}<figcaption>{cap}</figcaption></figure>")


def _legend_html(item: Legend) -> str:
    swatches = "".join(f'<span class="sw"><i style="background:rgb({int(c[0])},{int(c[1])},{int(c[2])})"></i>'
                       f"{html.escape(name)}</span>" for name, c in item.entries)
    cap = f"<figcaption>{html.escape(item.caption)}</figcaption>" if item.caption else ""
    return f'<figure class="legend">{swatches}{cap}</figure>'


def _item_html(item: Any, report_dir: Path) -> str:
    if isinstance(item, Table):
        return table_html(item)
    if isinstance(item, Plot):
        return _figure_html(_data_uri(render_plot(item), "image/png"), "")
    if isinstance(item, Image):
        return _image_html(item)
    if isinstance(item, Video):
        return _video_html(item, report_dir)
    if isinstance(item, Legend):
        return _legend_html(item)
    if isinstance(item, str):
        return f"<p>{html.escape(item)}</p>"
    if hasattr(item, "savefig"):
        return _figure_html(_data_uri(figure_png(item), "image/png"), "")
    raise TypeError(f"cannot put a {type(item).__name__} into a report")


def render_report(sections: Sequence[Section], title: str = "vidseg report", report_dir: str | os.PathLike = ".") -> str:
    """The report as an HTML string (media paths are linked relative to ``report_dir``)."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for sec in sections:
        parts.append(f"<section><h2>{html.escape(sec.title)}</h2>")
        if sec.text:
            parts.append(f"<p>{html.escape(sec.text)}</p>")
        parts.extend(_item_html(item, Path(report_dir)) for item in sec.items)
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(path: str | os.PathLike, sections: Sequence[Section], title: str = "vidseg report") -> Path:
    """Write an HTML report atomically and return its path.

    Args:
        path: output ``.html`` file.
        sections: the sections in order.
        title: page title and top heading.
    """
    path = Path(path)
    write_text_atomic(path, render_report(sections, title, report_dir=path.parent))
    return path
