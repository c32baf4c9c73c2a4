"""The onnxruntime backend (issue 13): the same masks as the torch backend through the one predictor code path.

Each comparison runs the same model twice through :class:`VideoPredictor`, once with the PyTorch model and once
with ``make_backend(model, "onnxruntime")``, on synthetic VSPW frames, and requires identical label maps (and
logits / probabilities within 1e-4 where the predictor returns them). The models are the real registered
``segformer_b0`` / ``cffm_b0`` (random weights, 7 classes, 64x96 model input) and the test toy in its video,
image, CFFM-rule and TCB-offline variants, so every clip rule and clip length is exercised.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "inference"))
from toy_segmenter import ToySegmenter  # noqa: E402

from vidseg.cli.main import main  # noqa: E402
from vidseg.errors import ConfigError, DataError  # noqa: E402
from vidseg.inference import EnsemblePredictor, VideoPredictor  # noqa: E402
from vidseg.inference.backend import BACKENDS, make_backend  # noqa: E402
from vidseg.inference.tta import TTA  # noqa: E402

pytest.importorskip("onnxruntime", reason="the onnxruntime backend needs onnxruntime (extra [onnx] / [all])")

SIZE = (64, 96)  # synthetic VSPW frame (H, W)


@pytest.fixture(scope="module")
def vspw_video(tmp_path_factory) -> Path:
    """A synthetic VSPW video: 12 frames of 64x96 (its frame folder)."""
    from vidseg.data.synth import generate

    root = generate("vspw", tmp_path_factory.mktemp("vspw"), videos=1, frames=12, size=SIZE, progress=False).root
    return next((root / "data").iterdir()) / "origin"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx_cache")


def _frames(video: Path) -> list[np.ndarray]:
    from vidseg.inference.predictor import iter_video

    return [frame for frame, _ in iter_video(video)]


def _compare(model, frames, cache, model_name=None, **options):
    """(torch predictions, onnxruntime predictions, backend) of one model over ``frames``."""
    model.eval()
    ref = list(VideoPredictor(model, **options).predict(frames))
    backend = make_backend(model, "onnxruntime", cache_dir=cache, model_name=model_name)
    got = list(VideoPredictor(model, backend=backend, **options).predict(frames))
    assert [p.index for p in got] == [p.index for p in ref]
    return ref, got, backend


def _assert_same_labels(ref, got):
    for a, b in zip(ref, got, strict=True):
        assert a.skipped == b.skipped and a.clip == b.clip
        if not a.skipped:
            assert b.labels.dtype == a.labels.dtype
            np.testing.assert_array_equal(b.labels, a.labels, err_msg=f"frame {a.index}")


@pytest.mark.parametrize("variant", ["video", "image", "cffm_rule", "tcb_offline"])
def test_toy_models_same_masks_and_logits(variant, vspw_video, cache):
    kwargs = {"video": {"support_offsets": (-2, -1)}, "image": {"support_offsets": ()},
              "cffm_rule": {"cffm_like": True},
              "tcb_offline": {"support_offsets": (-3, -1), "offline_support_offsets": (1, 3)}}[variant]
    mode = "offline" if variant == "tcb_offline" else "online"
    model = ToySegmenter(num_classes=6, seed=1, **kwargs)
    with torch.no_grad():  # no class dominating through its bias
        model.head.bias.zero_()
        model.head.weight.mul_(4)
    frames = _frames(vspw_video)
    ref, got, _ = _compare(model, frames, cache, mode=mode)
    _assert_same_labels(ref, got)
    assert len({int(v) for p in ref for v in np.unique(p.labels)}) > 1  # not a constant map
    ref, got, _ = _compare(model, frames, cache, mode=mode, return_logits=True)  # the full-size logits path
    for a, b in zip(ref, got, strict=True):
        assert (a.logits - b.logits).abs().max() < 1e-4
    _assert_same_labels(ref, got)


def _random_model(name: str) -> torch.nn.Module:
    """A registered model with seeded random weights (7 classes), spread so that many classes win somewhere."""
    from vidseg.models import build

    torch.manual_seed(0)
    model = build(name, num_classes=7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def segformer(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """segformer_b0 (random weights) prepared for inference, and its weights file (the CLI test reuses the
    exported graphs)."""
    from vidseg.inference.runtime import prepare_for_inference
    from vidseg.models.checkpoint import save_weights

    model = _random_model("segformer_b0")
    path = tmp_path_factory.mktemp("w") / "segformer.safetensors"
    save_weights(model, path)
    return prepare_for_inference(model), path  # as the CLI runs it (BN folded), so it finds the same graphs


def _check_registered(model, name, video, cache):
    """Official test resize (keep-ratio to 96x64, multiples of 32: model input 64x96), identical masks."""
    ref, got, backend = _compare(model, _frames(video), cache, name, img_scale=(96, 64), size_divisor=32)
    _assert_same_labels(ref, got)
    assert len({int(v) for p in ref for v in np.unique(p.labels)}) > 2
    return sorted(p.name for p in backend.exported)


def test_segformer_b0_same_masks(segformer, vspw_video, cache):
    names = _check_registered(segformer[0], "segformer_b0", vspw_video, cache)
    assert names and all("-64x96-" in n for n in names)  # graphs are exported at the model input size


@pytest.mark.slow  # about 30 s on a loaded 2-core machine (the ONNX export of CFFM's decoders)
def test_cffm_b0_same_masks(vspw_video, cache):
    names = _check_registered(_random_model("cffm_b0"), "cffm_b0", vspw_video, cache)
    # frames 0-2 decode alone (no supports), later ones with 3 supports
    assert {n.split("-")[-1] for n in names} == {"encode.onnx", "s0.onnx", "s3.onnx"}


def test_cache_reuse_and_weights_key(vspw_video, cache):
    frames = _frames(vspw_video)[:3]
    model = ToySegmenter(support_offsets=(), seed=2).eval()
    first = make_backend(model, "onnxruntime", size=SIZE, cache_dir=cache)
    again = make_backend(model, "onnxruntime", size=SIZE, cache_dir=cache)
    assert first.exported and not again.exported  # the second backend found the graphs in the cache
    with torch.no_grad():
        model.head.bias.add_(1.0)  # other weights -> other files, never a stale graph
    other = make_backend(model, "onnxruntime", size=SIZE, cache_dir=cache)
    assert other.exported and set(other.exported).isdisjoint(first.exported)
    ref = [p.labels for p in VideoPredictor(model).predict(frames)]
    got = [p.labels for p in VideoPredictor(model, backend=other).predict(frames)]
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_skip_and_tta(vspw_video, cache):
    """Skipped targets (resume) still give their supports' features; TTA exports one graph set per view size."""
    frames = _frames(vspw_video)[:8]
    model = ToySegmenter(support_offsets=(-2, -1), seed=3)
    skip = lambda i, name: i < 5  # noqa: E731
    ref = list(VideoPredictor(model.eval()).predict(frames, skip=skip))
    got = list(VideoPredictor(model, backend=make_backend(model, "onnxruntime", cache_dir=cache))
               .predict(frames, skip=skip))
    _assert_same_labels(ref, got)
    tta = TTA(scales=(0.5, 1.0), flip=True)
    ref, got, backend = _compare(model, frames[:4], cache, tta=tta)
    _assert_same_labels(ref, got)
    # the 64x96 graphs came from the cache (same model above); the 0.5 scale's were exported now
    assert {re.search(r"-(\d+x\d+)-", p.name).group(1) for p in backend.exported} == {"32x48"}


