"""Inference fast paths (issue 13): same outputs as the reference forward up to float rounding, same argmax.

The reference is the training-identical forward (``vidseg.models.fastpath.reference_path`` or autograd on);
the fast path runs in eval mode under ``torch.inference_mode()``. Random weights with non-trivial BatchNorm
statistics, small frames.
"""

from __future__ import annotations

import pytest
import torch

from vidseg.inference.runtime import configure_threads, fuse_batchnorm, prepare_for_inference
from vidseg.models import build
from vidseg.models.fastpath import reference_path, use_fast_path

H, W = 40, 72


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm running statistics and affine parameters away from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g) * 0.5 + 1)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.5)


def _calibrate_bn(model: torch.nn.Module) -> None:
    """Running statistics from one batch (momentum 1), so deep random networks keep a sane scale."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 1, 3, H, W, generator=torch.Generator().manual_seed(7)))


def _model(name: str, *, calibrate: bool = False, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(name, **kwargs)
    _randomise_bn(model)
    if calibrate:
        _calibrate_bn(model)
    return model.eval()


def _frames(t: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(1, t, 3, H, W, generator=torch.Generator().manual_seed(seed))


def _assert_same(fast: torch.Tensor, ref: torch.Tensor, atol: float = 1e-4) -> None:
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, atol=atol, rtol=1e-4)
    assert torch.equal(fast.argmax(1), ref.argmax(1))


def test_fast_path_switch():
    model = _model("segformer_b0", num_classes=7)
    assert use_fast_path(model) is False  # autograd on
    with torch.no_grad():
        assert use_fast_path(model) is True
        with reference_path():
            assert use_fast_path(model) is False
        model.train()
        assert use_fast_path(model) is False


def test_segformer_fast_equals_reference():
    model = _model("segformer_b0", num_classes=11)
    frames = _frames(1)
    with torch.inference_mode():
        with reference_path():
            ref_feats = model.backbone(frames[:, -1])
            ref_low = model.encode_frame(frames[:, -1])
            ref = model(frames)
        feats = model.backbone(frames[:, -1])
        low = model.encode_frame(frames[:, -1])
        out = model(frames)
    for f, r in zip(feats, ref_feats):
        torch.testing.assert_close(f, r, atol=1e-4, rtol=1e-4)
    _assert_same(low, ref_low)
    _assert_same(out, ref)
    with torch.no_grad():  # no_grad (not only inference_mode) takes the fast path too
        _assert_same(model(frames), ref)
    batch = torch.cat([frames, frames.flip(-1)])  # batches of 2
    with torch.inference_mode():
        with reference_path():
            ref2 = model(batch)
        _assert_same(model(batch), ref2)


def test_segformer_fold_follows_new_weights():
    """The folded decoder weights are a cache: loading other weights must rebuild it."""
    model = _model("segformer_b0", num_classes=5)
    frames = _frames(1)
    with torch.inference_mode():
        model(frames)  # fills the caches
    other = _model("segformer_b0", num_classes=5)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
        other.decode_head.linear_fuse.bn.running_var.mul_(2.0)
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        with reference_path():
            ref = other(frames)
        _assert_same(model(frames), ref)


def test_training_forward_and_gradients_unchanged():
    """Train mode, and eval mode with autograd, run the reference forward bit for bit, with gradients."""
    model = _model("segformer_b0", num_classes=5)
    frames = _frames(1)
    model.train()
    torch.manual_seed(3)
    out = model(frames)
    with reference_path():
        torch.manual_seed(3)
        ref = model(frames)
    assert torch.equal(out, ref)
    out.square().mean().backward()
    assert model.decode_head.linear_fuse.conv.weight.grad is not None
    assert model.backbone.stages[0].blocks[0].attention.k_proj.weight.grad is not None
    model.eval()
    with reference_path():
        ref = model(frames)
    assert torch.equal(model(frames), ref)  # autograd on: reference path


def test_cffm_streaming_fast_equals_reference():
    """Per-frame features + decode of [t-9, t-6, t-3, t] (streaming) vs the reference whole-clip forward."""
    model = _model("cffm_b0", num_classes=9)
    video = _frames(10, seed=2)[0]
    clip = video[[0, 3, 6, 9]][None]
    with torch.inference_mode():
        with reference_path():
            ref = model(clip)
            ref_single = model(clip[:, -1:])
        feats = [model.encode_frame(video[i:i + 1]) for i in range(10)]
        supports = [model.support_features(feats[i]) for i in (0, 3, 6)]
        out = model.decode_clip([*supports, feats[9]], (H, W))
        single = model.decode_clip([feats[9]], (H, W))
        whole = model(clip)
    _assert_same(out, ref)
    _assert_same(whole, ref)
    _assert_same(single, ref_single)


@pytest.mark.parametrize("name", ["segformer_b0", "cffm_b0"])
def test_prepared_segformer_cffm_equal_reference(name):
    """prepare_for_inference (decoder BN folded into its conv, channels-last weights) + the fast paths."""
    model = _model(name, num_classes=5)
    clip = _frames(4, seed=4)
    prepared = prepare_for_inference(model, channels_last=True, fuse_bn=True)
    assert isinstance(prepared.decode_head.linear_fuse.bn, torch.nn.Identity)
    with torch.inference_mode():
        with reference_path():
            ref = model(clip)
        _assert_same(prepared(clip), ref)


def _outputs(model: torch.nn.Module, frames: torch.Tensor) -> list[torch.Tensor]:
    out = model(frames[:, -1] if model.__class__.__name__ == "DeepStemResNet" else frames)
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("name", ["resnet50_deepstem_os8", "upernet_swin_t"])
def test_prepared_resnet_swin_equal_reference(name):
    """BN folded into the convolutions + channels-last weights: the folding is exact (float64), float32 outputs
    differ by rounding only (deep random networks amplify it: compared to their own scale), same argmax; the
    original model is untouched."""
    kwargs = {} if name.startswith("resnet") else {"num_classes": 6}
    model = _model(name, calibrate=not name.startswith("resnet"), **kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frames = _frames(1)
    prepared = prepare_for_inference(model, channels_last=True, fuse_bn=True)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules()) == 0
    with torch.inference_mode():
        refs, outs = _outputs(model, frames), _outputs(prepared, frames)
        for out, ref in zip(outs, refs):
            assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()
        if len(refs) == 1:
            assert torch.equal(outs[0].argmax(1), refs[0].argmax(1))
        if name.startswith("resnet"):  # the folding itself is exact: float64 leaves only 1e-16 rounding
            model64 = prepare_for_inference(model, fuse_bn=False).double()
            prepared64 = prepare_for_inference(model64, channels_last=True, fuse_bn=True)
            for out, ref in zip(_outputs(prepared64, frames.double()), _outputs(model64, frames.double())):
                assert (out - ref).abs().max() <= 1e-10 * ref.abs().max()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_fuse_batchnorm_counts_and_values():
    """A Sequential conv-BN pair and a named conv/bn pair are folded; values equal the unfused modules."""
    conv_bn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    _randomise_bn(conv_bn, seed=5)
    conv_bn.eval()
    x = torch.randn(2, 3, 8, 9)
    with torch.no_grad():
        ref = conv_bn(x)
        assert fuse_batchnorm(conv_bn) == 1
        assert isinstance(conv_bn[1], torch.nn.Identity)
        torch.testing.assert_close(conv_bn(x), ref, atol=1e-5, rtol=1e-5)

    class PreActivation(torch.nn.Module):  # bn1 before conv1: the names match but it must not be folded
        def __init__(self) -> None:
            super().__init__()
            self.bn1, self.conv1 = torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv1(self.bn1(x))

    class Declared(PreActivation):
        conv_bn_pairs = (("conv1", "bn1"),)

        def forward(self, x):
            return self.bn1(self.conv1(x))

    with torch.no_grad():
        for cls, expected in ((PreActivation, 0), (Declared, 1)):
            block = cls()
            _randomise_bn(block, seed=6)
            block.eval()
            ref = block(x)
            assert fuse_batchnorm(block) == expected
            torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)


def test_configure_threads():
    old = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1
        assert configure_threads(None) >= 1
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("onednn", [True, False])
def test_fused_linear_and_conv_gelu_match_plain_ops(onednn, monkeypatch):
    """The oneDNN-fused kernels (bias + residual in the GEMM, GELU in the convolution) and their fallbacks
    compute the plain ops' values; with oneDNN on, the fused ops are the ones that run."""
    from vidseg.models import fastpath

    calls = []
    if onednn:
        assert fastpath._onednn_fusion(torch.zeros(1))
        monkeypatch.setattr(fastpath, "_onednn_fusion", lambda x: calls.append(1) or True)
    else:
        monkeypatch.setattr(fastpath, "_onednn_fusion", lambda x: False)
    g = torch.Generator().manual_seed(0)
    x, res = torch.randn(2, 50, 24, generator=g), torch.randn(2, 50, 40, generator=g)
    weight, bias = torch.randn(40, 24, generator=g), torch.randn(40, generator=g)
    conv = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
    image = torch.randn(1, 16, 9, 11, generator=g).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = torch.nn.functional.linear(x, weight, bias)
        torch.testing.assert_close(fastpath.linear_add(x, weight, bias), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fastpath.linear_add(x, weight, None), ref - bias, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fastpath.linear_add(x, weight, bias, res), ref + res, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fastpath.linear_add(x, weight, bias, gelu=True), torch.nn.functional.gelu(ref),
                                   atol=1e-5, rtol=1e-5)
        fused = fastpath.conv2d_gelu(image, conv, conv.weight)
        torch.testing.assert_close(fused, torch.nn.functional.gelu(conv(image)), atol=1e-5, rtol=1e-5)
    assert len(calls) == (5 if onednn else 0)
    with pytest.raises(ValueError):
        fastpath.linear_add(x, weight, bias, res, gelu=True)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_plain_ops_and_tracing_avoid_onednn_kernels():
    """FLOP counting (plain_ops) and TorchScript tracing (ONNX export) see only standard ops."""
    from vidseg.models.fastpath import _onednn_fusion, plain_ops

    x = torch.zeros(2, 3)
    assert _onednn_fusion(x) and not _onednn_fusion(x.double())
    with plain_ops():
        assert not _onednn_fusion(x)
    assert _onednn_fusion(x)
    traced = torch.jit.trace(lambda t: t + float(_onednn_fusion(t)), (x,), check_trace=False)
    assert torch.equal(traced(x), x)  # traced with the flag False


