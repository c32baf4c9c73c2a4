"""The demo's panoptic and VOS parts at tiny sizes (pipeline and summary shape; the learning itself is measured
by the full demo, recorded in docs/benchmarks.md), and ``vidseg demo --parts``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidseg.cli.main import main
from vidseg.data.davis import scan_davis
from vidseg.demo.panoptic import COLUMNS as PANOPTIC_COLUMNS
from vidseg.demo.panoptic import MODELS, PanopticDemoSize, run_panoptic_part
from vidseg.demo.runs import run_demo
from vidseg.demo.vos import COLUMNS as VOS_COLUMNS
from vidseg.demo.vos import LABELS, VosDemoSize, run_vos_part
from vidseg.metrics.davis import db_eval_iou

TINY_PANOPTIC = PanopticDemoSize(videos=3, frames=4, steps=2)
TINY_VOS = VosDemoSize(videos=4, frames=5, spatial_steps=2, steps=2, batch=2)


@pytest.mark.slow
def test_panoptic_part_tiny(tmp_path: Path) -> None:
    summary, sections = run_panoptic_part(tmp_path, size=TINY_PANOPTIC, progress=False)
    assert set(summary["models"]) == {m.label for m in MODELS}
    for metrics in summary["models"].values():
        assert set(metrics) == set(PANOPTIC_COLUMNS)
        assert all(np.isnan(v) or 0.0 <= v <= 1.0 for v in metrics.values())
        assert np.isnan(metrics["VPQ8"])  # 4-frame videos have no window of 8 frames (official: skipped)
    assert summary["setup"]["val_videos"] >= 1 and summary["setup"]["model"] == "clip_panofcn_tiny"
    assert (tmp_path / "panoptic" / "runs").is_dir()
    (section,) = sections
    assert section.items[0].rows and Path(section.items[1].path).is_file()


@pytest.mark.slow
def test_vos_part_tiny_and_copy_first_mask_is_exact(tmp_path: Path) -> None:
    summary, sections = run_vos_part(tmp_path, size=TINY_VOS, progress=False)
    assert list(summary["models"]) == list(LABELS)
    assert all(set(m) == set(VOS_COLUMNS) for m in summary["models"].values())
    # copy-first-mask J against a direct computation (DAVIS: first and last frames excluded)
    val, _ = scan_davis(tmp_path / "vos" / "synthetic_davis", 2016, "val")
    per_video = []
    for v in val:
        first = v.load_label(0) == 1
        per_video.append(np.mean([db_eval_iou(v.load_label(i) == 1, first) for i in range(1, len(v) - 1)]))
    assert summary["models"]["copy first mask"]["J-Mean"] == pytest.approx(np.mean(per_video), abs=1e-4)
    assert Path(sections[0].items[1].path).is_file()


@pytest.mark.slow
def test_run_demo_parts_without_semantic(tmp_path: Path, monkeypatch) -> None:
    import vidseg.demo.runs as runs

    monkeypatch.setattr(runs, "run_panoptic_part",
                        lambda out, **kw: run_panoptic_part(out, size=TINY_PANOPTIC, **kw))
    monkeypatch.setattr(runs, "run_vos_part", lambda out, **kw: run_vos_part(out, size=TINY_VOS, **kw))
    summary = run_demo(tmp_path, parts=("panoptic", "vos"), progress=False)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["parts"] == ["panoptic", "vos"] and "models" not in saved
    assert set(saved["panoptic"]["models"]) == set(summary["panoptic"]["models"])
    html = (tmp_path / "report.html").read_text()
    assert "Video panoptic segmentation" in html and "Video object segmentation" in html


def test_demo_cli_rejects_unknown_parts(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path), "--parts", "semantic,optical-flow"]) != 0
    err = capsys.readouterr().err
    assert "optical-flow" in err and len(err.strip().splitlines()) == 1
