"""review.html of ``vidseg annotate propagate`` in a real headless browser (Debian's chromium): every image loads,
the table is sorted by spot share (worst first), a screenshot renders; a missing image is detected."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidseg.annotate.propagate_folder import propagate_folder
from vidseg.annotate.review import ReviewRow, render_review_page
from vidseg.data.synth import SyntheticVideo, vspw_raw_mask
from vidseg.fileio import write_mask_png

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and os.access(p, os.X_OK)), None)
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium); "
                                                            "the review page is checked in a real headless browser")


def _browser(tmp_path: Path, page: Path, *args: str) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", *args, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def review(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("review")
    (root / "frames").mkdir()
    (root / "keys").mkdir()
    for t, frame in enumerate(SyntheticVideo((48, 64), 7, seed=2)):
        Image.fromarray(frame.image).save(root / "frames" / f"{t:05d}.jpg")
        if t in (0, 6):
            write_mask_png(root / "keys" / f"{t:05d}.png", vspw_raw_mask(frame))
    propagate_folder(root / "frames", root / "keys", root / "out")
    return root / "out"


def _rows(dom: str) -> list[tuple[str, float]]:
    return [(m.group(1), float(m.group(2))) for m in
            re.finditer(r'<tr class="\w+" data-frame="([^"]+)"><td[^>]*>.*?</td><td data-v="([0-9.]+)"', dom)]


@needs_browser
def test_review_page_images_load_and_rows_sorted_by_spot_share(review: Path, tmp_path: Path) -> None:
    dom = _browser(tmp_path, review / "review.html", "--dump-dom")
    assert 'data-images-loaded="21"' in dom  # 7 frames x (frame, labels, spots), all with naturalWidth > 0
    rows = _rows(dom)
    record = json.loads((review / "propagation.json").read_text())["frames"]
    assert sorted(s for s, _ in rows) == sorted(record)
    shares = [v for _, v in rows]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0  # worst first
    assert shares == pytest.approx(sorted((r["spot_share"] for r in record.values()), reverse=True))
    shot = tmp_path / "shot.png"
    _browser(tmp_path, review / "review.html", f"--screenshot={shot}", "--window-size=1000,800")
    from PIL import Image

    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[:2] == (800, 1000) and pixels.reshape(-1, 3).std(axis=0).max() > 10  # not a blank page


@needs_browser
def test_review_page_reports_a_missing_image(review: Path, tmp_path: Path) -> None:
    rows = [ReviewRow("a", 0, "key", 0.0, ("00000.jpg", "00000_labels.jpg", "missing.jpg"))]
    page = tmp_path / "page.html"
    page.write_text(render_review_page(rows, "t", image_dir=(review / "review").resolve().as_uri()))
    assert 'data-images-loaded="broken"' in _browser(tmp_path, page, "--dump-dom")


def test_page_is_sorted_without_a_browser() -> None:
    rows = [ReviewRow(s, i, "propagated", v, ("a", "b", "c")) for i, (s, v) in enumerate([("x", 0.1), ("y", 0.3),
                                                                                        ("z", 0.0), ("w", 0.3)])]
    html = render_review_page(rows, "t")
    assert [s for s, _ in _rows(html)] == ["y", "w", "x", "z"]  # share descending, ties in frame order