def test_ensemble_probabilities(vspw_video, cache):
    """The pseudo-label path: averaged softmax of two models, torch vs onnxruntime."""
    frames = _frames(vspw_video)[:5]
    models = [ToySegmenter(support_offsets=(-2, -1), seed=s).eval() for s in (4, 5)]
    ref = list(EnsemblePredictor([VideoPredictor(m) for m in models], return_probs=True).predict(frames))
    got = list(EnsemblePredictor([VideoPredictor(m, backend=make_backend(m, "onnxruntime", cache_dir=cache))
                                  for m in models], return_probs=True).predict(frames))
    for a, b in zip(ref, got, strict=True):
        assert (a.probs - b.probs).abs().max() < 1e-5
        np.testing.assert_array_equal(a.labels, b.labels)


def test_given_onnx_file(vspw_video, cache, tmp_path):
    """An image model's graph from ``vidseg export`` (image -> full-size logits) runs instead of exporting."""
    from vidseg.export import export_onnx

    model = ToySegmenter(support_offsets=(), seed=6).eval()
    path = tmp_path / "toy.onnx"
    export_onnx(model, path, image_size=SIZE)
    frames = _frames(vspw_video)[:4]
    backend = make_backend(model, "onnxruntime", onnx=path, cache_dir=cache)
    ref = list(VideoPredictor(model).predict(frames))
    got = list(VideoPredictor(model, backend=backend).predict(frames))
    _assert_same_labels(ref, got)
    assert not backend.exported
    # the same file for another input size / another class count: one-line errors naming the file
    with pytest.raises(DataError, match=r"toy.onnx: graph input is 1x3x64x96 but the model input here is 1x3x32x48"):
        make_backend(model, "onnxruntime", onnx=path, size=(32, 48), cache_dir=cache)
    other = ToySegmenter(num_classes=9, support_offsets=(), seed=6).eval()
    with pytest.raises(DataError, match="graph returns 5 classes but .* has 9: an ONNX file of another model"):
        make_backend(other, "onnxruntime", onnx=path, size=SIZE, cache_dir=cache)


