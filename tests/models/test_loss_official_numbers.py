"""Training losses equal the official code's on the same weights (issue 16).

The constants were obtained by running the official loss code on CPU beside vidseg (float64, BN in train mode,
dropout off, outside the repository):
* CFFM: VSS-CFFM ``BaseDecodeHead_clips_flow.losses`` + its mmseg 0.11 ``CrossEntropyLoss`` (mmcv stubbed) on the
  train outputs of vidseg's CFFM-B0 built below: 0.8194270826768334, every gradient identical (difference 0.0).
* TCB: VSPW code ``Clip_PSP`` / ``ClipOCRNet`` forward with ``crit = NLLLoss(ignore_index=255)`` and
  ``deep_sup_scale=0.4``, sharing the encoder object and the head weights of vidseg's TCB (ResNet-50, OS 8) built
  below, on one DataParallel chunk of 2 clips: PPM 2.3714534652650534 (gradients within 2.4e-14 of the largest),
  OCR 2.3523224443139474 (3.5e-15). Emulating DataParallel on 2 GPUs (official module per chunk of 2 clips,
  ``loss.mean()``, BN in eval mode) against vidseg on the 4 clips: PPM 2.2551887596880937, OCR
  2.2533998142532505 (gradients within 3e-16). With ``loss_reduction="valid"`` the gradients differ by 15-31%
  (TCB) and 220% (CFFM) of the largest gradient.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidseg.models.video.cffm import build_cffm
from vidseg.models.video.tcb import build_tcb

pytestmark = pytest.mark.slow

CFFM_OFFICIAL = 0.8194270826768334
TCB_OFFICIAL_ONE_CHUNK = {"ppm": 2.3714534652650534, "ocr": 2.3523224443139474}


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _train_without_dropout(model: nn.Module) -> nn.Module:
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout | nn.Dropout2d):
            m.eval()
    return model


def test_cffm_loss_equals_the_official_code(float64) -> None:
    torch.manual_seed(0)
    model = _train_without_dropout(build_cffm(variant="b0", num_classes=5, drop_path_rate=0.0))
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(2, 4, 3, 64, 64, generator=g)
    labels = torch.randint(0, 5, (2, 4, 64, 64), generator=g)
    labels[0, :, :40] = 255
    labels[1, -1, :, 10:] = 255
    labels[1, 0] = 255
    loss = sum(model.losses(model(frames), labels).values())
    assert loss.item() == pytest.approx(CFFM_OFFICIAL, rel=1e-10)


@pytest.mark.parametrize("blend", ["ppm", "ocr"])
def test_tcb_loss_equals_the_official_code(float64, blend: str) -> None:
    torch.manual_seed(0)
    model = _train_without_dropout(build_tcb(num_classes=5, blend=blend, depth=50))
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(4, 4, 3, 33, 33, generator=g)
    labels = torch.randint(0, 5, (4, 4, 33, 33), generator=g)
    labels[0, :, :20] = 255
    labels[1, -1, :, 10:] = 255
    loss = sum(model.losses(model(frames[:2]), labels[:2]).values())
    assert loss.item() == pytest.approx(TCB_OFFICIAL_ONE_CHUNK[blend], rel=1e-10)
