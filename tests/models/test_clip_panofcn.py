"""Clip-PanoFCN network: official parameter count and key layout, outputs, checkpoint converters."""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import DataError
from vidseg.models.checkpoint import load_weights
from vidseg.models.convert_panofcn import (
    convert_clip_panofcn_checkpoint,
    image_checkpoint_converter,
    split_image_checkpoint,
)
from vidseg.models.panoptic.clip_panofcn import (
    NUM_PARAMS_R50,
    ClipPanoFCN,
    build_clip_panofcn,
    build_tiny_clip_panofcn,
)

BN = ("norm.weight", "norm.bias", "norm.running_mean", "norm.running_var")


def official_keys(blocks=(3, 4, 6, 3)) -> list[str]:
    """The 346 detectron2 keys of the official VideoPanopticFCN, written from the spec's naming rules."""
    keys = ["backbone.bottom_up.stem.conv1.weight"] + [f"backbone.bottom_up.stem.conv1.{n}" for n in BN]
    for stage, count in zip(range(2, 6), blocks):
        for b in range(count):
            convs = ["conv1", "conv2", "conv3"] + (["shortcut"] if b == 0 else [])
            for c in convs:
                prefix = f"backbone.bottom_up.res{stage}.{b}.{c}"
                keys += [f"{prefix}.weight"] + [f"{prefix}.{n}" for n in BN]
    for level in range(2, 6):
        keys += [f"backbone.fpn_lateral{level}.{p}" for p in ("weight", "bias")]
        keys += [f"backbone.fpn_output{level}.{p}" for p in ("weight", "bias")]
    keys += [f"backbone.top_block.{p}.{q}" for p in ("p6", "p7") for q in ("weight", "bias")]
    for level, convs in (("p2", 1), ("p3", 1), ("p4", 2), ("p5", 3)):
        for k in range(convs):
            keys += [f"semantic_fpn.{level}.{2 * k}.{n}" for n in ("weight", "norm.weight", "norm.bias")]
    for k in range(1, 4):
        prefix = f"position_head.position_head.position_head_head_{k}"
        keys += [f"{prefix}.offset_mask_conv.weight", f"{prefix}.offset_mask_conv.bias", f"{prefix}.dcnv2.weight",
                 f"{prefix}.dcnv2.norm.weight", f"{prefix}.dcnv2.norm.bias"]
        prefix = f"kernel_head.kernel_head.kernel_head_head_{k}"
        keys += [f"{prefix}.weight", f"{prefix}.norm.weight", f"{prefix}.norm.bias"]
        keys += [f"feature_encoder.encode_head.encode_head_head_{k}.{p}" for p in ("weight", "bias")]
    for name in ("position_head.out_inst", "position_head.out_sem", "kernel_head.out_conv",
                 "thing_generator.embed_extractor", "stuff_generator.embed_extractor"):
        keys += [f"{name}.weight", f"{name}.bias"]
    return keys


@pytest.fixture(scope="module")
def r50() -> ClipPanoFCN:
    torch.manual_seed(0)
    return build_clip_panofcn()


@pytest.fixture(scope="module")
def tiny() -> ClipPanoFCN:
    torch.manual_seed(0)
    return build_tiny_clip_panofcn().eval()


def test_official_parameter_count_and_keys(r50):
    assert sum(p.numel() for p in r50.parameters()) == NUM_PARAMS_R50 == 36_978_766
    expected = official_keys()
    assert len(expected) == 346
    assert sorted(r50.state_dict()) == sorted(expected)
    shapes = r50.state_dict()
    assert tuple(shapes["position_head.out_inst.weight"].shape) == (58, 256, 3, 3)
    assert tuple(shapes["position_head.out_sem.weight"].shape) == (67, 256, 3, 3)
    assert tuple(shapes["position_head.position_head.position_head_head_1.offset_mask_conv.weight"].shape) == (
        27, 256, 3, 3)
    assert tuple(shapes["kernel_head.kernel_head.kernel_head_head_1.weight"].shape) == (256, 258, 3, 3)
    assert tuple(shapes["feature_encoder.encode_head.encode_head_head_1.weight"].shape) == (64, 258, 3, 3)
    assert tuple(shapes["thing_generator.embed_extractor.weight"].shape) == (64, 256, 1, 1)
    # parameter split of the spec (§4.2)
    count = {name: sum(p.numel() for p in r50.get_submodule(name).parameters())
             for name in ("backbone.bottom_up", "semantic_fpn", "position_head", "kernel_head", "feature_encoder")}
    assert count == {"backbone.bottom_up": 23_454_912, "semantic_fpn": 4_132_352, "position_head": 2_245_838,
                     "kernel_head": 2_365_696, "feature_encoder": 222_528}
    # the stem and res2 are frozen (FREEZE_AT 2), res3 trains
    assert not r50.backbone.bottom_up.res2[0].conv1.weight.requires_grad
    assert r50.backbone.bottom_up.res3[0].conv1.weight.requires_grad
    assert torch.allclose(r50.position_head.out_inst.bias, torch.full((58,), -2.19))