def test_gelu_detection_and_tanh_gelu_mix_ffn_unfused():
    """Only the erf GELU is fused into the depthwise conv; a tanh-GELU model still equals its reference."""
    from vidseg.models.fastpath import is_exact_gelu

    assert is_exact_gelu(torch.nn.GELU()) and not is_exact_gelu(torch.nn.GELU(approximate="tanh"))
    model = _model("segformer_b0", num_classes=5)
    assert all(is_exact_gelu(block.mlp.activation_fn) for stage in model.backbone.stages for block in stage.blocks)
    for stage in model.backbone.stages:
        for block in stage.blocks:
            block.mlp.activation_fn = torch.nn.GELU(approximate="tanh")
    clip = _frames(1, seed=5)
    with torch.inference_mode():
        with reference_path():
            ref = model(clip)
        _assert_same(model(clip), ref)


@pytest.mark.slow
def test_compiled_backbone_is_one_graph_and_equals_reference():
    """prepare_for_inference(compile=True): inductor traces the whole fast path as one graph (plain ops, no
    graph break, no recompile for later frames of the same size) and gives the reference's values."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = _model("segformer_b0", num_classes=5)
    frame = _frames(1, seed=6)[:, 0]
    with torch.inference_mode(), reference_path():
        ref = model.encode_frame(frame)
    compiled = prepare_for_inference(model, compile=True)
    with torch.no_grad():
        outs = [compiled.encode_frame(_frames(1, seed=seed)[:, 0]) for seed in (6, 7, 8)]
    _assert_same(outs[0], ref)
    assert counters["stats"]["unique_graphs"] == 1
    assert sum(counters["graph_break"].values()) == 0
    torch._dynamo.reset()


def test_onednn_probe_falls_back_where_the_kernels_are_missing(monkeypatch):
    """The fused kernels are used only after a tiny probe agrees with the plain ops; without oneDNN the fast
    paths take the plain ops and still equal the reference."""
    from vidseg.models import fastpath

    assert fastpath.onednn_kernels_work()
    fastpath.onednn_kernels_work.cache_clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the probe is float32 whatever the caller's autocast
        assert fastpath.onednn_kernels_work() and not fastpath._onednn_fusion(torch.zeros(1))
    fastpath.onednn_kernels_work.cache_clear()
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    try:
        assert not fastpath.onednn_kernels_work() and not fastpath._onednn_fusion(torch.zeros(1))
        model = _model("segformer_b0", num_classes=5)
        clip = _frames(1, seed=9)
        with torch.inference_mode():
            with reference_path():
                ref = model(clip)
            _assert_same(model(clip), ref)
    finally:
        fastpath.onednn_kernels_work.cache_clear()


@pytest.mark.parametrize("name", ["segformer_b0", "cffm_b0"])
def test_fast_path_batch_of_two_equals_reference(name):
    """Two clips at once through the fused fast path (batched GEMMs, residuals, decoder sum) equal the reference
    and each clip alone."""
    model = _model(name, num_classes=5)
    clips = torch.cat([_frames(4, seed=11), _frames(4, seed=12)])
    with torch.inference_mode():
        with reference_path():
            ref = model(clips)
        fast = model(clips)
        single = model(clips[1:])
    _assert_same(fast, ref)
    _assert_same(fast[1:], single)
