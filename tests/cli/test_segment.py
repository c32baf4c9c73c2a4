"""vidseg segment: VSPW-format PNGs, overlay video, resume without redoing finished frames, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidseg.categories import semantic_palette
from vidseg.cli.main import main
from vidseg.inference import VideoPredictor


@pytest.fixture(scope="module")
def frame_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vid") / "walk"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(folder / f"{i + 1:08d}.jpg")
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from vidseg.models import build
    from vidseg.models.checkpoint import save_weights

    torch.manual_seed(3)
    model = build("segformer_b0")
    with torch.no_grad():  # make the classes differ across pixels
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("w") / "segformer.safetensors"
    save_weights(model, path)
    return path, model


def test_segment_writes_vspw_pngs_and_resumes(frame_dir, weights, tmp_path, capsys):
    path, model = weights
    out = tmp_path / "out"
    overlay = tmp_path / "overlay.mp4"
    args = [str(frame_dir), "--model", "segformer_b0", "--weights", str(path), "--out", str(out), "--quiet",
            "--img-scale", "none", "--size-divisor", "1"]  # frames as they are (the official 2048x512 is slow)
    assert main(["segment", *args, "--overlay", str(overlay), "--json", str(tmp_path / "s.json")]) == 0
    pngs = sorted((out / "walk").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:08d}.png" for i in range(1, 5)]
    expected = list(VideoPredictor(model).predict(frame_dir))
    for p, pred in zip(pngs, expected, strict=True):
        img = Image.open(p)
        assert img.mode == "P" and img.size == (48, 32)
        arr = np.asarray(img)
        assert arr.max() <= 123
        np.testing.assert_array_equal(arr, pred.labels)
        np.testing.assert_array_equal(np.array(img.getpalette()[:372]).reshape(124, 3), semantic_palette())
    assert len(set(np.unique(np.asarray(Image.open(pngs[0]))))) > 1
    import av

    with av.open(str(overlay)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4
    assert "written" in capsys.readouterr().out

    # resume: delete one mask, the others must not be rewritten
    pngs[2].unlink()
    mtimes = {p.name: p.stat().st_mtime_ns for p in pngs if p.exists()}
    assert main(["segment", *args, "--json", str(tmp_path / "r.json")]) == 0
    import json

    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["written"] == 1 and summary["skipped"] == 3
    for p in pngs:
        if p.name in mtimes:
            assert p.stat().st_mtime_ns == mtimes[p.name]
    np.testing.assert_array_equal(np.asarray(Image.open(pngs[2])), expected[2].labels)
    # resume with an overlay: finished masks are read back for the picture
    overlay2 = tmp_path / "again.mp4"
    assert main(["segment", *args, "--overlay", str(overlay2)]) == 0
    assert overlay2.stat().st_size > 0


def test_segment_errors(frame_dir, weights, tmp_path, capsys):
    assert main(["segment", str(tmp_path / "missing"), "--model", "segformer_b0", "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    from vidseg.models.checkpoint import save_weights

    bad = tmp_path / "bad.safetensors"
    state = dict(weights[1].state_dict())
    del state["decode_head.linear_pred.weight"]
    save_weights(state, bad)
    code = main(["segment", str(frame_dir), "--model", "segformer_b0", "--weights", str(bad),
                 "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert "missing 1 (decode_head.linear_pred.weight)" in capsys.readouterr().err
    assert main(["segment", str(frame_dir), "--model", "segformer_b0", "--img-scale", "big",
                 "--out", str(tmp_path / "o"), "--quiet"]) == 2


def test_compile_refused_with_onnxruntime_and_non_semantic_models(frame_dir, tmp_path, capsys):
    code = main(["segment", str(frame_dir), "--model", "segformer_b0", "--compile", "--backend", "onnxruntime",
                 "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--compile applies to --backend torch" in err and len(err.strip().splitlines()) == 1
    assert main(["segment", str(frame_dir), "--model", "panofcn_r50", "--compile", "--out", str(tmp_path / "p"),
                 "--quiet"]) == 2
    assert "--compile supports semantic models" in capsys.readouterr().err


@pytest.mark.slow
def test_compile_gives_the_same_masks(frame_dir, weights, tmp_path):
    """--compile (inductor on the backbone) writes the masks of the plain run."""
    import torch._dynamo

    outs = {}
    for flag in ([], ["--compile"]):
        out = tmp_path / ("c" if flag else "p")
        assert main(["segment", str(frame_dir), "--model", "segformer_b0", "--weights", str(weights[0]),
                     "--out", str(out), "--quiet", *flag]) == 0
        outs[bool(flag)] = [np.array(Image.open(p)) for p in sorted((out / "walk").glob("*.png"))]
    torch._dynamo.reset()
    assert len(outs[True]) == 4 and all(np.array_equal(a, b) for a, b in zip(outs[True], outs[False]))
