"""Issue 14: the semantic demo, tiny: report readable in Chromium, stage names and times, checkpoints usable."""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from tests.viz.browser_check import find_chromium, loaded_media

from vidseg.demo.data import DemoSize
from vidseg.demo.runs import run_demo
from vidseg.models import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    size = DemoSize(videos=3, frames=10, height=48, width=64, iters=3, batch=2)
    only = {"parts": ("semantic",)} if "parts" in inspect.signature(run_demo).parameters else {}
    torch.set_num_threads(1)
    summary = run_demo(out, size=size, seed=0, progress=True, **only)
    return out, summary


def test_report_text_and_summary(demo, capsys):
    out, summary = demo
    html = (out / "report.html").read_text()
    prose = " ".join(re.findall(r"<p>(.*?)</p>", html, re.S))
    assert "{" not in prose and "}" not in prose  # no Python dicts
    assert "48x64 (HxW)" in prose and "higher is better" in prose and "bootstrap" in prose
    assert "same number of threads" in prose
    iters = {label: m["iters"] for label, m in summary["setup"]["models"].items()}
    assert iters["segformer_b0 (baseline)"] == 3 and iters["cffm_b0"] == 2 and iters["tcb_ppm_b0"] == 2
    for label, n in iters.items():
        assert f"{label}: registered model" in prose and f", {n} steps" in prose
    for metric in ("mIoU", "WIoU", "mVC8", "mVC16", "TC"):
        assert f"<td>{metric}</td>" in html  # the meaning table
    assert set(summary["spread"]) == set(iters)
    for spread in summary["spread"].values():  # VC16 has no window in 10-frame videos: None, not NaN
        assert spread["mIoU"] >= 0 and spread["mVC8"] >= 0 and spread["mVC16"] is None
    assert "train tcb_ppm_b0" in summary["stage_seconds"] and "report" in summary["stage_seconds"]
    assert 'class="legend"' in html and "poster=" in html


def test_demo_checkpoints_rebuild_their_models(demo):
    out, _ = demo
    assert (out / "runs" / "tcb_ppm_b0" / "last.pt").is_file()
    for name in ("segformer_b0", "cffm_b0", "tcb_ppm_b0"):
        model = load_model(name, out / "runs" / name / "last.pt")  # narrow widths come from the checkpoint
        assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.skipif(find_chromium() is None, reason="no headless browser (chromium) installed; .ci/run installs one")
def test_demo_report_loads_in_chromium(demo):
    out, _ = demo
    media = loaded_media(out / "report.html", find_chromium())
    assert sum(k == "video" for k, _, _ in media) == 1 and sum(k == "img" for k, _, _ in media) >= 2, media
    assert all(w > 0 and h > 0 for _, w, h in media), media
