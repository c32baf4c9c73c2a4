"""run_demo at tiny size: summary.json schema, report.html contents, printed table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vidseg.demo.runs import DEFAULT_MODELS, METRICS, TCB_MODEL, DemoSize, format_summary, run_demo


@pytest.mark.slow
def test_tiny_demo_writes_summary_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    size = DemoSize(videos=3, frames=18, height=32, width=48, iters=2, batch=2)
    summary = run_demo(tmp_path, size=size, progress=False, parts=("semantic",))  # baseline, CFFM and TCB
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["models"] == summary["models"]
    assert set(data["models"]) == {m.label for m in (*DEFAULT_MODELS, TCB_MODEL)}
    for metrics in data["models"].values():
        assert set(metrics) == set(METRICS)
        assert all(0.0 <= v <= 1.0 for v in metrics.values() if not math.isnan(v))  # fractions, like eval JSONs
        assert not math.isnan(metrics["mVC8"]) and not math.isnan(metrics["mVC16"])  # 18 frames > 16
    # the TCB's MiT starts from the trained baseline's MiT (every encoder tensor), like CFFM's
    inits = data["setup"]["models"]
    assert inits[TCB_MODEL.label]["initialised_tensors"] > 0
    assert inits[TCB_MODEL.label]["initialised_tensors"] == _baseline_encoder_tensors()
    html = (tmp_path / "report.html").read_text()
    assert "<table" in html and html.count("data:image/png;base64") >= 2  # curves + per-video plot
    assert "Overlays" in html and "<video" in html
    out = capsys.readouterr().out
    assert "mVC8" in out and "cffm_b0" in out and TCB_MODEL.label in out
    assert all(label in html for label in data["models"])


def test_format_summary_prints_percent() -> None:
    summary = {"models": {"m": {"mIoU": 0.5, "WIoU": 0.25, "mVC8": 0.875, "mVC16": 1.0, "TC": 0.125}}}
    table = format_summary(summary)
    assert "50" in table and "87.5" in table and "12.5" in table and "0.875" not in table


def _baseline_encoder_tensors() -> int:
    """Tensors of the baseline's MiT (all of them start the TCB's encoder)."""
    from vidseg.models.registry import build

    return len(build("segformer_b0", num_classes=124, embed_dim=64).backbone.state_dict())
