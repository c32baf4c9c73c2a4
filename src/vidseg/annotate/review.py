"""The review page of ``vidseg annotate propagate``: every frame with its labels and spots, worst frames first.

``review.html`` shows one table row per frame: the frame, the propagated labels over it, the spots (pixels where
the two propagation directions disagree) in red over it, and the share of spot pixels. Rows start sorted by that
share, largest first, so an annotator fixes the worst frames first; clicking a column header re-sorts. The images
are files beside the page (``review/``); once every image has loaded, a small script sets
``data-images-loaded="N"`` on ``<body>`` (used by the headless-browser test).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseg.fileio import atomic_path, write_text_atomic
from vidseg.viz.overlay import blend, overlay_semantic

SPOT_COLOR = (255, 0, 0)


@dataclass
class ReviewRow:
    """One frame of the review table; ``images`` are the file names (frame, labels, spots) under ``review/``."""

    stem: str
    index: int
    kind: str
    spot_share: float
    images: tuple[str, str, str]


def raw_to_library(raw: np.ndarray) -> np.ndarray:
    """VSPW raw labels (0 others, 1..K classes, 255 void) -> classes 0..K-1 with 255 for others and void."""
    lut = np.arange(256, dtype=np.int16) - 1
    lut[0] = lut[255] = 255
    return lut.astype(np.uint8)[raw]


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=85)


def write_review_images(folder: str | os.PathLike, stem: str, image: np.ndarray, raw_labels: np.ndarray,
                        spots: np.ndarray) -> None:
    """Write ``<stem>.jpg`` (the frame), ``<stem>_labels.jpg`` and ``<stem>_spots.jpg`` into ``folder``.

    Args:
        image: uint8 RGB [H, W, 3].
        raw_labels: uint8 [H, W] VSPW raw labels.
        spots: bool [H, W].
    """
    folder = Path(folder)
    colors = np.zeros(image.shape, dtype=np.uint8)
    colors[...] = SPOT_COLOR
    _write_jpeg(folder / f"{stem}.jpg", image)
    _write_jpeg(folder / f"{stem}_labels.jpg", overlay_semantic(image, raw_to_library(raw_labels), alpha=0.6))
    _write_jpeg(folder / f"{stem}_spots.jpg", blend(image // 2, colors, alpha=0.9, where=spots))


_STYLE = """body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px;text-align:center}th{cursor:pointer;background:#eee}
img{max-width:320px;display:block}tr.key{background:#eef6ee}"""

# Sort by a column on header click; mark <body> once every image has loaded (naturalWidth > 0).
_SCRIPT = """function sortBy(col, numeric){
 const body=document.querySelector('#frames tbody');
 const rows=Array.from(body.rows);
 const th=document.querySelectorAll('#frames th')[col];
 const dir=th.dataset.dir==='desc'?1:-1; th.dataset.dir=dir===1?'asc':'desc';
 rows.sort((a,b)=>{const x=a.cells[col].dataset.v,y=b.cells[col].dataset.v;
  return dir*(numeric?Number(x)-Number(y):x.localeCompare(y));});
 rows.forEach(r=>body.appendChild(r));}
function checkImages(){
 const imgs=Array.from(document.images);
 if(imgs.every(i=>i.complete&&i.naturalWidth>0)){document.body.dataset.imagesLoaded=String(imgs.length);}
 else if(imgs.some(i=>i.complete&&i.naturalWidth===0)){document.body.dataset.imagesLoaded='broken';}
 else{setTimeout(checkImages,50);}}
window.addEventListener('load',checkImages);"""


def _row_html(row: ReviewRow, image_dir: str) -> str:
    cells = [f'<td data-v="{html.escape(row.stem)}">{html.escape(row.stem)}<br><small>{row.kind}</small></td>',
             f'<td data-v="{row.spot_share:.8f}" class="share">{100 * row.spot_share:.2f}%</td>']
    for name, alt in zip(row.images, ("frame", "labels", "spots")):
        src = html.escape(f"{image_dir}/{name}")
        cells.append(f'<td><img src="{src}" alt="{alt} {html.escape(row.stem)}" loading="eager"></td>')
    return f'<tr class="{row.kind}" data-frame="{html.escape(row.stem)}">{"".join(cells)}</tr>'


def render_review_page(rows: Sequence[ReviewRow], title: str, image_dir: str = "review") -> str:
    """The page's HTML: rows sorted by spot share, largest first (ties: frame order)."""
    ordered = sorted(rows, key=lambda r: (-r.spot_share, r.index))
    spotted = sum(r.spot_share > 0 for r in rows)
    head = ('<tr><th onclick="sortBy(0,false)">frame</th><th onclick="sortBy(1,true)" data-dir="desc">spot pixels</th>'
            "<th>frame</th><th>propagated labels</th><th>spots (red)</th></tr>")
    body = "\n".join(_row_html(r, image_dir) for r in ordered)
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>{len(rows)} frames, {spotted} with spots (pixels where forward and backward propagation disagree). "
            "Worst first; click a header to sort. Fix the worst frames, add them as key frames, re-run: only the "
            f"intervals around changed key frames are recomputed.</p>\n<table id='frames'><thead>{head}</thead>"
            f"<tbody>\n{body}\n</tbody></table></body></html>\n")


def write_review_page(path: str | os.PathLike, rows: Sequence[ReviewRow], title: str = "propagation review") -> Path:
    """Write :func:`render_review_page` to ``path`` atomically; the images live in ``review/`` beside it."""
    write_text_atomic(path, render_review_page(rows, title))
    return Path(path)
