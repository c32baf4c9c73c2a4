"""CFFM: parameter counts, the 289-key CFFA assembly, protocol equality, fallback, gradients, errors, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidseg.models import build
from vidseg.models.base import VideoSegmenter
from vidseg.models.video.cffm import build_cffm
from vidseg.models.video.cffm_attention import (
    CFFMAttention,
    pool_cells,
    relative_position_index,
)

# specs/models.md 2.3 (124 classes, including the unused conv_seg of 15,996 parameters)
OFFICIAL_PARAMS = {"b0": 4_672_527, "b1": 15_482_538, "b2": 26_527_402, "b5": 85_467_936}
CONV_SEG = 128 * 124 + 124


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("variant", sorted(OFFICIAL_PARAMS))
def test_param_counts_match_official(variant):
    with torch.device("meta"):
        model = build_cffm(variant=variant)
        without = build_cffm(variant=variant, with_conv_seg=False)
    assert n_params(model) == OFFICIAL_PARAMS[variant]
    assert n_params(without) == OFFICIAL_PARAMS[variant] - CONV_SEG


def test_block_and_head_part_counts():
    with torch.device("meta"):
        model = build_cffm(variant="b1")
    head = model.decode_head
    assert n_params(head.decoder_focal.blocks[0]) == 846_907
    assert n_params(head.linear_pred2) == 63_612 and n_params(head.linear_fuse) == 262_656
    assert len(head.decoder_focal.blocks) == 2


def test_official_state_dict_names_and_buffers():
    model = build_cffm(variant="b0")
    keys = set(model.state_dict())
    block = "decode_head.decoder_focal.blocks.0."
    expected = ["pool_layers.0.weight", "pool_layers_clips.0.weight", "pool_layers_clips.1.weight",
                "pool_layers_clips.2.weight", "norm1.weight", "norm2.weight", "mlp.fc1.weight", "mlp.fc2.weight",
                "attn.relative_position_bias_table", "attn.relative_position_bias_table_to_neighbors",
                "attn.relative_position_index", "attn.valid_ind_rolled", "attn.relative_position_index_0",
                "attn.relative_position_index_clips_0", "attn.relative_position_index_clips_1",
                "attn.relative_position_index_clips_2", "attn.relative_position_bias_table_to_windows.0",
                "attn.relative_position_bias_table_to_windows_clips.0",
                "attn.relative_position_bias_table_to_windows_clips.1",
                "attn.relative_position_bias_table_to_windows_clips.2", "attn.qkv.weight", "attn.proj.weight"]
    assert {block + k for k in expected} <= keys
    assert {"decode_head.conv_seg.weight", "decode_head.linear_pred2.weight", "decode_head.linear_fuse.conv.weight",
            "decode_head.linear_fuse.bn.running_var", "decode_head.linear_c4.proj.weight"} <= keys
    attn = model.decode_head.decoder_focal.blocks[0].attn
    shapes = {"relative_position_bias_table": (169, 8), "relative_position_bias_table_to_neighbors": (1, 8, 49, 132),
              "relative_position_bias_table_to_windows.0": (8, 121),
              "relative_position_bias_table_to_windows_clips.0": (8, 169),
              "relative_position_bias_table_to_windows_clips.1": (8, 121),
              "relative_position_bias_table_to_windows_clips.2": (8, 81)}
    params = dict(attn.named_parameters())
    for name, shape in shapes.items():
        assert tuple(params[name].shape) == shape
    assert torch.count_nonzero(attn.relative_position_bias_table) == 0  # zero init, never trunc-normal'd
    assert params["relative_position_bias_table_to_windows_clips.0"].std() > 0
    pool = model.decode_head.decoder_focal.blocks[0].pool_layers_clips
    assert [layer.in_features for layer in pool] == [49, 9, 4]
    assert torch.allclose(pool[1].weight, torch.full((1, 9), 1 / 9))


def test_relative_position_index_brute_force():
    idx = relative_position_index(7, 5)
    assert idx.shape == (49, 25) and int(idx.max()) == 11 * 11 - 1
    for qi in range(49):
        for ki in range(25):
            dy = qi // 7 - ki // 5 + 4
            dx = qi % 7 - ki % 5 + 4
            assert int(idx[qi, ki]) == dy * 11 + dx
    assert torch.equal(relative_position_index(7, 7).unique(), torch.arange(169))


def test_reference_keys_match_unfold():
    """Keys of t-9 / t-6 / t-3 equal nn.Unfold of the k map of each cell grid (the official mechanism)."""
    torch.manual_seed(0)
    attn = CFFMAttention()
    n_h, n_w = 2, 3
    target = torch.randn(1, 7 * n_h, 7 * n_w, 256)
    pooled_target = torch.randn(1, n_h, n_w, 256)
    refs = [torch.randn(1, s * n_h, s * n_w, 256) for s in attn.clip_strides]
    with torch.no_grad():
        _, k, v, _ = attn.assemble(target, pooled_target, refs)
        start = 49 + 132 + 25
        for grid, kern, stride in zip(refs, attn.clip_kernels, attn.clip_strides):
            kv = attn.qkv(grid)[..., 256:].permute(0, 3, 1, 2)  # [1, 2C, gh, gw]
            unf = nn.functional.unfold(kv, kern, padding=kern // 2, stride=stride)  # [1, 2C*K2, nW]
            unf = unf.view(2, 8, 32, kern * kern, n_h * n_w).permute(0, 4, 1, 3, 2)  # [2, nW, heads, K2, hd]
            assert torch.allclose(k[:, :, start:start + kern * kern], unf[0], atol=1e-6)
            assert torch.allclose(v[:, :, start:start + kern * kern], unf[1], atol=1e-6)
            start += kern * kern


def _coordinate_inputs(attn: CFFMAttention, n_h: int, n_w: int):
    """Target map whose keys are its (row, col) coordinates: qkv's key part copies channels 0 and 1."""
    c, win = attn.dim, attn.window
    h, w = n_h * win, n_w * win
    with torch.no_grad():
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        attn.qkv.weight[c:2 * c, :c] = torch.eye(c)
    target = torch.zeros(1, h, w, c)
    target[..., 0] = torch.arange(h, dtype=torch.float)[:, None]
    target[..., 1] = torch.arange(w, dtype=torch.float)[None, :]
    avg = nn.Linear(win * win, 1)
    nn.init.constant_(avg.weight, 1 / (win * win))
    nn.init.zeros_(avg.bias)
    pooled_target = pool_cells(target, win, avg)
    refs = [torch.randn(1, s * n_h, s * n_w, c) for s in attn.clip_strides]
    return target, pooled_target, refs


