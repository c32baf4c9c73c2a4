"""An independent re-statement of the official test pipelines, written from their semantics (not from vidseg).

Sources (read from the official repositories; see specs/models.md §1.5-1.7, §2.6, §3):

* Decoding: mmseg ``LoadImageFromFile`` -> ``mmcv.imfrombytes(flag='color')`` -> ``cv2.imdecode(IMREAD_COLOR)``:
  BGR, EXIF orientation applied.
* mmcv 1.3 ``imrescale``: ``factor = min(long / max(h, w), short / min(h, w))``, edges ``int(x * factor + 0.5)``,
  ``cv2.resize`` INTER_LINEAR from the original; ``AlignedResize._align`` resizes that result again to
  ``ceil(edge / divisor) * divisor`` (no padding). ``MultiScaleFlipAug`` with one scale passes it unchanged.
* mmcv ``imnormalize(img, mean, std, to_rgb=True)``: float32, BGR->RGB, ``cv2.subtract`` the float64 mean,
  ``cv2.multiply`` by float64 ``1 / std``.
* mmseg ``whole_inference``: logits resized bilinearly (align_corners False) to the input, then to the original
  shape; softmax; argmax.
* VSS-CFFM test clips: [t-9, t-6, t-3, t], hard-coded clips for t = 3..8, the target alone for t = 0..2.
* TCB ``TestDataset_longclip``: ``Image.open`` + ``np.float32(np.array(img)) / 255.`` + torchvision
  ``Normalize``; supports ``imglist[t + d]`` unless ``t + 9 >= len``, else ``imglist[t - d]`` (Python indexing:
  negative indices wrap); order [supports..., target]; memory cleared at frame 0 only; argmax at input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MMSEG_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
MMSEG_STD = np.array([58.395, 57.12, 57.375], np.float32)
TV_MEAN = (0.485, 0.456, 0.406)
TV_STD = (0.229, 0.224, 0.225)
CFFM_EARLY = {3: [0, 1, 2, 3], 4: [0, 2, 3, 4], 5: [0, 2, 4, 5], 6: [0, 2, 4, 6], 7: [0, 3, 5, 7], 8: [0, 3, 6, 8]}


def decode_bgr(path: Path) -> np.ndarray:
    """mmcv.imfrombytes(flag='color', backend='cv2')."""
    return cv2.imdecode(np.frombuffer(Path(path).read_bytes(), np.uint8), cv2.IMREAD_COLOR)


def aligned_resize(img: np.ndarray, scale: tuple[int, int], divisor: int) -> np.ndarray:
    """mmcv.imrescale (cv2 INTER_LINEAR) + AlignedResize._align."""
    h, w = img.shape[:2]
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    img = cv2.resize(img, (int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)),
                     interpolation=cv2.INTER_LINEAR)
    align_h = int(np.ceil(img.shape[0] / divisor)) * divisor
    align_w = int(np.ceil(img.shape[1] / divisor)) * divisor
    return cv2.resize(img, (align_w, align_h), interpolation=cv2.INTER_LINEAR)


def imnormalize(bgr: np.ndarray) -> np.ndarray:
    """mmcv.imnormalize(img, mean, std, to_rgb=True) -> float32 RGB [H, W, 3]."""
    img = bgr.astype(np.float32)
    mean = np.float64(MMSEG_MEAN.reshape(1, -1))
    stdinv = 1 / np.float64(MMSEG_STD.reshape(1, -1))
    cv2.cvtColor(img, cv2.COLOR_BGR2RGB, img)
    cv2.subtract(img, mean, img)
    cv2.multiply(img, stdinv, img)
    return img


def tcb_normalize(rgb: np.ndarray) -> torch.Tensor:
    """``np.float32(np.array(img)) / 255.`` -> [3, H, W] -> torchvision Normalize (sub_(mean).div_(std))."""
    x = torch.from_numpy((np.float32(rgb) / 255.).transpose((2, 0, 1)).copy())
    mean = torch.as_tensor(TV_MEAN, dtype=x.dtype)[:, None, None]
    std = torch.as_tensor(TV_STD, dtype=x.dtype)[:, None, None]
    return x.sub_(mean).div_(std)


def cffm_clip(t: int) -> list[int]:
    if t >= 9:
        return [t - 9, t - 6, t - 3, t]
    return CFFM_EARLY.get(t, [t])


def tcb_clip(t: int, num: int, dilations: Sequence[int] = (3, 6, 9)) -> list[int]:
    imglist = list(range(num))
    supports = [imglist[t - d] if t + dilations[-1] >= num else imglist[t + d] for d in dilations]
    return [*supports, t]


def mmseg_input(path: Path, scale: tuple[int, int], divisor: int) -> torch.Tensor:
    """LoadImageFromFile -> AlignedResize -> Normalize -> ImageToTensor: [3, h, w]."""
    img = aligned_resize(decode_bgr(path), scale, divisor)
    return torch.from_numpy(imnormalize(img).transpose(2, 0, 1).copy())


def tcb_input(path: Path) -> torch.Tensor:
    """TCB reads with PIL; for the frames of these tests (upright JPEGs) that is OpenCV's RGB decode."""
    return tcb_normalize(decode_bgr(path)[:, :, ::-1])


