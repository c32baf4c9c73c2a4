"""``--backend onnxruntime --onnx step.onnx``: a video model's per-frame step written by ``vidseg export --step``.

Each comparison runs the same model through :class:`VideoPredictor` with the PyTorch model and with the step file,
and requires identical label maps (logits within 1e-4). That the step file served the full clips is checked by
the graphs the backend had to export on the fly: only ``encode`` (features of frames needed as supports before
they were targets) and the decoders of the shorter clips (CFFM's first frames), never the full-clip decoder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "inference"))
from toy_segmenter import ToySegmenter  # noqa: E402

from vidseg.cli.main import main  # noqa: E402
from vidseg.errors import DataError  # noqa: E402
from vidseg.export import export_onnx  # noqa: E402
from vidseg.inference import VideoPredictor  # noqa: E402
from vidseg.inference.backend import make_backend  # noqa: E402

pytest.importorskip("onnxruntime", reason="the onnxruntime backend needs onnxruntime (extra [onnx] / [all])")

SIZE = (64, 96)  # synthetic VSPW frame (H, W) = the model input (no resize)


@pytest.fixture(scope="module")
def vspw_video(tmp_path_factory) -> Path:
    """A synthetic VSPW video: 12 frames of 64x96 (its frame folder)."""
    from vidseg.data.synth import generate

    root = generate("vspw", tmp_path_factory.mktemp("vspw"), videos=1, frames=12, size=SIZE, progress=False).root
    return next((root / "data").iterdir()) / "origin"


@pytest.fixture(scope="module")
def frames(vspw_video) -> list[np.ndarray]:
    from vidseg.inference.predictor import iter_video

    return [frame for frame, _ in iter_video(vspw_video)]


def _toy(**kwargs) -> ToySegmenter:
    model = ToySegmenter(**{"num_classes": 6, "seed": 1, **kwargs})
    with torch.no_grad():  # no class dominating through its bias
        model.head.bias.zero_()
        model.head.weight.mul_(4)
    return model.eval()


def _step_file(model: torch.nn.Module, path: Path, size: tuple[int, int] = SIZE) -> Path:
    export_onnx(model, path, step=True, image_size=size)
    return path


VARIANTS = {  # name: (toy kwargs, predictor mode, graphs exported on the fly besides the step file)
    "cffm_rule": ({"cffm_like": True}, "online", {"encode", "decode-s0"}),  # frames 0-2 alone, then 3 supports
    "tcb_offline": ({"support_offsets": (-3, -1), "offline_support_offsets": (1, 3)}, "offline", {"encode"}),
    "tcb_online": ({"support_offsets": (-3, -1), "offline_support_offsets": (1, 3)}, "online", {"encode"}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_step_file_same_masks(variant, frames, tmp_path):
    kwargs, mode, fallback = VARIANTS[variant]
    model = _toy(**kwargs)
    path = _step_file(model, tmp_path / "step.onnx")
    for options in ({}, {"return_logits": True}):  # the labels-only path and the full-size logits path
        ref = list(VideoPredictor(model, mode=mode, **options).predict(frames))
        backend = make_backend(model, "onnxruntime", onnx=path, cache_dir=tmp_path / "cache")
        got = list(VideoPredictor(model, mode=mode, backend=backend, **options).predict(frames))
        for a, b in zip(ref, got, strict=True):
            assert a.clip == b.clip
            np.testing.assert_array_equal(b.labels, a.labels, err_msg=f"frame {a.index}")
            if options:
                assert (a.logits - b.logits).abs().max() < 1e-4
    assert len({int(v) for p in ref for v in np.unique(p.labels)}) > 1  # not a constant map
    # the step file decoded every full clip: no full-clip decoder was exported (the first run exported them)
    assert {p.name.split("-64x96-")[1][:-5] for p in (tmp_path / "cache").glob("*.onnx")} == fallback


@pytest.mark.slow  # about 10-30 s on the loaded 2-core machine (ResNet-50 TCB export)
def test_tcb_ocr_step_file_same_masks(frames, tmp_path):
    """The registered TCB-OCR (ResNet-50, 64 channels, random weights with a spread classifier), online and
    offline (future supports), from its ``export_onnx(step=True)`` file."""
    from vidseg.models import build

    torch.manual_seed(0)
    model = build("tcb_ocr_r101", num_classes=7, depth=50, channels=64, aux_channels=64).eval()
    with torch.no_grad():
        model.head.weight.normal_()
        model.head.bias.zero_()
    path = _step_file(model, tmp_path / "tcb.onnx")
    for mode in ("online", "offline"):
        ref = list(VideoPredictor(model, mode=mode).predict(frames))
        backend = make_backend(model, "onnxruntime", onnx=path, cache_dir=tmp_path / "cache")
        got = list(VideoPredictor(model, mode=mode, backend=backend).predict(frames))
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_array_equal(b.labels, a.labels, err_msg=f"{mode} frame {a.index}")
        assert len({int(v) for p in ref for v in np.unique(p.labels)}) > 2
    assert [p.name.split("-64x96-")[1] for p in (tmp_path / "cache").glob("*.onnx")] == ["encode.onnx"]


def test_prepare_exports_only_what_the_step_cannot_take(tmp_path):
    """``prepare`` checks the file and exports the graphs of the other clip lengths only."""
    model = _toy(cffm_like=True)
    path = _step_file(model, tmp_path / "step.onnx")
    backend = make_backend(model, "onnxruntime", onnx=path, size=SIZE, cache_dir=tmp_path / "cache")
    assert not backend.exported  # the file serves the full clip
    backend.prepare(SIZE, clip_lengths=(1, 4))
    assert sorted(p.name.split("-64x96-")[1] for p in backend.exported) == ["decode-s0.onnx", "encode.onnx"]


def test_step_file_resume_skip(frames, tmp_path):
    """Skipped targets (resume) are never decoded: their features come from the encode graph when a later
    clip needs them as supports."""
    model = _toy(support_offsets=(-2, -1))
    path = _step_file(model, tmp_path / "step.onnx")
    skip = lambda i, name: 2 <= i < 6  # noqa: E731
    ref = list(VideoPredictor(model).predict(frames[:9], skip=skip))
    backend = make_backend(model, "onnxruntime", onnx=path, cache_dir=tmp_path)
    got = list(VideoPredictor(model, backend=backend).predict(frames[:9], skip=skip))
    assert [p.skipped for p in got] == [p.skipped for p in ref] == [2 <= i < 6 for i in range(9)]
    for a, b in zip(ref, got, strict=True):
        if not a.skipped:
            np.testing.assert_array_equal(b.labels, a.labels, err_msg=f"frame {a.index}")


def test_step_file_other_weights_change_masks(frames, tmp_path):
    """The file is what runs: a step file of the same model with other weights gives other labels."""
    model = _toy(cffm_like=True)
    other = _toy(cffm_like=True)
    with torch.no_grad():
        other.head.weight.copy_(torch.roll(other.head.weight, 1, dims=0))  # classes permuted
    path = _step_file(other, tmp_path / "other.onnx")
    ref = list(VideoPredictor(model).predict(frames))
    got = list(VideoPredictor(model, backend=make_backend(model, "onnxruntime", onnx=path, cache_dir=tmp_path))
               .predict(frames))
    same = [bool((a.labels == b.labels).all()) for a, b in zip(ref, got, strict=True)]
    assert same[:3] == [True] * 3 and not any(same[3:])  # frames 0-2 run on the model's own graphs


def test_wrong_files_one_line(tmp_path):
    model = _toy(support_offsets=(-2, -1))
    step = _step_file(model, tmp_path / "step.onnx")

    def refused(target, path, size=SIZE):
        with pytest.raises(DataError) as info:
            make_backend(target, "onnxruntime", onnx=path, size=size, cache_dir=tmp_path)
        assert "\n" not in str(info.value) and str(info.value).startswith(str(path))
        return str(info.value)

    image = tmp_path / "image.onnx"
    export_onnx(_toy(support_offsets=()), image, image_size=SIZE)
    assert "takes inputs ['image']; ToySegmenter needs the per-frame step of a video model" in refused(model, image)
    assert "needs an image model's graph" in refused(_toy(support_offsets=()), step)
    assert "graph input is 1x3x64x96 but the model input here is 1x3x32x48" in refused(model, step, (32, 48))
    assert ("is a step with 2 supports (leaves [0]) but ToySegmenter decodes a target with 3 supports"
            in refused(_toy(support_offsets=(-3, -2, -1)), step))
    assert ("input support0_0 is 1x8x32x48 but ToySegmenter's feature leaf 0 at 64x96 is 1x4x32x48"
            in refused(_toy(support_offsets=(-2, -1), width=4), step))
    assert "graph returns 6 classes but ToySegmenter has 9" in refused(_toy(support_offsets=(-2, -1), num_classes=9),
                                                                        step)
    make_backend(model, "onnxruntime", onnx=step, size=SIZE, cache_dir=tmp_path)  # the right file loads


@pytest.fixture(scope="module")
def cffm_weights(tmp_path_factory) -> Path:
    """cffm_b0 with seeded random weights (7 classes), spread so that many classes win somewhere."""
    from vidseg.models import build
    from vidseg.models.checkpoint import save_weights

    torch.manual_seed(0)
    model = build("cffm_b0", num_classes=7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("cffm") / "cffm.safetensors"
    save_weights(model, path)
    return path


def _segment_args(video: Path, weights: Path) -> list[str]:
    """``vidseg segment`` on the 64x96 video with cffm_b0 at the official keep-ratio resize (model input 64x96)."""
    return [str(video), "--model", "cffm_b0", "--weights", str(weights), "--num-classes", "7", "--quiet",
            "--img-scale", "96x64", "--size-divisor", "32", "--threads", "1"]


@pytest.mark.slow  # about 40 s on the loaded 2-core machine (the step export, then CFFM-B0's encode and decode-s0)
def test_cli_segment_cffm_step_file(cffm_weights, vspw_video, tmp_path):
    """``vidseg export --step`` then ``vidseg segment --backend onnxruntime --onnx step.onnx``: byte-identical PNGs
    to the torch backend on the registered cffm_b0."""
    from PIL import Image

    step = tmp_path / "step.onnx"
    assert main(["export", "--model", "cffm_b0", "--weights", str(cffm_weights), "--num-classes", "7", "--step",
                 "--size", "64x96", "--out", str(step), "--quiet"]) == 0
    common = _segment_args(vspw_video, cffm_weights)
    assert main(["segment", *common, "--out", str(tmp_path / "torch")]) == 0
    assert main(["segment", *common, "--out", str(tmp_path / "ort"), "--backend", "onnxruntime", "--onnx", str(step),
                 "--onnx-cache", str(tmp_path / "cache")]) == 0
    a, b = sorted((tmp_path / "torch").rglob("*.png")), sorted((tmp_path / "ort").rglob("*.png"))
    assert len(a) == 12 and [p.name for p in a] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    assert len({int(v) for p in a for v in np.unique(np.asarray(Image.open(p)))}) > 2  # not a constant map
    exported = {p.name.split("-64x96-")[1] for p in (tmp_path / "cache").glob("*.onnx")}
    assert exported == {"encode.onnx", "decode-s0.onnx"}  # frames 0-2; the step file decoded the rest


def test_cli_wrong_file_one_line(cffm_weights, vspw_video, tmp_path, capsys):
    """The CLI path with a file of another model: one line naming the file, no traceback."""
    image = tmp_path / "image.onnx"
    export_onnx(_toy(support_offsets=()), image, image_size=SIZE)
    code = main(["segment", *_segment_args(vspw_video, cffm_weights), "--out", str(tmp_path / "out"),
                 "--backend", "onnxruntime", "--onnx", str(image)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert f"{image}: takes inputs ['image']; cffm_b0 needs the per-frame step of a video model" in err
