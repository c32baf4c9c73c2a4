"""``vidseg segment`` on an .mp4 file for the panoptic (Clip-PanoFCN) and object (STCNN, ``--first-mask``) paths:
the written files are what the entry's predictor gives on the decoded frames, named by frame number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidseg.cli.main import main
from vidseg.inference.predictor import iter_video
from vidseg.models import load_model, make_predictor
from vidseg.models.checkpoint import save_weights
from vidseg.models.registry import build

av = pytest.importorskip("av")
NUM, H, W = 5, 64, 96


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A moving red box on a noisy background, 5 frames of 64x96, H.264."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (H + NUM, W + NUM, 3)).astype(np.uint8)
    base[10:40, 20:60] = (250, 20, 20)
    path = tmp_path_factory.mktemp("mp4") / "street.mp4"
    write_mp4(path, [np.ascontiguousarray(base[i: i + H, i: i + W]) for i in range(NUM)])
    return path


def _rgb_ids(path: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def test_segment_mp4_panoptic(clip: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build("clip_panofcn_tiny")
    with torch.no_grad():  # make things and stuff appear with random weights
        model.position_head.out_inst.bias.fill_(0.0)
        model.kernel_head.out_conv.weight.mul_(5)
        model.thing_generator.embed_extractor.weight.mul_(30)
        model.stuff_generator.embed_extractor.weight.mul_(30)
    weights = tmp_path / "pano.safetensors"
    save_weights(model, weights)
    sub, overlay = tmp_path / "sub", tmp_path / "ov.mp4"
    assert main(["segment", str(clip), "--model", "clip_panofcn_tiny", "--weights", str(weights), "--out", str(sub),
                 "--overlay", str(overlay), "--json", str(tmp_path / "row.json"), "--quiet"]) == 0
    names = [f"{i:08d}" for i in range(1, NUM + 1)]
    pngs = sorted((sub / "pan_pred" / "street").glob("*.png"))
    assert [p.stem for p in pngs] == names
    (entry,) = json.loads((sub / "pred.json").read_text())["annotations"]
    assert entry["video_id"] == "street" and [f["file_name"] for f in entry["annotations"]] == [f"{n}.png" for n in names]
    row = json.loads((tmp_path / "row.json").read_text())
    assert (row["video"], row["frames"], row["written"]) == ("street", NUM, NUM)
    with av.open(str(overlay)) as container:
        assert sum(1 for _ in container.decode(video=0)) == NUM
    # the same as the predictor on the decoded frames
    expected = list(make_predictor("clip_panofcn_tiny", load_model("clip_panofcn_tiny", weights)).predict(clip))
    assert len(expected) == NUM
    for png, pred, frame in zip(pngs, expected, entry["annotations"], strict=True):
        ids = _rgb_ids(png)
        np.testing.assert_array_equal(ids, pred.ids)
        assert {s["id"] for s in frame["segments_info"]} == set(np.unique(pred.ids).tolist()) - {0}
    assert any(len(np.unique(_rgb_ids(p))) > 1 for p in pngs)
    # resumed: nothing is written again
    assert main(["segment", str(clip), "--model", "clip_panofcn_tiny", "--weights", str(weights), "--out", str(sub),
                 "--json", str(tmp_path / "again.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["skipped"] == NUM


def test_segment_mp4_object(clip: Path, tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "stcnn.safetensors"
    save_weights(build("stcnn_small"), weights)
    first = np.zeros((H, W), np.uint8)
    first[10:40, 20:60] = 1
    first[45:60, 70:90] = 2
    mask_path = tmp_path / "first.png"
    img = Image.fromarray(first, "P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    img.save(mask_path)
    out, overlay = tmp_path / "res", tmp_path / "ov.mp4"
    assert main(["segment", str(clip), "--model", "stcnn_small", "--weights", str(weights), "--first-mask",
                 str(mask_path), "--out", str(out), "--overlay", str(overlay), "--json", str(tmp_path / "row.json"),
                 "--quiet"]) == 0
    pngs = sorted((out / "street").glob("*.png"))
    assert [p.stem for p in pngs] == [f"{i:08d}" for i in range(1, NUM + 1)]
    row = json.loads((tmp_path / "row.json").read_text())
    assert (row["video"], row["frames"], row["objects"]) == ("street", NUM, [1, 2])
    with av.open(str(overlay)) as container:
        assert sum(1 for _ in container.decode(video=0)) == NUM
    frames = [f for f, _ in iter_video(clip)]
    predictor = make_predictor("stcnn_small", load_model("stcnn_small", weights))
    expected = list(predictor.stream(frames, first))
    for png, pred in zip(pngs, expected, strict=True):
        img = Image.open(png)
        assert img.mode == "P" and img.size == (W, H)
        np.testing.assert_array_equal(np.asarray(img), pred.mask)
    # a first mask of another size than the video's frames: one-line error naming the mask
    Image.fromarray(first[:32], "P").save(tmp_path / "small.png")
    assert main(["segment", str(clip), "--model", "stcnn_small", "--weights", str(weights), "--first-mask",
                 str(tmp_path / "small.png"), "--out", str(tmp_path / "x"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "small.png" in err and "32x96" in err and "Traceback" not in err