@torch.inference_mode()
def run_official(model: torch.nn.Module, paths: Sequence[Path], family: str,
                 scale: tuple[int, int] | None = None, divisor: int = 1
                 ) -> tuple[dict[int, torch.Tensor], list[np.ndarray]]:
    """The official test of ``family`` ("cffm", "segformer", "tcb") on one video.

    Returns:
        (model input [3, h, w] of every frame, argmax masks [H, W] of every target in order).
    """
    model.eval()
    model.reset_state()
    num = len(paths)
    inputs: dict[int, torch.Tensor] = {}
    masks = []
    for t in range(num):
        clip = cffm_clip(t) if family == "cffm" else tcb_clip(t, num) if family == "tcb" else [t]
        for i in clip:
            if i not in inputs:
                inputs[i] = tcb_input(paths[i]) if family == "tcb" else mmseg_input(paths[i], scale, divisor)
        x = torch.stack([inputs[i] for i in clip])[None]
        logits = model(x).float()
        h, w = decode_bgr(paths[t]).shape[:2]
        if family != "tcb":
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).softmax(1)
        masks.append(logits.argmax(1)[0].numpy().astype(np.uint8))
    return inputs, masks


def write_video(folder: Path, w: int, h: int, num: int, orientation: int = 1) -> list[Path]:
    """JPEG frames of a moving smooth pattern; ``orientation`` != 1 stores them rotated with an EXIF tag."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(w + h)
    base = cv2.resize(rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8), (w + 3 * num, h),
                      interpolation=cv2.INTER_CUBIC)
    paths = []
    for i in range(num):
        frame = np.ascontiguousarray(base[:, 3 * i: 3 * i + w])
        img = Image.fromarray(frame)
        exif = Image.Exif()
        if orientation != 1:
            exif[0x0112] = orientation
        path = folder / f"{i:08d}.jpg"
        img.save(path, "JPEG", quality=92, exif=exif)
        paths.append(path)
    return paths


@torch.inference_mode()
def run_official_aug_test(model: torch.nn.Module, path: Path, scale: tuple[int, int], divisor: int,
                          ratios: Sequence[float]) -> torch.Tensor:
    """mmseg ``aug_test`` of one image (single-frame models): ``MultiScaleFlipAug(img_ratios, flip=True)`` ->
    per view AlignedResize, ``mmcv.imflip``, imnormalize, logits resized to the input then to the original,
    softmax, flipped back; mean over the views. Returns the averaged probabilities [K, H, W]."""
    model.eval()
    bgr = decode_bgr(path)
    h, w = bgr.shape[:2]
    total = None
    views = 0
    for r in ratios:
        view_scale = (int(scale[0] * r), int(scale[1] * r))
        for flip in (False, True):
            img = aligned_resize(bgr, view_scale, divisor)
            if flip:
                img = np.flip(img, axis=1)
            x = torch.from_numpy(imnormalize(np.ascontiguousarray(img)).transpose(2, 0, 1).copy())[None]
            logits = model(x[:, None]).float()
            probs = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).softmax(1)
            if flip:
                probs = probs.flip(dims=(3,))
            total = probs if total is None else total + probs
            views += 1
    return (total / views)[0]
