"""Training data of STCNN's four stages (official dataloaders of longyin880815/STCNN, spec models.md §5).

Every dataset yields :class:`vidseg.structures.Clip` objects with **raw** RGB frames (float 0..255, the
stage modules of :mod:`vidseg.engine.stcnn_stages` normalise them) and labels whose last frame is the binary
object mask (0 / 1, 255 = void; the other frames are all 255):

* :class:`FramePredClips` (stage 1): delta consecutive frames and the frame after them, forwards and
  time-reversed; the official VID loader draws a random window per video and reverses with p = 0.4, we list
  every window in both directions (p = 0.5) so the stream is a function of the step.
* :class:`ImageMaskPairs` (stage 2): a folder of images and binary masks (MSRA10K / saliency style); random
  crop, horizontal flip, rotation in ±10 degrees (``train_SegBranch.py``).
* :class:`JointClips` (stage 3): DAVIS 2016 train (a 2017 package's objects merged), the previous delta
  frames and the current frame with its mask, from :func:`joint_sample_list` (``data/get_davis16_sample_list_*.py``:
  the stack never holds the target; the first frames repeat frame 0; time-reversed samples are added);
  resized to ``size`` (official 400x710), flip and scale/rotate (±30 degrees, 0.75-1.25).
* :class:`DreamClips` (stage 4): lucid-dream pairs of a video's first frame; the temporal input is the
  dream image repeated delta times; flip and scale/rotate as in stage 3 (``train_online_dream.py``).

Randomness comes from the ``rng`` of ``get(index, rng)`` (the trainer's per-step generator).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from vidseg.data.davis import DAVISVideo, scan_davis
from vidseg.data.layout import list_dirs, list_files, raise_first
from vidseg.data.lucid_dream import DreamConfig, LucidDreamer
from vidseg.errors import DataError
from vidseg.fileio import read_image
from vidseg.structures import Clip

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
VOID = 255


# ----------------------------------------------------------------------------------------------------------
# sample lists
# ----------------------------------------------------------------------------------------------------------

def joint_sample_list(num_frames: int, delta: int) -> list[tuple[tuple[int, ...], int]]:
    """(stack indices, target index) of every training sample of one video (official list order).

    Forwards: target t = delta..n-1 with stack [t - delta, ..., t - 1]; then the first frames t = 1..delta-1
    with frame 0 repeated in front ([0, 0, 0, 0] -> 1, [0, 0, 0, 1] -> 2, ... for delta 4); then time-reversed:
    target t = 0..n-delta-1 with stack [t + delta, ..., t + 1]. The stack never contains the target.
    Official quirk kept: the delta-3 script writes three first-frame samples (targets 1, 2, 3), so the sample
    [0, 1, 2] -> 3 appears twice; the official lists have 4068 / 4008 / 3978 / 3948 samples for delta 3-6.
    """
    forward = [(tuple(range(t - delta, t)), t) for t in range(delta, num_frames)]
    border = [(tuple(max(0, t - delta + k) for k in range(delta)), t)
              for t in range(1, min(max(delta, 4), num_frames))]
    backward = [(tuple(range(t + delta, t, -1)), t) for t in range(0, num_frames - delta)]
    return forward + border + backward


def framepred_sample_list(num_frames: int, delta: int) -> list[tuple[tuple[int, ...], int]]:
    """Every window of delta frames with the frame after it, forwards and time-reversed (stage 1)."""
    forward = [(tuple(range(s, s + delta)), s + delta) for s in range(0, num_frames - delta)]
    backward = [(tuple(range(s, s - delta, -1)), s - delta) for s in range(num_frames - 1, delta - 1, -1)]
    return forward + backward


# ----------------------------------------------------------------------------------------------------------
# augmentation
# ----------------------------------------------------------------------------------------------------------

def flip_scale_rotate(images: Sequence[np.ndarray], mask: np.ndarray, rng: np.random.Generator, *,
                      flip: bool = True, rots: tuple[float, float] = (-30.0, 30.0),
                      scales: tuple[float, float] = (0.75, 1.25)) -> tuple[list[np.ndarray], np.ndarray]:
    """The official ``RandomHorizontalFlip`` + ``ScaleNRotate``: one flip (p = 0.5), angle and scale for all.

    Images (float or uint8 [H, W, 3]) are warped bicubically, the mask by nearest neighbour; the border is
    0 (black image, background mask), as ``cv2.warpAffine`` leaves it in the official code.
    """
    if flip and rng.random() < 0.5:
        images, mask = [im[:, ::-1] for im in images], mask[:, ::-1]
    angle = rng.uniform(*rots)
    scale = rng.uniform(*scales)
    h, w = mask.shape
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    out = [cv2.warpAffine(np.ascontiguousarray(im, dtype=np.float32), matrix, (w, h), flags=cv2.INTER_CUBIC)
           for im in images]
    mask = cv2.warpAffine(np.ascontiguousarray(mask), matrix, (w, h), flags=cv2.INTER_NEAREST)
    return out, mask


def _resize(image: np.ndarray, size: tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    if size is None or image.shape[:2] == tuple(size):
        return image
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(image, (size[1], size[0]), interpolation=interp)


def make_clip(images: Sequence[np.ndarray], mask: np.ndarray | None, indices: Sequence[int] = (),
              video: str = "") -> Clip:
    """A clip of raw frames: images [H, W, 3] (clipped to 0..255, NaN -> 0, as the official loaders do),
    labels all void except the last frame's ``mask`` (all void when ``mask`` is None)."""
    frames = np.stack([np.nan_to_num(np.asarray(im, dtype=np.float32)) for im in images]).clip(0, 255)
    t, h, w = frames.shape[:3]
    labels = np.full((t, h, w), VOID, dtype=np.int64)
    if mask is not None:
        labels[-1] = mask
    return Clip(frames=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
                labels=torch.from_numpy(labels), frame_indices=tuple(indices), video=video)


