"""prepare_for_inference on every registered semantic model family: the BatchNorm folding is exact (slow).

Compared in float64, where only ~1e-16 rounding is left: in float32 the random-weight ResNet-101 networks amplify
rounding to ~1e-3 of their logit scale (float32 vs float64 of the *same* unfused model differ by as much), which
would hide a wrong fold. Random weights with BatchNorm statistics from one batch; each model's own protocol
(``encode_frame`` per frame, ``decode_clip`` of the default clip: supports then target), tiny frames, the smallest
variant of each family.
"""

from __future__ import annotations

import copy

import pytest
import torch

from vidseg.inference.runtime import prepare_for_inference
from vidseg.models import build
from vidseg.models.registry import MODELS

H, W = 64, 96
# one name per family and backbone (the larger variants only add blocks of the same classes)
NAMES = ["segformer_b0", "cffm_b0", "pspnet_r101", "ocrnet_r101", "deeplabv3plus_r101", "upernet_r101",
         "upernet_swin_t", "tcb_ppm_r101", "tcb_ppm_b0", "tcb_ocr_r101", "tcb_ocr_mem_r101", "stsc_upernet_swin_t"]


def _calibrated(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(name, num_classes=7)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():  # running statistics from one batch of 2 frames
        model(torch.randn(2, 1 + len(model.support_offsets), 3, H, W, generator=torch.Generator().manual_seed(1)))
    return model.eval()


def _decode(model: torch.nn.Module, frames: torch.Tensor) -> torch.Tensor:
    feats = [model.encode_frame(f[None]) for f in frames]
    return model.decode_clip(feats, (H, W))


def test_names_are_registered():
    assert set(NAMES) <= set(MODELS) and all(MODELS[n].task == "semantic" for n in NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_prepared_equals_plain(name):
    model = _calibrated(name)
    model = model.double()
    frames = torch.randn(1 + len(model.support_offsets), 3, H, W, generator=torch.Generator().manual_seed(2),
                         dtype=torch.float64)
    prepared = prepare_for_inference(model, fuse_bn=True)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules()) < \
        sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    reference = copy.deepcopy(model)  # stateful models (TCB memory) see the same history in both copies
    with torch.inference_mode():
        ref = _decode(reference, frames)
        out = _decode(prepared, frames)
    assert (out - ref).abs().max() <= 1e-9 * ref.abs().max()
    assert torch.equal(out.argmax(1), ref.argmax(1))
