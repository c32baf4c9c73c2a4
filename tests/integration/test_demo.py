"""run_demo at tiny size: summary.json schema, report.html contents, printed table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vidseg.engine.demo import DEFAULT_MODELS, METRICS, DemoSize, run_demo


@pytest.mark.slow
def test_tiny_demo_writes_summary_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    size = DemoSize(videos=3, frames=18, height=32, width=48, iters=2, batch=2)
    summary = run_demo(tmp_path, size=size, tcb=False, progress=False)
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["models"] == summary["models"]
    assert set(data["models"]) == {m.label for m in DEFAULT_MODELS}
    for metrics in data["models"].values():
        assert set(metrics) == set(METRICS)
        assert all(0.0 <= v <= 100.0 for v in metrics.values() if not math.isnan(v))
        assert not math.isnan(metrics["mVC8"]) and not math.isnan(metrics["mVC16"])  # 18 frames > 16
    html = (tmp_path / "report.html").read_text()
    assert "<table" in html and html.count("data:image/png;base64") >= 2  # curves + per-video plot
    assert "Overlays" in html and "<video" in html
    out = capsys.readouterr().out
    assert "mVC8" in out and "cffm_b0" in out