def binary_mask(ids: np.ndarray, object_id: int | None = None) -> np.ndarray:
    """Object ids -> 0 / 1 with void 255 kept: all objects merged (None) or only ``object_id``."""
    obj = ids != 0 if object_id is None else ids == object_id
    return np.where(ids == VOID, VOID, obj & (ids != VOID)).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------------------

def frame_folders(root: str | os.PathLike, split: str | None = None) -> list[tuple[str, list[Path]]]:
    """(name, frame paths) of every video under ``root``: a DAVIS root (``JPEGImages/480p/<seq>``, restricted
    to ``split`` when given) or a folder of frame folders (ImageNet-VID style ``<root>/<video>/*.jpg``)."""
    root = Path(root)
    if (root / "JPEGImages" / "480p").is_dir():
        year = 2017 if (root / "ImageSets" / "2017").is_dir() else 2016
        videos, problems = scan_davis(root, year, split)
        raise_first(problems)
        return [(v.name, list(v.frames)) for v in videos]
    if not root.is_dir():
        raise DataError(root, "frame folder root not found")
    out = [(name, list_files(root / name, IMAGE_EXTS)) for name in list_dirs(root)]
    return [(n, f) for n, f in out if f]


class FramePredClips:
    """Stage 1: clips [delta + 1, 3, H, W] (delta input frames, then the frame to predict), labels all void.

    Args:
        videos: (name, frame paths) per video (:func:`frame_folders`).
        delta: input frames.
        size: (H, W) every frame is resized to (official 480x854); None keeps the size (must agree).
        flip: random horizontal flip (official).
    """

    def __init__(self, videos: Sequence[tuple[str, Sequence[Path]]], delta: int, size: tuple[int, int] | None,
                 flip: bool = True) -> None:
        self.videos = list(videos)
        self.size = size
        self.flip = flip
        self.samples = [(v, stack, target) for v, (_, frames) in enumerate(self.videos)
                        for stack, target in framepred_sample_list(len(frames), delta)]
        if not self.samples:
            raise DataError(self.videos[0][1][0].parent if self.videos else "videos",
                            f"no video has more than delta={delta} frames")

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int, rng: np.random.Generator) -> Clip:
        v, stack, target = self.samples[index]
        name, paths = self.videos[v]
        order = [*stack, target]
        images = [_resize(read_image(paths[i], "RGB"), self.size) for i in order]
        if self.flip and rng.random() < 0.5:
            images = [im[:, ::-1] for im in images]
        return make_clip(images, None, order, name)

    def __getitem__(self, index: int) -> Clip:
        return self.get(index, np.random.default_rng(index))


