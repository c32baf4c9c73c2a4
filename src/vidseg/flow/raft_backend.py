"""RAFT as a flow backend: released checkpoints from a local path, padding as the VSPW ``TC_cal.py`` does.

``RAFTFlow("raft-things.pth")`` is a :class:`~vidseg.flow.backends.FlowBackend`: it takes two RGB uint8
frames [H, W, 3] and returns the flow from the first to the second [H, W, 2] (float32, pixels). Frames are
padded to a multiple of 8, split evenly between both sides with the extra pixel after (the RAFT "sintel"
padder), with zeros (the VSPW copy of RAFT) or by replicating the border (upstream RAFT), and the flow is
cropped back. Checkpoints are read with ``weights_only=True``; the DataParallel ``module.`` prefix is removed
and the variant (standard / small) is recognised from the keys. Nothing downloads.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidseg.errors import ConfigError, DataError
from vidseg.flow.raft import RAFT, VARIANTS, build_raft
from vidseg.models.checkpoint import read_state_dict, strip_prefix

PADDINGS = ("zeros", "replicate")


def detect_variant(state: dict[str, torch.Tensor]) -> str | None:
    """``standard`` or ``small`` from the keys of a RAFT state dict (prefix already removed), else None."""
    if "update_block.mask.0.weight" in state:
        return "standard"
    if "update_block.gru.convz.weight" in state:
        return "small"
    return None


def _check_state(model: RAFT, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        sample = ", ".join((missing or unexpected)[:3])
        raise DataError(path, f"not a RAFT checkpoint: {len(missing)} of {len(expected)} RAFT tensors missing, "
                              f"{len(unexpected)} unexpected (e.g. {sample})")
    bad = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
           if state[k].shape != v.shape]
    if bad:
        raise DataError(path, f"not a RAFT checkpoint: {len(bad)} tensors of the wrong shape, e.g. {bad[0]}")


def load_raft(path: str | os.PathLike, variant: str | None = None, device: str | torch.device = "cpu") -> RAFT:
    """Build RAFT and load a released checkpoint (``raft-things.pth``, ``raft-small.pth``, ...).

    Args:
        path: local ``.pth`` (zip or legacy format, ``weights_only=True``) or ``.safetensors`` file.
        variant: ``standard`` or ``small``; None recognises it from the keys.
        device: where the model lives (``cpu``, ``cuda``, ``cuda:1``).

    Returns:
        the model in eval mode without gradients.

    Raises:
        DataError: missing, unreadable or truncated file, or weights of another model.
    """
    path = Path(path)
    state = strip_prefix(read_state_dict(path), "module.")
    found = detect_variant(state)
    if variant is None:
        if found is None:
            raise DataError(path, f"not a RAFT checkpoint: no RAFT update-block weights among its {len(state)} "
                                  f"tensors (e.g. {', '.join(list(state)[:3])})")
        variant = found
    elif variant not in VARIANTS:
        raise ConfigError(f"unknown RAFT variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    model = build_raft(variant)
    _check_state(model, state, path)
    model.load_state_dict(state)
    return model.to(device)


def padding_for(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding to the next multiple of 8, the extra pixel on the right/bottom."""
    ph, pw = -height % 8, -width % 8
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class RAFTFlow:
    """RAFT flow backend.

    Args:
        weights: local RAFT checkpoint.
        variant: ``standard``, ``small`` or None (recognised from the checkpoint).
        iters: refinement iterations (20, as the VSPW TC).
        device: torch device of the model and the computation.
        padding: ``zeros`` (VSPW ``TC_cal.py``) or ``replicate`` (upstream RAFT).
        corr: correlation mode, ``auto``, ``all-pairs`` or ``on-demand`` (:mod:`vidseg.flow.raft_corr`).

    The checkpoint is read and checked on construction; a pickled copy (sent to a worker process) carries
    only the settings and reloads the model on first use.
    """

    needs_frames = True

    def __init__(self, weights: str | os.PathLike, *, variant: str | None = None, iters: int = 20,
                 device: str = "cpu", padding: str = "zeros", corr: str = "auto") -> None:
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise DataError(self.weights, "RAFT weights file not found")
        if padding not in PADDINGS:
            raise ConfigError(f"unknown RAFT padding {padding!r}; choose one of {', '.join(PADDINGS)}")
        if iters < 1:
            raise ConfigError(f"RAFT needs at least one iteration, got {iters}")
        self.variant, self.iters, self.device, self.padding, self.corr = variant, iters, device, padding, corr
        self._model: RAFT | None = None
        self._digest: str | None = None
        _ = self.model  # read and check the checkpoint now: a bad file fails before any frame is read

    @property
    def model(self) -> RAFT:
        """The loaded model (read from ``weights`` on first access)."""
        if self._model is None:
            self._model = load_raft(self.weights, self.variant, self.device)
            self.variant = "small" if self._model.update_block.mask is None else "standard"
        return self._model

    def fingerprint(self) -> str:
        """Identifies the flow this backend computes: weights digest, variant, iterations and padding."""
        if self._digest is None:
            self._digest = _file_digest(self.weights)[:16]
        return f"raft-{self._digest}-it{self.iters}-{self.padding}"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    def __call__(self, frame_t: np.ndarray, frame_t1: np.ndarray, *, video: str = "", stem_t: str = "",
                 stem_t1: str = "") -> np.ndarray:
        """Flow [H, W, 2] (float32) from frame_t to frame_t1, both RGB uint8 [H, W, 3]."""
        where = f"{video}/{stem_t1}" if video else "frames"
        if frame_t.ndim != 3 or frame_t.shape[2] != 3:
            raise DataError(where, f"RAFT needs RGB frames [H, W, 3], got {frame_t.shape}")
        if frame_t.shape != frame_t1.shape:
            raise DataError(where, f"frame size {frame_t1.shape[1]}x{frame_t1.shape[0]} differs from the previous "
                                   f"frame's {frame_t.shape[1]}x{frame_t.shape[0]} (W x H)")
        return self.flow_tensor(frame_t[None], frame_t1[None], where=where)[0].permute(1, 2, 0).numpy()

    def flow_tensor(self, frames_t: np.ndarray, frames_t1: np.ndarray, where: str = "frames") -> torch.Tensor:
        """Flow of a batch: frames [B, H, W, 3] uint8 -> [B, 2, H, W] float32 on CPU (``where`` names them
        in errors)."""
        model = self.model
        h, w = frames_t.shape[1:3]
        pad = padding_for(h, w)
        images = []
        for frames in (frames_t, frames_t1):
            x = torch.from_numpy(np.array(frames, dtype=np.uint8)).to(self.device).permute(0, 3, 1, 2).float()
            images.append(F.pad(x, pad, mode="constant" if self.padding == "zeros" else "replicate"))
        try:
            with torch.inference_mode():
                _, up = model(images[0], images[1], iters=self.iters, corr=self.corr)
        except ValueError as exc:  # frames too small for the correlation pyramid
            raise DataError(where, f"{w}x{h} frames: {exc}") from None
        return up[:, :, pad[2]:pad[2] + h, pad[0]:pad[0] + w].float().cpu()
