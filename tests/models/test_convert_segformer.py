"""Checkpoint converters: official NVlabs / mmseg / Hugging Face / CFFM mmcv layouts -> ours, and back.

The reference for "same outputs" is an independent functional MiT written here from the official definition
(specs/models.md 3.1), reading the NVlabs key names directly.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidseg.errors import ConfigError, DataError
from vidseg.models.backbones.mit import MIT_HEADS, MIT_SR_RATIOS, build_mit
from vidseg.models.checkpoint import load_state_dict, load_weights
from vidseg.models.convert_segformer import (
    convert_mit_checkpoint,
    convert_segformer_checkpoint,
    detect_layout,
    mit_to_official,
    mmseg_mit_to_official,
    official_mit_to_mmseg,
    segformer_to_official,
)
from vidseg.models.segformer import build_segformer
from vidseg.models.video.cffm import build_cffm


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ln(x, sd, key, eps):
    return F.layer_norm(x, x.shape[-1:], sd[key + ".weight"], sd[key + ".bias"], eps)


def _lin(x, sd, key):
    return F.linear(x, sd[key + ".weight"], sd[key + ".bias"])


def _attention(x, sd, p, heads, sr, h, w):
    b, n, c = x.shape
    q = _lin(x, sd, p + "attn.q").view(b, n, heads, c // heads).transpose(1, 2)
    src = x
    if sr > 1:
        grid = x.transpose(1, 2).reshape(b, c, h, w)
        src = F.conv2d(grid, sd[p + "attn.sr.weight"], sd[p + "attn.sr.bias"], stride=sr).flatten(2).transpose(1, 2)
        src = _ln(src, sd, p + "attn.norm", 1e-5)
    kv = _lin(src, sd, p + "attn.kv").view(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q @ kv[0].transpose(-2, -1)) * (c // heads) ** -0.5
    out = (attn.softmax(-1) @ kv[1]).transpose(1, 2).reshape(b, n, c)
    return _lin(out, sd, p + "attn.proj")


def _mix_ffn(x, sd, p, h, w):
    y = _lin(x, sd, p + "mlp.fc1")
    b, n, c = y.shape
    grid = y.transpose(1, 2).reshape(b, c, h, w)
    y = F.conv2d(grid, sd[p + "mlp.dwconv.dwconv.weight"], sd[p + "mlp.dwconv.dwconv.bias"], padding=1, groups=c)
    return _lin(F.gelu(y.flatten(2).transpose(1, 2)), sd, p + "mlp.fc2")


def reference_mit(sd: dict, image: torch.Tensor) -> list[torch.Tensor]:
    """Official MiT forward from an NVlabs-layout state dict (eval mode, no drop path)."""
    x, outs = image, []
    for i in range(1, 5):
        stride, pad = (4, 3) if i == 1 else (2, 1)
        x = F.conv2d(x, sd[f"patch_embed{i}.proj.weight"], sd[f"patch_embed{i}.proj.bias"], stride=stride,
                     padding=pad)
        b, c, h, w = x.shape
        x = _ln(x.flatten(2).transpose(1, 2), sd, f"patch_embed{i}.norm", 1e-5)
        j = 0
        while f"block{i}.{j}.norm1.weight" in sd:
            p = f"block{i}.{j}."
            x = x + _attention(_ln(x, sd, p + "norm1", 1e-6), sd, p, MIT_HEADS[i - 1], MIT_SR_RATIOS[i - 1], h, w)
            x = x + _mix_ffn(_ln(x, sd, p + "norm2", 1e-6), sd, p, h, w)
            j += 1
        x = _ln(x, sd, f"norm{i}", 1e-6).transpose(1, 2).reshape(b, c, h, w)
        outs.append(x)
    return outs


def random_official_mit(variant: str = "b0") -> dict:
    """An NVlabs-layout MiT state dict (random weights) including the ImageNet ``head``."""
    torch.manual_seed(1)
    sd = mit_to_official(build_mit(variant=variant).state_dict())
    sd = {k: v + 0.02 * torch.randn_like(v) for k, v in sd.items()}  # LN weights/biases away from 1/0
    dim = build_mit(variant=variant).out_channels[-1]
    sd["head.weight"], sd["head.bias"] = torch.randn(1000, dim), torch.randn(1000)
    return sd


def test_official_layout_key_names():
    sd = random_official_mit()
    for key in ["patch_embed1.proj.weight", "patch_embed4.norm.bias", "block1.0.attn.q.weight",
                "block1.1.attn.kv.weight", "block1.0.attn.sr.weight", "block1.0.attn.norm.weight",
                "block4.1.attn.proj.bias", "block2.0.mlp.fc1.weight", "block2.0.mlp.dwconv.dwconv.weight",
                "block3.1.mlp.fc2.bias", "norm1.weight", "norm4.bias"]:
        assert key in sd, key
    assert "block4.0.attn.sr.weight" not in sd  # sr ratio 1 in stage 4
    assert sd["block1.0.attn.kv.weight"].shape == (64, 32)
    assert detect_layout(sd) == "nvlabs"


def test_nvlabs_mit_converts_to_same_outputs():
    sd = random_official_mit()
    model = build_mit(variant="b0").eval()
    report = load_state_dict(model, convert_mit_checkpoint(sd))
    assert report.missing == [] and report.unexpected == []
    x = torch.randn(2, 3, 67, 93)
    with torch.no_grad():
        ours, ref = model(x), reference_mit(sd, x)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-5


def test_mit_round_trip_ours_official_ours():
    model = build_mit(variant="b1")
    state = model.state_dict()
    official = mit_to_official(state)
    assert not any(k.startswith("stages.") for k in official)
    back = convert_mit_checkpoint(official)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_mmseg_layout_round_trip_and_outputs():
    sd = {k: v for k, v in random_official_mit().items() if not k.startswith("head.")}
    mm = official_mit_to_mmseg(sd)
    assert mm["layers.0.1.0.attn.attn.in_proj_weight"].shape == (96, 32)  # q (32) + kv (64) rows
    assert mm["layers.0.1.0.ffn.layers.0.weight"].shape == (128, 32, 1, 1)  # 1x1 conv
    assert {"layers.0.0.projection.weight", "layers.3.2.weight", "layers.1.1.1.ffn.layers.4.bias",
            "layers.0.1.0.attn.attn.out_proj.weight", "layers.0.1.0.attn.sr.weight"} <= set(mm)
    assert detect_layout(mm) == "mmseg"
    back = mmseg_mit_to_official(mm)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    model = build_mit(variant="b0").eval()
    assert load_state_dict(model, convert_mit_checkpoint(mm)).missing == []
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        assert (model(x)[-1] - reference_mit(sd, x)[-1]).abs().max() <= 1e-5
    full = {"backbone." + k: v for k, v in mm.items()}
    assert detect_layout(full) == "mmseg_full"
    assert set(convert_segformer_checkpoint(full)) == {"backbone." + k for k in model.state_dict()}


def _official_to_hf4(sd: dict) -> dict:
    """transformers-4 names per specs/models.md 3.2 (written independently of the converter)."""
    out = {}
    subs = [("norm1.", "layer_norm_1."), ("norm2.", "layer_norm_2."), ("attn.q.", "attention.self.query."),
            ("attn.proj.", "attention.output.dense."), ("attn.sr.", "attention.self.sr."),
            ("attn.norm.", "attention.self.layer_norm."), ("mlp.fc1.", "mlp.dense1."), ("mlp.fc2.", "mlp.dense2."),
            ("mlp.dwconv.dwconv.", "mlp.dwconv.dwconv.")]
    for k, v in sd.items():
        if k.startswith("patch_embed"):
            i, rest = int(k[11]), k[13:]
            out[f"segformer.encoder.patch_embeddings.{i - 1}.{rest.replace('norm.', 'layer_norm.')}"] = v
        elif k.startswith("norm"):
            out[f"segformer.encoder.layer_norm.{int(k[4]) - 1}.{k[6:]}"] = v
        elif k.startswith("block"):
            i, j, rest = k[5], k.split(".")[1], ".".join(k.split(".")[2:])
            base = f"segformer.encoder.block.{int(i) - 1}.{j}."
            if rest.startswith("attn.kv."):
                leaf = rest.split(".")[-1]
                half = v.shape[0] // 2
                out[base + "attention.self.key." + leaf] = v[:half]
                out[base + "attention.self.value." + leaf] = v[half:]
                continue
            old, new = next((o, n) for o, n in subs if rest.startswith(o))
            out[base + new + rest[len(old):]] = v
    return out


def test_hugging_face_v4_layout():
    sd = {k: v for k, v in random_official_mit().items() if not k.startswith("head.")}
    hf = _official_to_hf4(sd)
    assert detect_layout(hf) == "hf4"
    model = build_mit(variant="b0").eval()
    report = load_state_dict(model, convert_mit_checkpoint(hf))
    assert report.missing == [] and report.unexpected == []
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        assert (model(x)[0] - reference_mit(sd, x)[0]).abs().max() <= 1e-5


def test_segformer_full_checkpoint_round_trip_and_outputs(tmp_path):
    torch.manual_seed(0)
    src = build_segformer(variant="b0", num_classes=9, with_conv_seg=True).eval()
    official = segformer_to_official(src.state_dict())
    assert {"backbone.patch_embed1.proj.weight", "backbone.block1.0.attn.kv.weight", "decode_head.conv_seg.weight",
            "decode_head.linear_c4.proj.weight", "decode_head.linear_fuse.conv.weight",
            "decode_head.linear_fuse.bn.running_mean", "decode_head.linear_pred.bias"} <= set(official)
    path = tmp_path / "segformer.b0.pth"
    torch.save({"meta": {"CLASSES": list(range(9))}, "state_dict": official}, path)
    dst = build_segformer(variant="b0", num_classes=9).eval()  # without conv_seg
    report = load_weights(dst, path, converter=convert_segformer_checkpoint)
    assert report.missing == [] and report.unexpected == ["decode_head.conv_seg.weight", "decode_head.conv_seg.bias"]
    x = torch.randn(1, 1, 3, 67, 93)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def official_cffm_checkpoint(model) -> dict:
    """An mmcv checkpoint in the official CFFM layout (specs/models.md 2.4)."""
    return {"meta": {"iter": 160000}, "state_dict": segformer_to_official(model.state_dict()),
            "optimizer": {"state": {}, "param_groups": []}}


CFFM_BLOCK_KEYS = ["pool_layers.0", "pool_layers_clips.0", "pool_layers_clips.1", "pool_layers_clips.2", "norm1",
                   "attn.relative_position_bias_table", "attn.relative_position_bias_table_to_neighbors",
                   "attn.relative_position_index", "attn.valid_ind_rolled", "attn.relative_position_index_0",
                   "attn.relative_position_index_clips_0", "attn.relative_position_index_clips_1",
                   "attn.relative_position_index_clips_2", "attn.relative_position_bias_table_to_windows.0",
                   "attn.relative_position_bias_table_to_windows_clips.0",
                   "attn.relative_position_bias_table_to_windows_clips.1",
                   "attn.relative_position_bias_table_to_windows_clips.2", "attn.qkv", "attn.proj", "norm2",
                   "mlp.fc1", "mlp.fc2"]


def test_cffm_mmcv_checkpoint_loads_strictly_with_same_outputs(tmp_path):
    torch.manual_seed(0)
    src = build_cffm(variant="b0", num_classes=124).eval()
    with torch.no_grad():  # make the zero-initialised table non-trivial
        src.decode_head.decoder_focal.blocks[0].attn.relative_position_bias_table.normal_(0, 0.02)
    ckpt = official_cffm_checkpoint(src)
    keys = set(ckpt["state_dict"])
    for name in CFFM_BLOCK_KEYS:
        assert any(k.startswith(f"decode_head.decoder_focal.blocks.0.{name}") for k in keys), name
    assert all(k.startswith(("backbone.", "decode_head.")) for k in keys)
    assert "backbone.block1.0.attn.kv.weight" in keys and "decode_head.conv_seg.weight" in keys
    path = tmp_path / "cffm_b0.pth"
    torch.save(ckpt, path)
    dst = build_cffm(variant="b0", num_classes=124).eval()
    report = load_weights(dst, path, converter=convert_segformer_checkpoint, strict=True)
    assert report.missing == [] and report.unexpected == []
    x = torch.randn(1, 4, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    back = segformer_to_official(dst.state_dict())
    assert set(back) == keys and all(torch.equal(back[k], ckpt["state_dict"][k]) for k in keys)


def test_missing_and_unexpected_keys_are_reported_by_name(tmp_path):
    src = build_cffm(variant="b0", num_classes=5)
    sd = segformer_to_official(src.state_dict())
    del sd["decode_head.linear_pred2.weight"]
    sd["decode_head.extra_layer.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": sd}, path)
    report = load_weights(build_cffm(variant="b0", num_classes=5), path, converter=convert_segformer_checkpoint)
    assert report.missing == ["decode_head.linear_pred2.weight"]
    assert report.unexpected == ["decode_head.extra_layer.weight"]
    with pytest.raises(DataError, match="linear_pred2"):
        load_weights(build_cffm(variant="b0", num_classes=5), path, converter=convert_segformer_checkpoint,
                     strict=True)


def test_imagenet_mit_initialises_segmentor_backbone():
    sd = random_official_mit()
    model = build_segformer(variant="b0", num_classes=5)
    report = load_state_dict(model, convert_segformer_checkpoint(sd))
    assert report.unexpected == []  # head.* (ImageNet classifier) dropped
    assert report.missing and all(k.startswith("decode_head.") for k in report.missing)
    assert torch.equal(model.backbone.stages[0].blocks[0].attention.k_proj.weight, sd["block1.0.attn.kv.weight"][:32])


def test_shape_mismatch_and_unknown_layout_raise(tmp_path):
    sd = segformer_to_official(build_cffm(variant="b0", num_classes=124).state_dict())
    path = tmp_path / "cffm124.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(DataError, match="shape mismatch"):
        load_weights(build_cffm(variant="b0", num_classes=10), path, converter=convert_segformer_checkpoint)
    with pytest.raises(ConfigError, match="unrecognised"):
        convert_segformer_checkpoint({"conv1.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match="not NVlabs MiT keys"):
        convert_mit_checkpoint({"patch_embed1.proj.weight": torch.zeros(1), "block1.0.weird.weight": torch.zeros(1)})