def image_mask_pairs(root: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(image, mask) paths: ``root/images`` + ``root/masks`` with matching stems, or one folder holding
    ``X.jpg`` and ``X.png`` (the MSRA10K layout). Images without a mask are an error."""
    root = Path(root)
    if (root / "images").is_dir() and (root / "masks").is_dir():
        images = list_files(root / "images", IMAGE_EXTS)
        masks = {p.stem: p for p in list_files(root / "masks", (".png", ".bmp"))}
    elif root.is_dir():
        images = list_files(root, (".jpg", ".jpeg"))
        masks = {p.stem: p for p in list_files(root, (".png",))}
    else:
        raise DataError(root, "image/mask folder not found")
    if not images:
        raise DataError(root, "no images found (expected images/ + masks/, or X.jpg with X.png)")
    missing = [p for p in images if p.stem not in masks]
    if missing:
        raise DataError(missing[0], f"image has no mask with the same name ({len(missing)} such images)")
    return [(p, masks[p.stem]) for p in images]


def read_mask(path: Path) -> np.ndarray:
    """A binary mask file -> 0 / 1 (255 = void): greyscale masks are object where > 127 (MSRA10K 0 / 255),
    palette masks where the index is neither 0 nor 255 (DAVIS-style ids, void kept)."""
    from PIL import Image

    with Image.open(path) as img:
        mode = img.mode
    arr = read_image(path)
    if mode == "P":
        return np.where(arr == VOID, VOID, arr != 0).astype(np.uint8)
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    return (arr > 127).astype(np.uint8)


class ImageMaskPairs:
    """Stage 2: clips [1, 3, crop, crop] of image/mask pairs.

    Args:
        pairs: (image, mask) paths (:func:`image_mask_pairs`); masks read by :func:`read_mask`.
        crop: square random crop (official 300); smaller images are padded (image 0, mask void).
        rotation: maximum rotation in degrees (official 10).
    """

    def __init__(self, pairs: Sequence[tuple[Path, Path]], crop: int = 300, rotation: float = 10.0) -> None:
        self.pairs = list(pairs)
        self.crop = crop
        self.rotation = rotation

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path, "RGB")
        mask = read_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise DataError(mask_path, f"mask size {mask.shape} differs from the image size {image.shape[:2]}")
        return image, mask

    def get(self, index: int, rng: np.random.Generator) -> Clip:
        image, mask = self._load(index)
        h, w = mask.shape
        ph, pw = max(0, self.crop - h), max(0, self.crop - w)
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
            mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=VOID)
        y = int(rng.integers(0, mask.shape[0] - self.crop + 1))
        x = int(rng.integers(0, mask.shape[1] - self.crop + 1))
        image, mask = image[y:y + self.crop, x:x + self.crop], mask[y:y + self.crop, x:x + self.crop]
        images, mask = flip_scale_rotate([image], mask, rng, rots=(-self.rotation, self.rotation), scales=(1.0, 1.0))
        return make_clip(images, mask, (0,), self.pairs[index][0].stem)

    def __getitem__(self, index: int) -> Clip:
        return self.get(index, np.random.default_rng(index))


class JointClips:
    """Stage 3: clips [delta + 1, 3, H, W] of DAVIS videos (objects merged), last label = the current mask.

    Args:
        videos: DAVIS reader videos (every frame annotated).
        delta: previous frames in the temporal input.
        size: (H, W) to resize to (official 400x710); None keeps the frame size.
        augment: flip + scale/rotate (official); False for deterministic clips.
    """

    def __init__(self, videos: Sequence[DAVISVideo], delta: int, size: tuple[int, int] | None = (400, 710),
                 augment: bool = True) -> None:
        self.videos = list(videos)
        self.size = size
        self.augment = augment
        self.samples = [(v, stack, target) for v, video in enumerate(self.videos)
                        for stack, target in joint_sample_list(len(video), delta)]
        if not self.samples:
            raise DataError("videos", "no DAVIS training video has two or more frames")

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int, rng: np.random.Generator) -> Clip:
        v, stack, target = self.samples[index]
        video = self.videos[v]
        images = [_resize(video.load_frame(i), self.size) for i in (*stack, target)]
        mask = _resize(binary_mask(video.load_label(target)), self.size, nearest=True)
        if self.augment:
            images, mask = flip_scale_rotate(images, mask, rng)
        return make_clip(images, mask, (*stack, target), video.name)

    def __getitem__(self, index: int) -> Clip:
        return self.get(index, np.random.default_rng(index))


class DreamClips:
    """Stage 4: ``count`` lucid-dream pairs of one frame, as clips of the dream image repeated delta + 1 times.

    Args:
        image, mask: the first frame (uint8 RGB [H, W, 3]) and its object ids [H, W].
        delta: temporal input length.
        count: dream pairs (official 100).
        seed: dreaming seed (pair ``i`` is :meth:`LucidDreamer.sample` ``(seed, i)``).
        object_id: train on this object only (one pass per object for DAVIS 2017); None merges all objects.
        augment: flip + scale/rotate on top of the dream (official).
        config: lucid-dreaming ranges.
    """

    def __init__(self, image: np.ndarray, mask: np.ndarray, delta: int, *, count: int = 100, seed: int = 0,
                 object_id: int | None = None, augment: bool = True, config: DreamConfig = DreamConfig(),
                 name: str = "first-frame mask") -> None:
        self.dreamer = LucidDreamer(image, mask, config=config, name=name)
        self.delta, self.count, self.seed = delta, count, seed
        self.object_id, self.augment = object_id, augment
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.count

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Dream pair ``index`` (image, binary mask), computed once."""
        if index not in self._cache:
            image, ids = self.dreamer.sample(self.seed, index)
            self._cache[index] = (image, binary_mask(ids, self.object_id))
        return self._cache[index]

    def get(self, index: int, rng: np.random.Generator) -> Clip:
        image, mask = self.pair(index)
        images = [image]
        if self.augment:
            images, mask = flip_scale_rotate(images, mask, rng)
        return make_clip(images * (self.delta + 1), mask, (0,) * (self.delta + 1), "dream")

    def __getitem__(self, index: int) -> Clip:
        return self.get(index, np.random.default_rng(index))
