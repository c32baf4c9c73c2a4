"""``vidseg segment`` for panoptic (VIPSeg submission layout) and object (DAVIS layout) models, scored by
``vidseg eval vipseg`` / ``vidseg eval davis`` directly; dispatch through the registry task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidseg.cli.main import main
from vidseg.data.synth import generate
from vidseg.data.vipseg_train import vipseg_videos
from vidseg.inference.panoptic import PanopticFramePrediction
from vidseg.inference.panoptic_segment import segment_panoptic_video
from vidseg.metrics.vipseg_eval import evaluate_vipseg_folder
from vidseg.structures import DEFAULT_LABEL_DIVISOR


@pytest.fixture(scope="module")
def vip720(tmp_path_factory) -> Path:
    """A synthetic VIPSeg set (2 videos x 4 frames, 64x96) converted to the 720P COCO-style layout."""
    base = tmp_path_factory.mktemp("vip")
    generate("vipseg", base / "raw", videos=2, frames=4, size=(64, 96), seed=1, val_fraction=0.5, progress=False)
    assert main(["convert", "vipseg-720p", "--src", str(base / "raw"), "--out", str(base / "720"), "--height", "64",
                 "--quiet"]) == 0
    return base / "720"


class OraclePredictor:
    """Yields the ground truth of a VIPSeg video as predictions (what a perfect model would give)."""

    def __init__(self, video) -> None:
        self.video = video

    def predict(self, frames):
        for i, _ in enumerate(frames):
            ids = self.video.load_panoptic_ids(i).astype(np.int64)
            category = np.where(ids > 0, ids // DEFAULT_LABEL_DIVISOR - 1, -1)
            instance = ids % DEFAULT_LABEL_DIVISOR
            track = np.where((ids > 0) & (instance > 0), instance - 1, -1)
            yield PanopticFramePrediction(i, f"{i + 1:08d}", category, track)


def _eval(root: Path, submit: Path) -> dict:
    return evaluate_vipseg_folder(root / "panoptic_gt_VIPSeg_val.json", root / "panomasksRGB", submit,
                                  ks=(1, 2, 4), protocol="strict", progress=False)


def test_panoptic_layout_of_the_ground_truth_scores_perfectly(vip720: Path, tmp_path: Path) -> None:
    """The written layout is what the evaluator reads: the GT written through it scores VPQ = STQ = 1."""
    (video,) = vipseg_videos(vip720, "val")
    frames = vip720 / "images" / video.name
    row = segment_panoptic_video(OraclePredictor(video), frames, tmp_path / "sub", progress=False)
    assert row["frames"] == len(video) == 4 and row["tracks"] > 0
    res = _eval(vip720, tmp_path / "sub")
    assert res["VPQ_final"]["all"] == pytest.approx(1.0) and res["STQ"] == pytest.approx(1.0)
    # one entry per video, file names as the GT's, category ids 0-based VIPSeg ids
    data = json.loads((tmp_path / "sub" / "pred.json").read_text())
    (entry,) = data["annotations"]
    assert entry["video_id"] == video.name
    assert [f["file_name"] for f in entry["annotations"]] == [f"{i:08d}.png" for i in range(1, 5)]
    seg = entry["annotations"][0]["segments_info"][0]
    assert seg["category_id"] == seg["id"] // DEFAULT_LABEL_DIVISOR - 1


def test_segment_cli_panoptic_writes_a_submission_eval_accepts(vip720: Path, tmp_path: Path, capsys) -> None:
    (video,) = vipseg_videos(vip720, "val")
    frames = vip720 / "images" / video.name
    sub, overlay = tmp_path / "sub", tmp_path / "ov.mp4"
    args = ["segment", str(frames), "--model", "clip_panofcn_tiny", "--out", str(sub), "--quiet"]
    assert main([*args, "--overlay", str(overlay)]) == 0
    assert sorted(p.name for p in (sub / "pan_pred" / video.name).glob("*.png")) == [f"{i:08d}.png" for i in range(1, 5)]
    assert overlay.stat().st_size > 0
    assert main(["eval", "vipseg", "--gt-json", str(vip720 / "panoptic_gt_VIPSeg_val.json"), "--gt-dir",
                 str(vip720 / "panomasksRGB"), "--pred", str(sub), "--protocol", "strict", "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*args, "--json", str(tmp_path / "row.json")]) == 0  # same run: the finished video is skipped
    assert json.loads((tmp_path / "row.json").read_text())["skipped"] == 4
    # another model into the same folder is refused (provenance), test options are refused for panoptic models
    assert main(["segment", str(frames), "--model", "panofcn_r50", "--out", str(sub), "--quiet"]) != 0
    assert "different run" in capsys.readouterr().err
    assert main([*args, "--img-scale", "96x64"]) != 0
    assert "does not apply" in capsys.readouterr().err.replace("do(es)", "does")


@pytest.fixture(scope="module")
def davis(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis") / "DAVIS"
    generate("davis", root, videos=2, frames=6, size=(64, 96), seed=0, val_fraction=0.5, progress=False)
    return root


@pytest.mark.slow  # ~25 s idle, 85 s on the loaded shared machine (fine-tuning two objects)
def test_segment_cli_object_davis_layout_scored_directly(davis: Path, tmp_path: Path, capsys) -> None:
    seq = (davis / "ImageSets" / "2017" / "val.txt").read_text().split()[0]
    first = davis / "Annotations" / "480p" / seq / "00000.png"
    res = tmp_path / "res"
    base = ["segment", str(davis / "JPEGImages" / "480p" / seq), "--model", "stcnn_small", "--first-mask",
            str(first), "--out", str(res), "--quiet"]
    assert main([*base, "--finetune", "--finetune-pairs", "2", "--finetune-epochs", "1"]) == 0
    names = sorted(p.name for p in (res / seq).glob("*.png"))
    assert names == sorted(p.name for p in (davis / "Annotations" / "480p" / seq).glob("*.png"))
    assert sorted(p.name for p in (res / seq / ".finetune").glob("*.pt"))  # one checkpoint per object
    out = tmp_path / "davis.json"
    assert main(["eval", "davis", "--davis", str(davis), "--results", str(res), "--no-csv", "--no-progress",
                 "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert 0.0 <= scores["J&F-Mean"] <= 1.0
    capsys.readouterr()
    # other options into the same folder are refused (the fine-tuned models would differ)
    assert main(base) != 0
    assert "different run" in capsys.readouterr().err
    assert main(["segment", str(first.parent), "--model", "stcnn_small", "--out", str(tmp_path / "x")]) != 0
    assert "--first-mask" in capsys.readouterr().err


def test_segment_cli_object_davis2016_binary_mask(davis: Path, tmp_path: Path) -> None:
    """DAVIS 2016 style: a 0/255 first mask (objects merged), results scored with --year 2016."""
    from PIL import Image

    seq = (davis / "ImageSets" / "2016" / "val.txt").read_text().split()[0]
    ids = np.asarray(Image.open(davis / "Annotations" / "480p" / seq / "00000.png"))
    Image.fromarray(np.where(ids > 0, 255, 0).astype(np.uint8), "L").save(tmp_path / "fg.png")
    res = tmp_path / "res"
    assert main(["segment", str(davis / "JPEGImages" / "480p" / seq), "--model", "stcnn_small", "--first-mask",
                 str(tmp_path / "fg.png"), "--out", str(res), "--quiet"]) == 0
    written = np.asarray(Image.open(res / seq / "00003.png"))
    assert set(np.unique(written)) <= {0, 1}
    out = tmp_path / "d16.json"
    assert main(["eval", "davis", "--davis", str(davis), "--results", str(res), "--year", "2016", "--no-csv",
                 "--no-progress", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["num_objects"] == 1