def test_cffa_keys_per_query_window_is_289_and_brute_force():
    attn = CFFMAttention()
    n_h, n_w = 3, 4
    target, pooled_target, refs = _coordinate_inputs(attn, n_h, n_w)
    q, k, v, mask = attn.assemble(target, pooled_target, refs)
    assert k.shape[2] == v.shape[2] == mask.shape[1] == attn.keys_per_window == 289  # 49+132+25+49+25+9
    assert q.shape[2] == 49 and mask.shape[0] == n_h * n_w
    coords = k.transpose(1, 2).flatten(2)[..., :2].round().long()  # [nW, 289, 2] (row, col) of every key
    h, w = 7 * n_h, 7 * n_w
    for wi in range(n_h * n_w):
        wy, wx = divmod(wi, n_w)
        own = {(7 * wy + i, 7 * wx + j) for i in range(7) for j in range(7)}
        got_own = {tuple(c) for c in coords[wi, :49].tolist()}
        assert got_own == own
        # neighbours: the window grown by 3 on each side (wrapping around the map) minus the own window;
        # 4 x 33 = 132 tokens, the 12 tokens in the side strips appear twice
        ring = {((7 * wy + i) % h, (7 * wx + j) % w) for i in range(-3, 10) for j in range(-3, 10)} - own
        got_ring = [tuple(c) for c in coords[wi, 49:181].tolist()]
        assert len(got_ring) == 132 and set(got_ring) == ring
        # pooled target: the window means of the 5x5 window neighbourhood, -100 outside the map
        pooled = k.transpose(1, 2).flatten(2)[wi, 181:206, :2]
        for n, (dy, dx) in enumerate((a, b) for a in range(-2, 3) for b in range(-2, 3)):
            inside = 0 <= wy + dy < n_h and 0 <= wx + dx < n_w
            assert float(mask[wi, 181 + n]) == (0.0 if inside else -100.0)
            if inside:
                assert torch.allclose(pooled[n], torch.tensor([7 * (wy + dy) + 3.0, 7 * (wx + dx) + 3.0]))
    assert torch.all(mask[:, :181] == 0)


