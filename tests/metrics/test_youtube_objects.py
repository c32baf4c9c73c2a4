"""YouTube-Objects mean IoU per category and overall."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vidseg.errors import DataError
from vidseg.metrics.youtube_objects import YouTubeObjectsEvaluator, evaluate_youtube_objects_folder, frame_iou


def test_frame_iou_rules():
    z = np.zeros((4, 4), np.uint8)
    a = z.copy()
    a[:2] = 255
    b = z.copy()
    b[1:3] = 1
    assert frame_iou(z, z) == 1.0 and frame_iou(a, z) == 0.0 and frame_iou(a, b) == 4 / 12


def test_category_mean_of_video_means(tmp_path):
    rng = np.random.default_rng(0)
    expect: dict[str, list[float]] = {}
    for cat, vids in (("cat", 2), ("dog", 1)):
        for v in range(vids):
            ious = []
            for f in range(int(rng.integers(1, 4))):
                g = (rng.random((6, 7)) < 0.5).astype(np.uint8) * 255
                p = (rng.random((6, 7)) < 0.5).astype(np.uint8)
                for root, arr in ((tmp_path / "gt", g), (tmp_path / "pred", p)):
                    (root / cat / f"v{v}").mkdir(parents=True, exist_ok=True)
                    Image.fromarray(arr, "L").save(root / cat / f"v{v}" / f"{f:05d}.png")
                gi, pi = g > 0, p > 0
                ious.append((gi & pi).sum() / (gi | pi).sum())
            expect.setdefault(cat, []).append(float(np.mean(ious)))
    res = evaluate_youtube_objects_folder(tmp_path / "gt", tmp_path / "pred")
    cats = {c: np.mean(v) for c, v in expect.items()}
    assert res["per_category"] == pytest.approx(cats)
    assert res["mIoU"] == pytest.approx(np.mean(list(cats.values())))
    ev = YouTubeObjectsEvaluator()
    ev.merge(YouTubeObjectsEvaluator().state_dict())
    (tmp_path / "pred" / "dog" / "v0" / "00000.png").unlink()
    with pytest.raises(DataError, match="1 prediction frames missing"):
        evaluate_youtube_objects_folder(tmp_path / "gt", tmp_path / "pred")
