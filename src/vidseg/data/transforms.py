"""Clip-consistent transforms: random parameters are drawn once per clip and applied to every frame.

A transform is a callable ``(data: ClipData, rng: numpy.random.Generator) -> ClipData`` working on numpy
uint8 frames [H, W, 3] (RGB) and uint8 labels [H, W] (classes 0..K-1, 255 = ignore). The random draws come
only from the ``rng`` passed in, so a clip is reproducible from its seed (DDP ranks, resumed runs).
:class:`ToTensor` ends a pipeline: it normalises and returns a :class:`vidseg.structures.Clip`.

Semantics follow mmseg 0.x (as used by VSS-CFFM, spec models.md §2.5): ``Resize`` with ``img_scale`` and
``ratio_range`` keeps the aspect ratio like ``mmcv.imrescale``; ``RandomCrop`` retries up to 10 times until
no category covers ``cat_max_ratio`` or more of the crop (ignore excluded), checked on the *target* label;
``PhotoMetricDistortion`` applies brightness, contrast (before or after the colour changes), saturation and
hue like mmseg's, per clip or per frame; ``Normalize`` uses ImageNet mean/std on RGB 0..255; ``Pad`` pads
bottom/right to the crop size with 0 (image) and 255 (labels). The official *test* resize (``AlignedResize``:
keep-ratio rescale, then a second resize stretching to a multiple of 32) is :func:`aligned_resize`; the
official training pipelines resize once (``Resize``), as :class:`Resize` does. TCB's discrete scales {0.8, 1.0, 1.5, 2.0}
are :class:`RandomScale`, which resizes with PIL and truncated sizes like the official TCB loader. OpenCV does
the other pixel work (cv2.resize / cvtColor); writing our own would be slower and is not needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from vidseg.structures import IGNORE_LABEL, Clip

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Normalization:
    """Per-channel input normalisation of RGB frames: ``(x / input_scale - mean) / std`` in float32.

    The official variants differ (mmseg and torchvision only in the last float32 bit), so each model's registry entry
    names the one its official test uses (:data:`NORMALIZATIONS`).

    Attributes:
        mean: per-channel mean, in the units of ``x / input_scale``.
        std: per-channel std, same units.
        input_scale: 1 for mmcv ``imnormalize`` on 0..255 (CFFM, SegFormer) and detectron2's mean subtraction
            (Clip-PanoFCN); 255 for ``x / 255`` followed by torchvision ``Normalize`` (TCB's ``dataset2.py``,
            STCNN's frame).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_scale: float = 1.0


NORMALIZATIONS: dict[str, Normalization] = {
    "mmseg": Normalization(),
    "torchvision": Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 255.0),
    # detectron2's PIXEL_MEAN with PIXEL_STD 1 on 0..255 (Clip-PanoFCN / PanopticFCN configs)
    "detectron2": Normalization(IMAGENET_MEAN, (1.0, 1.0, 1.0), 1.0),
}


