"""A toy video model and data set for engine tests (no dependency on the real models/readers).

Also a script: ``python _toy.py OUT ITERS [--resume]`` trains the toy through :class:`Trainer` (used by the
SIGTERM and torchrun tests).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidseg.structures import Clip

NUM_CLASSES = 3


class ToyVideoModel(nn.Module):
    """backbone (conv + GroupNorm) -> per-frame head; target logits = head(mean of frames). Has dropout."""

    support_offsets = (-1,)
    num_classes = NUM_CLASSES

    def __init__(self, width: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(2, width), nn.ReLU())
        self.dropout = nn.Dropout2d(dropout)
        self.decode_head = nn.Sequential(nn.Conv2d(width, width, 1), nn.GroupNorm(1, width),
                                         nn.Conv2d(width, NUM_CLASSES, 1))

    def forward(self, frames: torch.Tensor):
        b, t = frames.shape[:2]
        feats = self.backbone(frames.flatten(0, 1))
        feats = self.dropout(feats)
        per_frame = self.decode_head(feats).unflatten(0, (b, t))
        target = self.decode_head(feats.unflatten(0, (b, t)).mean(1))
        if self.training:
            return per_frame, target
        return target

    def losses(self, outputs, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        per_frame, target = outputs
        return {
            "frames": 0.5 * F.cross_entropy(per_frame.flatten(0, 1), labels.flatten(0, 1), ignore_index=255),
            "target": F.cross_entropy(target, labels[:, -1], ignore_index=255),
        }

    def reset_state(self) -> None:
        pass


class ToyClips(torch.utils.data.Dataset):
    """Clips whose label is the argmax colour channel of blocky images, plus noise drawn from numpy's RNG."""

    def __init__(self, n: int = 16, size: int = 16, frames: int = 2) -> None:
        self.n, self.size, self.frames = n, size, frames

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Clip:
        base = np.random.default_rng(index).random((3, self.size // 4, self.size // 4))
        img = np.kron(base, np.ones((4, 4)))
        imgs = np.stack([img + 0.3 * np.random.rand(*img.shape) for _ in range(self.frames)])  # global RNG
        if np.random.rand() < 0.5:
            imgs = imgs[..., ::-1]
        labels = imgs.argmax(1)
        return Clip(frames=torch.from_numpy(imgs.copy()).float(), labels=torch.from_numpy(labels.copy()).long(),
                    frame_indices=tuple(range(self.frames)), video=f"v{index}")


def toy_config(max_iters: int = 6, batch: int = 4, **over):
    from vidseg.config import TrainConfig

    cfg = TrainConfig(name="toy", seed=3, deterministic=True, device="cpu", checkpoint_every=2, eval_every=-1,
                      log_every=1)
    cfg.data.batch_size = batch
    cfg.data.num_workers = 0
    cfg.optim.name = "adamw"
    cfg.optim.lr = 1e-2
    cfg.optim.param_groups = "cffm"
    cfg.schedule.max_iters = max_iters
    cfg.schedule.warmup_iters = 2
    for k, v in over.items():
        obj = cfg
        *head, last = k.split(".")
        for h in head:
            obj = getattr(obj, h)
        setattr(obj, last, v)
    return cfg


def train_toy(out, max_iters: int, resume: bool = False, dropout: float = 0.2, **over):
    from vidseg.engine.trainer import Trainer, seed_everything, set_deterministic

    cfg = toy_config(max_iters, **over)
    set_deterministic(True)
    seed_everything(cfg.seed)
    model = ToyVideoModel(dropout=dropout)
    return Trainer(cfg, model, ToyClips(), out_dir=out).fit(resume=resume), model


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, iters = sys.argv[1], int(sys.argv[2])
    extra = dict(a.split("=", 1) for a in sys.argv[3:] if "=" in a)
    over = {k: int(v) if v.isdigit() else float(v) for k, v in extra.items()}
    res, model = train_toy(out, iters, resume="--resume" in sys.argv, **over)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        torch.save(model.state_dict(), f"{out}/final_weights.pt")
    print("DONE", res.iteration, res.interrupted)