def test_reference_mask_counts():
    """Number of valid reference tokens per window follows the unfold windows (t-6 cells 2i-2..2i+2)."""
    attn = CFFMAttention()
    target, pooled_target, refs = _coordinate_inputs(attn, 2, 3)
    _, _, _, mask = attn.assemble(target, pooled_target, refs)
    t6 = mask[:, 181 + 25 + 49:181 + 25 + 49 + 25]
    # window (0, 0): rows/cols 2i-2..2i+2 on a 4x6 cell grid -> rows 0..2, cols 0..2 valid = 9 cells
    assert int((t6[0] == 0).sum()) == 9
    t3 = mask[:, -9:]
    # window (0, 0) on a 6x9 grid, cells 3i-1..3i+1 -> rows 0..1, cols 0..1 = 4 cells
    assert int((t3[0] == 0).sum()) == 4


def test_eval_forward_equals_encode_decode_and_fallback():
    torch.manual_seed(0)
    model = build_cffm(variant="b0", num_classes=11).eval()
    assert isinstance(model, VideoSegmenter) and model.support_offsets == (-9, -6, -3)
    frames = torch.randn(2, 4, 3, 67, 93)
    with torch.no_grad():
        out = model(frames)
        feats = [model.encode_frame(frames[:, i]) for i in range(4)]
        via_protocol = model.decode_clip(feats, (67, 93))
        refs_only_c8 = model.decode_clip([(f[0], None) for f in feats[:3]] + [feats[3]], (67, 93))
        fallback = model(frames[:, -1:])
        fallback_protocol = model.decode_clip(feats[-1:], (67, 93))
        fallback_expected = nn.functional.interpolate(model.decode_head.predict(feats[-1][1]), size=(67, 93),
                                                      mode="bilinear", align_corners=False)
    assert out.shape == (2, 11, 67, 93)
    assert feats[0][0].shape == (2, 256, 8, 12) and feats[0][1].shape == (2, 256, 17, 24)
    assert (out - via_protocol).abs().max() <= 1e-5
    assert torch.equal(via_protocol, refs_only_c8)
    assert (fallback - fallback_protocol).abs().max() <= 1e-5
    assert torch.equal(fallback_protocol, fallback_expected)
    assert (fallback - out).abs().max() > 1e-3  # the cross-frame path really differs


def test_references_matter_and_are_not_updated():
    torch.manual_seed(0)
    model = build_cffm(variant="b0", num_classes=5).eval()
    frames = torch.randn(1, 4, 3, 64, 64)
    other = frames.clone()
    other[:, 0] = torch.randn(1, 3, 64, 64)  # change t-9 only
    with torch.no_grad():
        assert (model(frames) - model(other)).abs().max() > 1e-4
        x = torch.randn(1, 4, 256, 8, 8)
        y = model.decode_head.decoder_focal(x)
    assert torch.equal(y[:, :3], x[:, :3]) and not torch.equal(y[:, 3], x[:, 3])


@pytest.mark.slow
def test_shapes_large_awkward_size():
    model = build_cffm(variant="b0").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 3, 481, 857)).shape == (1, 124, 481, 857)


def test_train_outputs_losses_and_gradients():
    torch.manual_seed(0)
    model = build("cffm_b0", num_classes=6).train()
    frames = torch.randn(2, 4, 3, 120, 120)
    labels = torch.randint(0, 6, (2, 4, 120, 120))
    labels[:, :, :10] = 255
    out = model(frames)
    assert out.shape == (2, 5, 6, 30, 30)  # 4 per-frame logits + x2, at 1/4
    losses = model.losses(out, labels)
    assert set(losses) == {"loss_frames", "loss_target"}
    from vidseg.models.losses import all_pixel_cross_entropy as ce  # official (mmseg 0.x) by default

    expected = 0.5 * ce(out[:, :4].flatten(0, 1), labels.flatten(0, 1)) + ce(out[:, 4], labels[:, 3])
    assert torch.allclose(sum(losses.values()), expected)
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if name.startswith("decode_head.conv_seg."):
            assert not p.requires_grad and p.grad is None, name  # unused official layer, frozen
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("shape,train,match", [
    ((1, 4, 1, 32, 32), False, "expects frames"),
    ((1, 4, 3, 4, 32), False, "at least 5x5"),
    ((1, 5, 3, 32, 32), False, "at most 4"),
    ((1, 3, 3, 32, 32), True, "clips of 4"),
    ((4, 3, 32, 32, 1), False, "expects frames"),
])
def test_wrong_inputs_raise(shape, train, match):
    model = build_cffm(variant="b0", num_classes=3).train(train)
    with pytest.raises(ValueError, match=match):
        model(torch.randn(*shape))


