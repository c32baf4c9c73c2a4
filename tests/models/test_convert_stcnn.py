"""Converters for the official STCNN checkpoints: official-layout state dicts, every key mapped.

Official layouts: the joint model, SegBranch and NetD keys of vidseg's models are identical to the official
ones (digests asserted in test_stcnn.py against the official code); NetG's are the flat official names.
"""

from __future__ import annotations

import pytest
import torch

from vidseg.errors import DataError
from vidseg.models.checkpoint import load_state_dict, load_weights
from vidseg.models.convert_stcnn import (
    convert_inception_imagenet,
    convert_netg,
    convert_stcnn_checkpoint,
    generator_to_joint_pred,
    seg_branch_to_joint,
    torchvision_resnet_to_encoder,
)
from vidseg.models.vos.frame_pred import build_frame_pred_encoder, build_frame_pred_net
from vidseg.models.vos.inception import Inception3
from vidseg.models.vos.seg_branch import build_seg_branch, build_seg_encoder
from vidseg.models.vos.stcnn import build_stcnn

TINY = {"layers": (1, 1, 1, 1), "width": 8}


def _random_like(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(v.shape, generator=gen) + 0.5 if v.is_floating_point() else v.clone())
            for k, v in state.items()}


def _flat_netg(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """vidseg FramePredNet keys -> the official NetG's flat keys (conv1.*, layer1.*, convC_1.*, de_layer1.*)."""
    return {k.split(".", 1)[1]: v for k, v in state.items()}


@pytest.mark.parametrize("torch04", [False, True])
def test_joint_checkpoint_file_loads_every_key(tmp_path, torch04):
    source = build_stcnn(**TINY, fpn_dim=16, ppm_dim=16)
    state = _random_like(source.state_dict(), 0)
    if torch04:  # PyTorch 0.4.0 files have no num_batches_tracked
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "STCNN_frame_4_epoch-9.pth")
    model = build_stcnn(**TINY, fpn_dim=16, ppm_dim=16)
    report = load_weights(model, tmp_path / "STCNN_frame_4_epoch-9.pth", converter=convert_stcnn_checkpoint,
                          strict=True)
    assert report.loaded == len(state) and not report.missing and not report.unexpected
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_weights_of_another_model_are_refused(tmp_path):
    torch.save(build_seg_branch(**TINY, fpn_dim=16, ppm_dim=16).state_dict(), tmp_path / "seg.pth")
    with pytest.raises(DataError, match="seg.pth"):
        load_weights(build_stcnn(**TINY, fpn_dim=16, ppm_dim=16), tmp_path / "seg.pth",
                     converter=convert_stcnn_checkpoint, strict=True)


def test_netg_flat_keys_map_to_framepred_net():
    official = _flat_netg(_random_like(build_frame_pred_net(**TINY).state_dict(), 1))
    assert "de_layer3.4.weight" in official and "layer1.0.conv1.weight" in official
    model = build_frame_pred_net(**TINY)
    report = load_state_dict(model, convert_netg(official))
    assert not report.missing and not report.unexpected and report.loaded == len(official)
    assert torch.equal(model.decoder.de_layer3[4].weight, official["de_layer3.4.weight"])


def test_generator_to_joint_pred_relu_free_is_exact():
    torch.manual_seed(0)
    gen = build_frame_pred_net(relu=False, **TINY).eval()
    joint = build_stcnn(**TINY, fpn_dim=16, ppm_dim=16, bn_mode="eval").eval()
    state, report = generator_to_joint_pred(_flat_netg(gen.state_dict()))
    assert not report.renamed and not report.dropped
    result = load_state_dict(joint, state)
    assert all(k.startswith("seg_") for k in result.missing)  # only the spatial branch is left
    x = torch.rand(1, 12, 64, 96) * 2 - 1
    with torch.no_grad():
        assert torch.equal(joint.predict_frame(x)[0], gen(x))


def test_generator_to_joint_pred_reports_the_relu_shift():
    state, report = generator_to_joint_pred(build_frame_pred_net(relu=True, **TINY).state_dict())
    assert report.renamed == {
        "decoder.de_layer1.3.weight": "pred_decoder.de_layer1.2.weight",
        "decoder.de_layer2.3.weight": "pred_decoder.de_layer2.2.weight",
        "decoder.de_layer3.3.weight": "pred_decoder.de_layer3.2.weight",
        "decoder.de_layer3.4.weight": "pred_decoder.de_layer3.3.weight",
        "decoder.de_layer3.4.bias": "pred_decoder.de_layer3.3.bias",
    }
    assert "ReLU" in report.summary()
    joint = build_stcnn(**TINY, fpn_dim=16, ppm_dim=16)
    result = load_state_dict(joint, state)  # shapes fit every module
    assert not result.unexpected and not [k for k in result.missing if k.startswith("pred_")]


def test_seg_branch_to_joint():
    seg = build_seg_branch(**TINY, fpn_dim=16, ppm_dim=16)
    state, report = seg_branch_to_joint(_random_like(seg.state_dict(), 2))
    assert report.dropped and all(k.startswith("decoder.fpn_out.") for k in report.dropped)
    joint = build_stcnn(**TINY, fpn_dim=16, ppm_dim=16)
    result = load_state_dict(joint, state)
    assert not result.unexpected
    assert all(k.startswith(("pred_", "seg_decoder.joint_fpn_out.")) for k in result.missing)


def test_imagenet_initialisations():
    encoder = build_seg_encoder(**TINY)
    imagenet = {**_random_like(encoder.state_dict(), 3), "fc.weight": torch.zeros(10, 256), "fc.bias": torch.zeros(10)}
    assert not load_state_dict(encoder, torchvision_resnet_to_encoder(imagenet)).unexpected
    pred = build_frame_pred_encoder(frame_nums=5, **TINY)
    converted = torchvision_resnet_to_encoder(imagenet, frame_nums=5)
    load_state_dict(pred, converted)
    w = imagenet["conv1.weight"]
    assert torch.equal(pred.conv1.weight, torch.cat([w] * 5, dim=1))  # tiled, not divided by delta
    with torch.device("meta"):
        disc = Inception3()
    google = {k: v for k, v in disc.state_dict().items()}
    google.update({"fc.weight": torch.empty(1000, 2048, device="meta"),
                   "AuxLogits.fc.weight": torch.empty(1000, 768, device="meta")})
    kept = convert_inception_imagenet(google)
    assert not [k for k in kept if k.startswith(("fc.", "AuxLogits."))]
    assert set(kept) == set(disc.state_dict()) - {"fc.weight", "fc.bias"}
