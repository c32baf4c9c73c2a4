"""Online fine-tuning: learns the first frame, keeps the temporal branch, resumes exactly after interruption."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidseg.engine.stcnn_online import OnlineConfig, finetune_online
from vidseg.models.vos.stcnn import build_stcnn


def _frame() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = (rng.random((48, 64, 3)) * 60 + 60).astype(np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    cv2.circle(mask, (30, 24), 11, 1, -1)
    image[mask > 0] = (230, 40, 40)
    return image, mask


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_stcnn(frame_nums=3, layers=(1, 1, 1, 1), width=8, fpn_dim=16, ppm_dim=16)


def test_finetune_lowers_the_loss_and_keeps_the_pred_branch() -> None:
    image, mask = _frame()
    model = _model()
    pred0 = copy.deepcopy({k: v for k, v in model.state_dict().items() if k.startswith("pred_")
                           and "running" not in k and "num_batches" not in k})
    losses = finetune_online(model, image, mask, config=OnlineConfig(pairs=6, epochs=3, lr=1e-2, augment=False))
    assert len(losses) == 3 and losses[-1] < losses[0]
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in pred0.items())
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_interrupted_finetune_resumes_to_the_same_weights(tmp_path: Path) -> None:
    image, mask = _frame()
    cfg = OnlineConfig(pairs=3, epochs=2, lr=1e-2)
    reference = _model()
    finetune_online(reference, image, mask, config=cfg)

    model = _model()
    ckpt = tmp_path / "ft.pt"

    def stop(step: int, loss: float) -> None:
        if step == 4:  # in the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune_online(model, image, mask, config=cfg, checkpoint=ckpt, on_step=stop)
    resumed = _model()
    finetune_online(resumed, image, mask, config=cfg, checkpoint=ckpt)
    for (k, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