def test_output_dict_shapes_and_padding(tiny):
    frames = torch.randn(2, 3, 3, 60, 90) * 50
    with torch.no_grad():
        out = tiny(frames)
    assert out["batch_size"] == 2 and out["num_frames"] == 3 and out["image_size"] == (60, 90)
    # padded to 64 x 96: P3..P7 at strides 8..128
    assert [tuple(c.shape) for c in out["centers"]] == [(6, 58, 8, 12), (6, 58, 4, 6), (6, 58, 2, 3),
                                                       (6, 58, 1, 2), (6, 58, 1, 1)]
    assert [r.shape[1] for r in out["regions"]] == [67] * 5
    assert [k.shape[1] for k in out["kernels"]] == [64] * 5
    assert tuple(out["encode_feat"].shape) == (6, 32, 16, 24)
    assert bool((out["encode_feat"] >= 0).all())
    # frame-major order: frame n of the flat batch is clip n // T, frame n % T, each run independently
    with torch.no_grad():
        single = tiny(frames[1:2, 2:3])
    torch.testing.assert_close(single["centers"][0][0], out["centers"][0][5], rtol=1e-4, atol=1e-4)
    # zero padding happens inside: an already padded input gives the same maps
    padded = torch.nn.functional.pad(frames, (0, 6, 0, 4))
    with torch.no_grad():
        again = tiny(padded)
    torch.testing.assert_close(again["encode_feat"], out["encode_feat"])


def test_dynamic_masks_is_the_kernel_feature_product(tiny):
    enc = torch.rand(2, 32, 5, 7)
    weights = torch.randn(2, 4, 32)
    masks = ClipPanoFCN.dynamic_masks(weights, enc)
    torch.testing.assert_close(masks[1, 3], torch.einsum("c,chw->hw", weights[1, 3], enc[1]))
    shared = ClipPanoFCN.dynamic_masks(weights[0], enc)
    torch.testing.assert_close(shared[1], torch.einsum("kc,chw->khw", weights[0], enc[1]))


def test_converter_maps_every_official_key_and_round_trips(tiny, tmp_path):
    official = {k: v.clone() for k, v in tiny.state_dict().items()}
    official["clip_fuse_head.convs.0.weight"] = torch.zeros(1)  # built only with USE_CLIPFUSE
    converted = convert_clip_panofcn_checkpoint(official)
    assert sorted(converted) == sorted(tiny.state_dict())
    path = tmp_path / "model_final.pth"
    torch.save({"model": official, "iteration": 120000}, path)
    torch.manual_seed(1)
    other = build_tiny_clip_panofcn().eval()
    report = load_weights(other, path, converter=convert_clip_panofcn_checkpoint, strict=True)
    assert report.loaded == len(tiny.state_dict()) and not report.missing
    frames = torch.randn(1, 2, 3, 64, 64) * 40
    with torch.no_grad():
        a, b = tiny(frames), other(frames)
    for key in ("centers", "regions", "kernels"):
        for x, y in zip(a[key], b[key]):
            assert torch.equal(x, y)
    assert torch.equal(a["encode_feat"], b["encode_feat"])


def test_converter_refuses_another_model():
    with pytest.raises(DataError, match="not a Clip-PanoFCN"):
        convert_clip_panofcn_checkpoint({"encoder.conv1.weight": torch.zeros(1)})


def test_image_checkpoint_shared_parts_and_skipped_keys(r50):
    """PanopticFCN-Star layout: COCO class outputs, 256-d deformable encoder and 256-d embed extractors skip."""
    star = {k: v for k, v in r50.state_dict().items() if not k.startswith("feature_encoder.")}
    star["position_head.out_inst.weight"] = torch.zeros(80, 256, 3, 3)
    star["position_head.out_inst.bias"] = torch.zeros(80)
    star["position_head.out_sem.weight"] = torch.zeros(54, 256, 3, 3)
    star["position_head.out_sem.bias"] = torch.zeros(54)
    for k in range(1, 4):
        prefix = f"feature_encoder.encode_head.encode_head_head_{k}"
        star[f"{prefix}.offset_mask_conv.weight"] = torch.zeros(27, 256, 3, 3)
        star[f"{prefix}.dcnv2.weight"] = torch.zeros(256, 256, 3, 3)
    for gen in ("thing_generator", "stuff_generator"):
        star[f"{gen}.embed_extractor.weight"] = torch.zeros(256, 256, 1, 1)
        star[f"{gen}.embed_extractor.bias"] = torch.zeros(256)
    keep, skipped = split_image_checkpoint(star, r50.state_dict())
    assert len(skipped) == 4 + 6 + 4
    assert "position_head.out_inst.weight" in skipped and "thing_generator.embed_extractor.bias" in skipped
    assert set(keep) | set(skipped) == set(star)
    missing = set(r50.state_dict()) - set(keep)
    assert missing == {k for k in official_keys() if k.startswith(("feature_encoder.", "position_head.out_",
                                                                    "thing_generator.", "stuff_generator."))}
    recorded: list[str] = []
    converted = image_checkpoint_converter(r50, recorded)(star)
    assert sorted(converted) == sorted(keep) and recorded == skipped


def test_registry_entries_load_official_checkpoints(tiny, tmp_path):
    from vidseg.models import load_model
    from vidseg.models.registry import get_entry, make_predictor

    path = tmp_path / "model_final.pth"
    torch.save({"model": dict(tiny.state_dict())}, path)
    model = load_model("clip_panofcn_tiny", path, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny.state_dict().values()))
    assert make_predictor("clip_panofcn_tiny", model).clip_length == 3
    assert make_predictor("panofcn_r50", model).clip_length == 1
    for name in ("clip_panofcn_r50", "panofcn_r50", "clip_panofcn_tiny"):
        entry = get_entry(name)
        assert entry.task == "panoptic" and entry.family == "clip_panofcn" and entry.train_clips == "consecutive"


def test_load_model_names_the_file_of_another_models_checkpoint(tmp_path):
    from vidseg.models import load_model

    path = tmp_path / "segformer.pth"
    torch.save({"state_dict": {"decode_head.conv_seg.weight": torch.zeros(2, 2, 1, 1)}}, path)
    with pytest.raises(DataError, match=rf"{path.name}: not a Clip-PanoFCN"):
        load_model("clip_panofcn_tiny", path)