@dataclass
class ClipData:
    """Frames and labels of one clip while it is being transformed.

    Attributes:
        frames: uint8 arrays [H, W, 3] (RGB), target last.
        labels: uint8 arrays [H, W] or None.
        frame_indices: index of each frame in its video.
        video: video name.
    """

    frames: list[np.ndarray]
    labels: list[np.ndarray] | None = None
    frame_indices: tuple[int, ...] = ()
    video: str = ""

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("a clip needs at least one frame")
        size = self.frames[0].shape[:2]
        for f in self.frames:
            if f.ndim != 3 or f.shape[2] != 3 or f.shape[:2] != size:
                raise ValueError(f"clip frames must all be [H, W, 3] of size {size}, got {f.shape}")
        if self.labels is not None:
            if len(self.labels) != len(self.frames):
                raise ValueError(f"{len(self.labels)} labels for {len(self.frames)} frames")
            for lab in self.labels:
                if lab.shape != size:
                    raise ValueError(f"label shape {lab.shape} differs from the frame size {size}")

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return self.frames[0].shape[0], self.frames[0].shape[1]

    def map(self, frame_fn: Callable[[np.ndarray], np.ndarray],
            label_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> ClipData:
        """A copy with ``frame_fn`` applied to every frame and ``label_fn`` to every label."""
        labels = self.labels
        if labels is not None and label_fn is not None:
            labels = [label_fn(lab) for lab in labels]
        return replace(self, frames=[frame_fn(f) for f in self.frames], labels=labels)


Transform = Callable[[ClipData, np.random.Generator], ClipData]


def resize_clip(data: ClipData, size_hw: tuple[int, int]) -> ClipData:
    """Resize every frame (bilinear) and label (nearest) to ``size_hw`` = (H, W)."""
    if tuple(size_hw) == data.size:
        return data
    return data.map(lambda f: resize_image(f, size_hw, "bilinear"), lambda lab: resize_image(lab, size_hw, "nearest"))


def rescale_size(size_hw: tuple[int, int], scale_wh: tuple[int, int]) -> tuple[int, int]:
    """Keep-ratio output size of ``mmcv.imrescale``: fit the long edge into max(scale), short into min(scale).

    Args:
        size_hw: (H, W) of the input.
        scale_wh: (long, short) target edges, e.g. (853, 480) (order does not matter).

    Returns:
        (H, W) of the rescaled image.
    """
    h, w = size_hw
    long_edge, short_edge = max(scale_wh), min(scale_wh)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def aligned_size(size_hw: tuple[int, int], scale_wh: tuple[int, int] | None, size_divisor: int = 32
                 ) -> tuple[int, int]:
    """Output size of the official test ``AlignedResize``: keep-ratio rescale into ``scale_wh``, then round UP
    to the divisor.

    E.g. 480x854 into (853, 480) -> 480x853 -> 480x864. ``scale_wh=None`` skips the rescale.
    """
    h, w = size_hw if scale_wh is None else rescale_size(size_hw, scale_wh)
    if size_divisor > 1:
        h = int(np.ceil(h / size_divisor)) * size_divisor
        w = int(np.ceil(w / size_divisor)) * size_divisor
    return h, w


def resize_image(img: np.ndarray, size_hw: tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """``cv2.resize`` to ``size_hw`` = (H, W) (bilinear = INTER_LINEAR, nearest = INTER_NEAREST); no-op when
    the size is already right."""
    import cv2

    if tuple(img.shape[:2]) == tuple(size_hw):
        return img
    flag = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[interpolation]
    return cv2.resize(img, (int(size_hw[1]), int(size_hw[0])), interpolation=flag)


def aligned_resize(img: np.ndarray, scale_wh: tuple[int, int] | None, size_divisor: int = 1,
                   interpolation: str = "bilinear") -> np.ndarray:
    """The official test resize (mmseg ``AlignedResize``, VSS-CFFM / NVlabs SegFormer), in its two steps.

    1. ``mmcv.imrescale``: keep-ratio resize from the original image to :func:`rescale_size` of ``scale_wh``
       (skipped when ``scale_wh`` is None).
    2. ``_align``: resize (stretch, no padding) the result of step 1 to the next multiples of ``size_divisor``.

    Both steps resample, so the result differs from one resize straight to :func:`aligned_size` (the pixel
    values, not the size). Labels use ``interpolation="nearest"``.

    Args:
        img: uint8 [H, W, 3] or [H, W].
        scale_wh: (long, short) keep-ratio target edges, e.g. (853, 480), or None.
        size_divisor: 1 skips step 2.
        interpolation: "bilinear" (cv2 INTER_LINEAR, mmcv's default) or "nearest".

    Returns:
        the resized array, of size :func:`aligned_size` ``(img.shape[:2], scale_wh, size_divisor)``.
    """
    if scale_wh is not None:
        img = resize_image(img, rescale_size(img.shape[:2], scale_wh), interpolation)
    if size_divisor > 1:
        img = resize_image(img, aligned_size(img.shape[:2], None, size_divisor), interpolation)
    return img


@dataclass(frozen=True)
class Resize:
    """mmseg ``Resize`` with ``keep_ratio=True``: one scale for the whole clip.

    With ``ratio_range`` a ratio r ~ U(ratio_range) is drawn and the target scale is ``img_scale * r``.

    Args:
        img_scale: (long, short) edges, default (853, 480) as in the VSPW configs.
        ratio_range: (low, high) or None for the fixed scale.
    """

    img_scale: tuple[int, int] = (853, 480)
    ratio_range: tuple[float, float] | None = (0.5, 2.0)

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        ratio = 1.0 if self.ratio_range is None else float(rng.uniform(*self.ratio_range))
        scale = (int(self.img_scale[0] * ratio), int(self.img_scale[1] * ratio))
        return resize_clip(data, rescale_size(data.size, scale))


@dataclass(frozen=True)
class RandomScale:
    """TCB's discrete scale: a factor drawn from ``scales`` multiplies both sides (one draw per clip).

    As the official VSPW training loaders (CVPR2021_VSPW_Implement ``dataset2.py``, ``BaseDataset`` and
    ``BaseDataset_longclip.__getitem__`` with ``--multi_scale True``): the new size is ``int(w * s)`` x
    ``int(h * s)`` (truncated), frames are resized with PIL ``BILINEAR`` (PIL's filter widens when shrinking),
    labels with PIL ``NEAREST``, and a factor of 1 leaves the clip as it is.
    """

    scales: tuple[float, ...] = (0.8, 1.0, 1.5, 2.0)

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        s = float(self.scales[int(rng.integers(0, len(self.scales)))])
        if s == 1.0:
            return data
        h, w = data.size
        size_wh = (max(int(w * s), 1), max(int(h * s), 1))
        return data.map(lambda f: pil_resize(f, size_wh, Image.BILINEAR),
                        lambda lab: pil_resize(lab, size_wh, Image.NEAREST))


def pil_resize(array: np.ndarray, size_wh: tuple[int, int], resample: int) -> np.ndarray:
    """Resize a uint8 image [H, W, 3] / [H, W] (other integer labels via int32) with PIL to ``size_wh`` = (W, H)."""
    if array.dtype == np.uint8:
        return np.asarray(Image.fromarray(array).resize(size_wh, resample))
    out = Image.fromarray(array.astype(np.int32)).resize(size_wh, resample)
    return np.asarray(out).astype(array.dtype)


def _crop_ok(label: np.ndarray, cat_max_ratio: float, ignore: int) -> bool:
    values, counts = np.unique(label, return_counts=True)
    counts = counts[values != ignore]
    return len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio


@dataclass(frozen=True)
class RandomCrop:
    """One crop box shared by the clip; with ``cat_max_ratio < 1`` it is redrawn (up to 10 tries) while one
    category covers ``cat_max_ratio`` or more of the target label's crop (mmseg ``RandomCrop``).

    Args:
        crop_size: (H, W) of the crop; a smaller image is cropped to its own size (pad afterwards).
        cat_max_ratio: maximum share of one category in the crop.
        ignore_index: label value excluded from the ratio.
    """

    crop_size: tuple[int, int] = (480, 480)
    cat_max_ratio: float = 1.0
    ignore_index: int = IGNORE_LABEL

    def _box(self, size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
        h, w = size
        margin_h, margin_w = max(h - self.crop_size[0], 0), max(w - self.crop_size[1], 0)
        y0 = int(rng.integers(0, margin_h + 1))
        x0 = int(rng.integers(0, margin_w + 1))
        return y0, min(y0 + self.crop_size[0], h), x0, min(x0 + self.crop_size[1], w)

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        box = self._box(data.size, rng)
        if self.cat_max_ratio < 1.0 and data.labels is not None:
            target = data.labels[-1]
            for _ in range(10):
                y0, y1, x0, x1 = box
                if _crop_ok(target[y0:y1, x0:x1], self.cat_max_ratio, self.ignore_index):
                    break
                box = self._box(data.size, rng)
        y0, y1, x0, x1 = box
        return data.map(lambda f: np.ascontiguousarray(f[y0:y1, x0:x1]),
                        lambda lab: np.ascontiguousarray(lab[y0:y1, x0:x1]))


@dataclass(frozen=True)
class RandomFlip:
    """Horizontal flip of the whole clip with probability ``prob``."""

    prob: float = 0.5

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        if rng.random() < self.prob:
            return data.map(lambda f: np.ascontiguousarray(f[:, ::-1]),
                            lambda lab: np.ascontiguousarray(lab[:, ::-1]))
        return data


@dataclass(frozen=True)
class PhotoParams:
    """The random draws of one photometric distortion (None = that step is skipped)."""

    brightness: float | None
    contrast: float | None
    contrast_first: bool
    saturation: float | None
    hue: int | None


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


def apply_photometric(img: np.ndarray, p: PhotoParams) -> np.ndarray:
    """mmseg ``PhotoMetricDistortion`` steps with fixed parameters on an RGB uint8 image."""
    import cv2

    out = img
    if p.brightness is not None:
        out = _to_uint8(out.astype(np.float32) + p.brightness)
    if p.contrast_first and p.contrast is not None:
        out = _to_uint8(out.astype(np.float32) * p.contrast)
    if p.saturation is not None or p.hue is not None:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        if p.saturation is not None:
            hsv[..., 1] = _to_uint8(hsv[..., 1].astype(np.float32) * p.saturation)
        if p.hue is not None:
            hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + p.hue) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not p.contrast_first and p.contrast is not None:
        out = _to_uint8(out.astype(np.float32) * p.contrast)
    return out


@dataclass(frozen=True)
class PhotoMetricDistortion:
    """mmseg ``PhotoMetricDistortion``: each step happens with probability 1/2.

    Brightness adds U(-32, 32); contrast multiplies by U(0.5, 1.5), either first or last (one coin);
    saturation multiplies the HSV S channel by U(0.5, 1.5); hue shifts H by an integer in [-18, 18) (mod 180).

    Args:
        per_frame: draw the parameters independently for every frame (CFFM's ``PhotoMetricDistortion_clips``)
            instead of once for the clip.
    """

    per_frame: bool = False
    brightness_delta: int = 32
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18

    def draw(self, rng: np.random.Generator) -> PhotoParams:
        """Draw one set of parameters."""
        def coin() -> bool:
            return bool(rng.integers(0, 2))

        brightness = float(rng.uniform(-self.brightness_delta, self.brightness_delta)) if coin() else None
        contrast_first = coin()
        contrast = float(rng.uniform(*self.contrast_range)) if coin() else None
        saturation = float(rng.uniform(*self.saturation_range)) if coin() else None
        hue = int(rng.integers(-self.hue_delta, self.hue_delta)) if coin() else None
        return PhotoParams(brightness, contrast, contrast_first, saturation, hue)

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        if self.per_frame:
            frames = [apply_photometric(f, self.draw(rng)) for f in data.frames]
            return replace(data, frames=frames)
        params = self.draw(rng)
        return data.map(lambda f: apply_photometric(f, params))


@dataclass(frozen=True)
class Pad:
    """Pad bottom/right to at least ``size`` (H, W): frames with ``pad_val``, labels with ``seg_pad_val``."""

    size: tuple[int, int] = (480, 480)
    pad_val: int = 0
    seg_pad_val: int = IGNORE_LABEL

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        h, w = data.size
        ph, pw = max(self.size[0] - h, 0), max(self.size[1] - w, 0)
        if ph == 0 and pw == 0:
            return data
        return data.map(
            lambda f: np.pad(f, ((0, ph), (0, pw), (0, 0)), constant_values=self.pad_val),
            lambda lab: np.pad(lab, ((0, ph), (0, pw)), constant_values=self.seg_pad_val),
        )


def normalize_frames(frames: np.ndarray | torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD, input_scale: float = 1.0) -> torch.Tensor:
    """uint8 RGB frames [..., H, W, 3] -> float32 [..., 3, H, W], ``(x / input_scale - mean) / std`` per channel.

    With the defaults this equals mmcv ``imnormalize`` bit for bit; with :data:`NORMALIZATIONS` ``["torchvision"]``
    it equals ``np.float32(img) / 255.`` followed by torchvision ``Normalize``.
    """
    if isinstance(frames, np.ndarray):
        x = torch.from_numpy(frames.astype(np.float32))  # a fresh, writable float copy
    else:
        x = frames.to(torch.float32)
    if input_scale != 1.0:
        x = x / float(input_scale)
    m = torch.tensor(mean, dtype=torch.float32)
    s = torch.tensor(std, dtype=torch.float32)
    x = (x - m) / s
    return x.movedim(-1, -3).contiguous()


@dataclass(frozen=True)
class ToTensor:
    """Normalise (mean/std on RGB 0..255) and stack into a :class:`Clip` ([T, 3, H, W], labels [T, H, W])."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_scale: float = 1.0

    def __call__(self, data: ClipData) -> Clip:
        frames = normalize_frames(np.stack(data.frames), self.mean, self.std, self.input_scale)
        labels = None
        if data.labels is not None:
            labels = torch.from_numpy(np.stack(data.labels).astype(np.int64))
        return Clip(frames=frames, labels=labels, frame_indices=tuple(data.frame_indices), video=data.video)


@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order (each draws from the same generator), then ``to_tensor``."""

    transforms: tuple[Transform, ...] = ()
    to_tensor: ToTensor = field(default_factory=ToTensor)

    def __call__(self, data: ClipData, rng: np.random.Generator) -> Clip:
        for t in self.transforms:
            data = t(data, rng)
        return self.to_tensor(data)


def cffm_train_transform(crop: int = 480, photometric_per_frame: bool = True) -> Compose:
    """VSS-CFFM's training pipeline (spec §2.5): Resize (853, 480) x U(0.5, 2) -> crop 480 with
    cat_max_ratio 0.75 -> flip 0.5 -> photometric distortion (per frame by default) -> normalise -> pad."""
    return Compose((
        Resize((853, 480), (0.5, 2.0)),
        RandomCrop((crop, crop), cat_max_ratio=0.75),
        RandomFlip(0.5),
        PhotoMetricDistortion(per_frame=photometric_per_frame),
        Pad((crop, crop)),
    ))


def tcb_train_transform(crop: int = 479) -> Compose:
    """TCB's training pipeline (spec §1.5): flip 0.5, scale in {0.8, 1.0, 1.5, 2.0}, one random crop of 479,
    normalise. Padding is bottom/right here (the official code pads both sides; a documented deviation)."""
    return Compose((
        RandomFlip(0.5),
        RandomScale((0.8, 1.0, 1.5, 2.0)),
        RandomCrop((crop, crop)),
        Pad((crop, crop)),
    ))


@dataclass(frozen=True)
class AlignedResize:
    """The official test resize of every frame (bilinear) and label (nearest): :func:`aligned_resize`.

    Args:
        img_scale: (long, short) keep-ratio target, or None for the frame's own size.
        size_divisor: stretch to multiples of this afterwards (1: no alignment).
    """

    img_scale: tuple[int, int] | None = (853, 480)
    size_divisor: int = 32

    def __call__(self, data: ClipData, rng: np.random.Generator) -> ClipData:
        return data.map(lambda f: aligned_resize(f, self.img_scale, self.size_divisor, "bilinear"),
                        lambda lab: aligned_resize(lab, self.img_scale, self.size_divisor, "nearest"))


def eval_transform(img_scale: tuple[int, int] | None = None, size_divisor: int = 1,
                   normalization: Normalization = NORMALIZATIONS["mmseg"]) -> Compose:
    """Evaluation: the official test resize (:class:`AlignedResize`; none when ``img_scale`` is None and
    ``size_divisor`` is 1), no randomness, then ``normalization``."""
    to_tensor = ToTensor(normalization.mean, normalization.std, normalization.input_scale)
    if img_scale is None and size_divisor <= 1:
        return Compose((), to_tensor)
    return Compose((AlignedResize(img_scale, size_divisor),), to_tensor)