def test_decode_clip_errors():
    model = build_cffm(variant="b0", num_classes=3).eval()
    with pytest.raises(ValueError, match="1..4"):
        model.decode_clip([], (32, 32))
    with pytest.raises(ValueError, match="1/4 feature"):
        model.decode_clip([(torch.zeros(1, 256, 4, 4), None)], (32, 32))
    with pytest.raises(ValueError, match="outputs"):
        model.losses(torch.zeros(1, 4, 3, 8, 8), torch.zeros(1, 4, 32, 32, dtype=torch.long))


def _synthetic_clip(gen: torch.Generator, b: int = 2, size: int = 48, t: int = 4):
    """Clips whose colour per quadrant encodes the class (learnable in a few steps)."""
    classes = torch.randint(0, 3, (b, 2, 2), generator=gen)
    labels = classes.repeat_interleave(size // 2, 1).repeat_interleave(size // 2, 2)  # [B, H, W]
    colours = torch.tensor([[1.5, -1.0, -1.0], [-1.0, 1.5, -1.0], [-1.0, -1.0, 1.5]])
    images = colours[labels].permute(0, 3, 1, 2)[:, None] + 0.3 * torch.randn(b, t, 3, size, size, generator=gen)
    return images, labels[:, None].expand(b, t, size, size)


def test_short_training_run_loss_falls():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = build_cffm(variant="b0", num_classes=3).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    frames, labels = _synthetic_clip(gen)
    history = []
    for _ in range(8):
        loss = sum(model.losses(model(frames), labels).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0] and min(history[-3:]) < min(history[:3]), history


@pytest.mark.slow
def test_per_frame_step_exports_to_onnx():
    """encode_frame + decode_clip with the cached 1/8 features of t-9, t-6, t-3 as inputs (fixed size)."""
    import io

    ort = pytest.importorskip("onnxruntime")
    model = build_cffm(variant="b0", num_classes=7).eval()

    class Step(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image, r0, r1, r2):
            c8, c4 = self.m.encode_frame(image)
            feats = [(r0, None), (r1, None), (r2, None), (c8, c4)]
            return self.m.decode_clip(feats, tuple(image.shape[-2:])), c8

    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        refs = [model.encode_frame(torch.randn(1, 3, 64, 96))[0] for _ in range(3)]
    step = Step(model).eval()
    buf = io.BytesIO()
    names = ["image", "r0", "r1", "r2"]
    torch.onnx.export(step, (image, *refs), buf, input_names=names, output_names=["logits", "c8"],
                      opset_version=17, dynamo=False)
    step.eval()  # the exporter restores the wrapper's train flag recursively
    sess = ort.InferenceSession(buf.getvalue())
    out = sess.run(None, {n: t.numpy() for n, t in zip(names, (image, *refs))})
    with torch.no_grad():
        ref_logits, ref_c8 = step(image, *refs)
    assert abs(out[0] - ref_logits.numpy()).max() <= 1e-4 and abs(out[1] - ref_c8.numpy()).max() <= 1e-4


def test_inference_bias_cache_follows_weight_updates():
    """The eval-time bias cache is invalidated when a bias table is loaded or edited in place."""
    torch.manual_seed(0)
    model = build_cffm(variant="b0", num_classes=5).eval()
    frames = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        before = model(frames)
        state = model.state_dict()
        key = "decode_head.decoder_focal.blocks.0.attn.relative_position_bias_table"
        state[key] = torch.randn_like(state[key])
        model.load_state_dict(state)
        after = model(frames)
        fresh = build_cffm(variant="b0", num_classes=5).eval()
        fresh.load_state_dict(state)
        expected = fresh(frames)
    assert (before - after).abs().max() > 1e-4
    assert torch.equal(after, expected)


def test_attention_built_under_inference_mode_runs():
    """Parameters created under torch.inference_mode() have no version counter; the bias cache copes."""
    with torch.inference_mode():
        attn = CFFMAttention().eval()
        target, pooled = torch.randn(1, 7, 14, 256), torch.randn(1, 1, 2, 256)
        refs = [torch.randn(1, s, 2 * s, 256) for s in attn.clip_strides]
        first = attn(target, pooled, refs)
        assert torch.equal(attn(target, pooled, refs), first)
    assert first.shape == (2, 49, 256)
