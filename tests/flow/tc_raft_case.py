"""The synthetic TC case run through the official VSPW TC_cal.py (see test_tc_raft.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vidseg.data.synth import generate


def make_tc_case(root: Path) -> tuple[Path, Path]:
    """Write a 4-video VSPW val split (4 frames of 125x133) and predictions; return (data root, pred dir).

    The predictions are the shifted ground truth with seeded random 9x9 blocks of other classes, so the
    warped predictions disagree in places.
    """
    data = root / "vspw"
    generate("vspw", data, videos=4, frames=4, size=(125, 133), seed=3, val_fraction=1.0, progress=False)
    pred = root / "pred"
    rng = np.random.default_rng(11)
    for mask in sorted((data / "data").glob("*/mask/*.png")):
        raw = np.asarray(Image.open(mask)).astype(np.int64)
        p = np.where((raw == 0) | (raw == 255), 0, raw - 1)
        for _ in range(6):
            y, x = rng.integers(0, 116), rng.integers(0, 124)
            p[y:y + 9, x:x + 9] = rng.integers(0, 124)
        out = pred / mask.parent.parent.name / mask.name
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(p.astype(np.uint8), mode="L").save(out)
    return data, pred


def write_tc_weights(path: Path) -> Path:
    """Seeded random standard-RAFT weights (``module.`` keys, legacy .pth format) with a flow head scaled
    down 50x, so that the flows are a few pixels as on real video rather than the ~100 px of raw random
    weights (which warp almost everything outside the frame)."""
    import torch

    from vidseg.flow.raft import build_raft

    from .raft_reference import random_raft_state

    shapes = {k: tuple(v.shape) for k, v in build_raft("standard").state_dict().items()}
    state = random_raft_state(shapes, seed=1234)
    for key in ("update_block.flow_head.conv2.weight", "update_block.flow_head.conv2.bias"):
        state[key] = state[key] * 0.02
    torch.save({"module." + k: v for k, v in state.items()}, path, _use_new_zipfile_serialization=False)
    return path


def make_many_videos_case(root: Path) -> tuple[Path, Path]:
    """103 videos of 2 frames (125x133) in val: the official script scores only the first 100."""
    data = root / "vspw101"
    generate("vspw", data, videos=103, frames=2, size=(125, 133), seed=5, val_fraction=1.0, progress=False)
    pred = root / "pred101"
    for mask in sorted((data / "data").glob("*/mask/*.png")):
        raw = np.asarray(Image.open(mask)).astype(np.int64)
        p = np.where((raw == 0) | (raw == 255), 0, raw - 1)
        out = pred / mask.parent.parent.name / mask.name
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(p.astype(np.uint8), mode="L").save(out)
    return data, pred