def test_refusals(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="backend must be one of torch, onnxruntime"):
        make_backend(ToySegmenter(), "tensorrt")
    with pytest.raises(ConfigError, match="keeps a memory across frames .* runs on torch only"):
        make_backend(ToySegmenter(stateful=True), "onnxruntime", cache_dir=tmp_path)
    with pytest.raises(DataError, match="x.onnx: ONNX file not found"):  # video models take a step file
        make_backend(ToySegmenter(), "onnxruntime", onnx=tmp_path / "x.onnx", cache_dir=tmp_path)
    with pytest.raises(DataError, match="x.onnx: ONNX file not found"):
        make_backend(ToySegmenter(support_offsets=()), "onnxruntime", onnx=tmp_path / "x.onnx", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="--onnx needs --backend onnxruntime"):
        make_backend(ToySegmenter(), "torch", onnx=tmp_path / "x.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"needs onnxruntime: pip install 'vidseg\[onnx\]'"):
        make_backend(ToySegmenter(), "onnxruntime", cache_dir=tmp_path)


def test_cli_choices_match_library():
    from vidseg.cli.backend_options import BACKEND_CHOICES

    assert BACKEND_CHOICES == BACKENDS


def test_cli_segment_same_pngs(segformer, vspw_video, cache, tmp_path, capsys):
    """``vidseg segment --backend onnxruntime`` writes byte-identical PNGs; torch-only models are refused."""
    common = [str(vspw_video), "--model", "segformer_b0", "--weights", str(segformer[1]), "--num-classes", "7",
              "--quiet", "--img-scale", "96x64", "--size-divisor", "32", "--threads", "1"]
    assert main(["segment", *common, "--out", str(tmp_path / "torch")]) == 0
    make_backend(segformer[0], "onnxruntime", size=SIZE, cache_dir=cache, model_name="segformer_b0")
    exported = set(cache.glob("*.onnx"))
    assert main(["segment", *common, "--out", str(tmp_path / "ort"), "--backend", "onnxruntime",
                 "--onnx-cache", str(cache)]) == 0
    assert set(cache.glob("*.onnx")) == exported  # the CLI's model (loaded, BN folded) found the same graphs
    a = sorted((tmp_path / "torch").rglob("*.png"))
    b = sorted((tmp_path / "ort").rglob("*.png"))
    assert len(a) == 12 and [p.name for p in a] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    capsys.readouterr()
    code = main(["segment", str(vspw_video), "--model", "clip_panofcn_r50", "--out", str(tmp_path / "p"),
                 "--backend", "onnxruntime", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "panoptic model 'clip_panofcn_r50' runs on torch only" in err


def test_threads_follow_torch_and_are_restored(tmp_path):
    import argparse

    from vidseg.cli.backend_options import threads_from_args

    before = torch.get_num_threads()
    with threads_from_args(argparse.Namespace(threads=1)) as threads:
        assert threads == torch.get_num_threads() == 1
        assert make_backend(ToySegmenter(), "onnxruntime", cache_dir=tmp_path).threads == 1  # the torch setting
    assert torch.get_num_threads() == before


@pytest.fixture(scope="module")
def vspw_root(tmp_path_factory) -> Path:
    """A synthetic VSPW root: 3 videos of 3 frames (64x96), one each in train, val and test."""
    from vidseg.data.synth import generate

    return generate("vspw", tmp_path_factory.mktemp("vspw_root"), videos=3, frames=3, size=SIZE, seed=1,
                    val_fraction=0.34, test_fraction=0.34, progress=False).root


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.mark.slow  # about 25 s on the loaded 2-core machine
def test_pseudo_label_same_masks(segformer, vspw_root, cache, tmp_path):
    """``vidseg pseudo-label --backend onnxruntime``: the ensemble's probabilities path, byte-identical masks."""
    args = ["pseudo-label", "--weights", str(segformer[1]), "--model", "segformer_b0", "--num-classes", "7",
            "--data", str(vspw_root), "--img-scale", "96x64", "--size-divisor", "32", "--threshold", "0.3"]
    assert main([*args, "--out", str(tmp_path / "torch")]) == 0
    assert main([*args, "--out", str(tmp_path / "ort"), "--backend", "onnxruntime", "--onnx-cache", str(cache)]) == 0
    torch_files, ort_files = _files(tmp_path / "torch"), _files(tmp_path / "ort")
    assert len(torch_files) == 3 and torch_files == ort_files


@pytest.mark.slow  # about 25 s on the loaded 2-core machine
def test_predict_same_files(vspw_root, cache, tmp_path):
    """``vidseg predict vspw`` (library path) with onnxruntime and without pipelining writes the same masks."""
    from dataclasses import replace

    from vidseg.engine.predict import PredictRequest, run_predict
    from vidseg.models import official_settings

    settings = replace(official_settings("segformer_b0"), img_scale=(96, 64), size_divisor=32)
    runs = {"torch": {}, "ort": {"backend": "onnxruntime", "onnx_cache": str(cache), "pipeline": False}}
    for name, kw in runs.items():
        run_predict(PredictRequest("vspw", vspw_root, "val", "segformer_b0", None, tmp_path / name,
                                   settings=settings, progress=False, **kw))
    torch_files, ort_files = _files(tmp_path / "torch"), _files(tmp_path / "ort")
    assert len(torch_files) == 3 and torch_files == ort_files


class _PooledToy(ToySegmenter):
    """A decoder with a pyramid pooling ONNX cannot express (adaptive pooling to 3x3 from a 32x48 map)."""

    def decode_clip_lowres(self, features, image_size):
        low = super().decode_clip_lowres(features, image_size)
        return low + torch.nn.functional.interpolate(torch.nn.functional.adaptive_avg_pool2d(low, 3),
                                                     size=low.shape[-2:], mode="nearest")


def test_model_onnx_cannot_express_is_one_line(vspw_video, tmp_path):
    model = _PooledToy(support_offsets=()).eval()
    frames = _frames(vspw_video)[:1]
    backend = make_backend(model, "onnxruntime", cache_dir=tmp_path, model_name="pooled_toy")
    with pytest.raises(ConfigError, match=r"pooled_toy cannot be exported to ONNX at 64x96 \(.*adaptive_avg_pool2d.*\); "
                                          r"use --backend torch") as info:
        list(VideoPredictor(model, backend=backend).predict(frames))
    assert "\n" not in str(info.value)
    # the encoder exported fine; no decoder file and no temporary is left behind
    assert [p.name.split("-")[-1] for p in tmp_path.glob("*.onnx")] == ["encode.onnx"]
    assert not list(tmp_path.glob(".*"))
