"""Lucid data dreaming: image/mask training pairs synthesised from one annotated frame (STCNN online stage).

Khoreva et al.'s augmentation as STCNN uses it (``davis_LucidDream.py`` + ``pyLucid/lucidDream.dreamData`` of
longyin880815/STCNN, spec models.md §5.5): remove the object from the frame and fill the hole (the background is
computed once per video), then for every pair

1. optionally flip and re-light the background (p = 0.5 each);
2. choose which objects move (a random non-empty subset); the others stay where they were (p = 0.5) or are
   removed with the hole filled;
3. optionally deform the moving objects with a thin-plate spline through 5 random boundary points shifted by up
   to ±5 % of the object box (p = 0.5);
4. scale the objects' box by U(0.85, 1.15) (each side clamped to [100, H - 50] px at 480p, scaled with the
   image height) and paste it at a uniformly random position;
5. optionally rotate the whole picture by an even angle in [-30, 30] degrees and zoom into the largest upright
   rectangle inside it, flip it horizontally, and change its illumination (p = 0.5 each).

Illumination changes act on the HSV saturation and value: ``x -> clip(m * x ** p + a, 0, 1)`` with
m ~ U(0.97, 1.03), p ~ U(0.8, 1.2), a ~ U(-0.05, 0.05), drawn separately for S and V.

Deviations from the official code, chosen for speed, portability and determinism on a CPU:

* **Background filling**: the official code paints the hole with a multi-scale PatchMatch (pycuda, about a
  minute per frame on a GPU). We use OpenCV's Telea inpainting (``cv2.inpaint``, radius 5) on the object mask
  dilated by 7 px, so that the object's anti-aliased rim does not bleed into the fill. Telea propagates the
  surrounding colours smoothly into the hole (no texture synthesis): large textured holes look blurrier than a
  patch-based fill, which only matters for how realistic the dreamed background is.
* **Blending**: the official code Poisson-blends (``cv2.seamlessClone``, MIXED_CLONE) a 3-px ring around the
  pasted object; we copy every object pixel (as the official interior) and average 50/50, on the one-pixel band
  just outside the object, the new background with the pasted box's own pixels there (the object's original
  surroundings and anti-aliased rim). seamlessClone fails near image borders and is slower. Object pixels are
  never averaged: a ring that reached inside the mask would halve the contrast of a thin object (a 1-2 px wide
  bicycle frame at 96x160 disappeared) while its label still says object.
* **Thin-plate spline**: OpenCV 5 has no shape module, so the spline is solved in numpy (same 5 control
  points, same shift range).
* The official ``bb`` (deformed, dilated box prior) is not produced: STCNN does not use it.

Randomness: sample ``i`` of seed ``s`` uses ``numpy.random.default_rng([s, i])``, so samples are reproducible,
independent of the order they are drawn in and different for different seeds.

Example::

    dreamer = LucidDreamer(frame0, mask0)            # uint8 RGB [H, W, 3], object ids uint8 [H, W]
    image, mask = dreamer.sample(seed=0, index=3)    # one pair
    pairs = dreamer.samples(100, seed=0)             # the online stage's 100 pairs
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vidseg.errors import DataError
from vidseg.viz.grid import contact_sheet
from vidseg.viz.overlay import overlay_instances

_REF_HEIGHT = 480.0  # the official pixel sizes (100, 50) are for 480p frames
_MAX_TRIES = 5


@dataclass(frozen=True)
class DreamConfig:
    """Random ranges of lucid dreaming (defaults: the official pyLucid values).

    Attributes:
        scale_range: factor applied to the moving objects' box.
        min_side: smallest box side after scaling, in pixels at 480p (scaled with the image height).
        border: the box side is at most image side minus this, in pixels at 480p.
        max_angle: rotation angles are even integers in [-max_angle, max_angle] degrees.
        deform_points: control points of the thin-plate spline (boundary pixels of the mask).
        deform_shift: control points move by U(-s, s) times the object box width / height.
        multiplier / power / offset: ranges of the HSV saturation / value change.
        p_keep_others, p_flip_background, p_light_background, p_deform, p_rotate, p_flip, p_light: probabilities.
        inpaint_radius: Telea inpainting radius in pixels.
        inpaint_dilate: the object mask is dilated by this many pixels before inpainting.
    """

    scale_range: tuple[float, float] = (0.85, 1.15)
    min_side: float = 100.0
    border: float = 50.0
    max_angle: int = 30
    deform_points: int = 5
    deform_shift: float = 0.05
    multiplier: tuple[float, float] = (0.97, 1.03)
    power: tuple[float, float] = (0.8, 1.2)
    offset: tuple[float, float] = (-0.05, 0.05)
    p_keep_others: float = 0.5
    p_flip_background: float = 0.5
    p_light_background: float = 0.5
    p_deform: float = 0.5
    p_rotate: float = 0.5
    p_flip: float = 0.5
    p_light: float = 0.5
    inpaint_radius: int = 5
    inpaint_dilate: int = 7


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def inpaint_background(image: np.ndarray, mask: np.ndarray, *, radius: int = 5, dilate: int = 7) -> np.ndarray:
    """The frame with the objects removed: the (dilated) object pixels filled by Telea inpainting.

    Args:
        image: uint8 RGB [H, W, 3].
        mask: object ids or a binary mask [H, W]; every non-zero pixel (255 = void included) is removed.
        radius: inpainting neighbourhood radius in pixels.
        dilate: grow the mask by this many pixels first (0 = no growth).

    Returns:
        uint8 RGB [H, W, 3]; pixels outside the grown mask equal ``image``.
    """
    hole = (np.asarray(mask) != 0).astype(np.uint8)
    if dilate > 0:
        hole = cv2.dilate(hole, _ellipse(2 * dilate + 1))
    if not hole.any():
        return image.copy()
    return cv2.inpaint(np.ascontiguousarray(image), hole * 255, radius, cv2.INPAINT_TELEA)


def thin_plate_map(source: np.ndarray, target: np.ndarray, shape: tuple[int, int],
                   step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A ``cv2.remap`` map that moves the control points ``source`` to ``target``.

    The map is the thin-plate spline f (kernel r^2 log r^2, plus an affine part) with f(target_i) = source_i,
    evaluated on the output pixel grid, so ``remap(img, *map)`` shows at ``target_i`` what ``img`` has at
    ``source_i``.

    Args:
        source, target: float [N, 2] (x, y) control points, N >= 3 and not all on one line.
        shape: (H, W) of the output.
        step: evaluate the spline every ``step`` pixels and interpolate bilinearly in between (the spline is
            smooth; step 4 is 16 times cheaper and differs by a small fraction of a pixel).

    Returns:
        (map_x, map_y), float32 [H, W] each.
    """
    target = np.asarray(target, dtype=np.float64)
    source = np.asarray(source, dtype=np.float64)
    n = len(target)

    def kernel(d2: np.ndarray) -> np.ndarray:
        return np.where(d2 > 0, d2 * np.log(np.maximum(d2, 1e-300)), 0.0)

    d2 = ((target[:, None, :] - target[None, :, :]) ** 2).sum(-1)
    p = np.hstack([np.ones((n, 1)), target])
    system = np.zeros((n + 3, n + 3))
    system[:n, :n], system[:n, n:], system[n:, :n] = kernel(d2), p, p.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = source
    coef = np.linalg.lstsq(system, rhs, rcond=None)[0]
    h, w = shape
    gh, gw = -(-(h - 1) // step) + 1, -(-(w - 1) // step) + 1  # nodes 0, step, ... reaching the last pixel
    ys, xs = np.mgrid[0:gh, 0:gw] * step
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    g2 = ((grid[:, None, :] - target[None, :, :]) ** 2).sum(-1)
    mapped = (kernel(g2) @ coef[:n] + coef[n] + grid @ coef[n + 1:]).astype(np.float32)
    map_x, map_y = mapped[:, 0].reshape(gh, gw), mapped[:, 1].reshape(gh, gw)
    if step == 1:
        return map_x, map_y
    fy, fx = np.mgrid[0:h, 0:w].astype(np.float32) / np.float32(step)
    return (cv2.remap(map_x, fx, fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
            cv2.remap(map_y, fx, fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))


def change_illumination(image: np.ndarray, rng: np.random.Generator, cfg: DreamConfig = DreamConfig()) -> np.ndarray:
    """Random change of HSV saturation and value (``clip(m * x ** p + a, 0, 1)``, hue kept). uint8 RGB in and out."""
    hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    for channel in (1, 2):
        m = rng.uniform(*cfg.multiplier)
        p = rng.uniform(*cfg.power)
        a = rng.uniform(*cfg.offset)
        hsv[..., channel] = np.clip(m * hsv[..., channel] ** p + a, 0.0, 1.0)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def _boundary_points(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the pixels just outside the mask (3x3 ellipse dilation minus the mask)."""
    binary = (mask > 0).astype(np.uint8)
    ring = cv2.dilate(binary, _ellipse(3)) - binary
    ys, xs = np.nonzero(ring)
    return xs, ys


def random_deform(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                  cfg: DreamConfig = DreamConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Thin-plate deformation through random boundary points of ``mask`` (image linear, mask nearest).

    Returns the inputs unchanged when the mask has too few boundary pixels or the warp would lose the object.
    """
    xs, ys = _boundary_points(mask)
    if xs.size <= cfg.deform_points:
        return image, mask
    oy, ox = np.nonzero(mask)
    box_w, box_h = np.ptp(ox) + 1, np.ptp(oy) + 1
    for _ in range(_MAX_TRIES):
        pick = rng.choice(xs.size, cfg.deform_points, replace=False)
        source = np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)
        shift = rng.uniform(-cfg.deform_shift, cfg.deform_shift, size=(cfg.deform_points, 2)) * (box_w, box_h)
        map_x, map_y = thin_plate_map(source, source + shift, mask.shape, step=4)
        new_mask = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST)
        if new_mask.any():
            return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), new_mask
    return image, mask


def paste_objects(objects: np.ndarray, mask: np.ndarray, background: np.ndarray, labels: np.ndarray,
                  rng: np.random.Generator, cfg: DreamConfig = DreamConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Scale the box of ``mask`` and paste its object pixels at a random position.

    Args:
        objects: uint8 RGB [H, W, 3] holding the objects.
        mask: uint8 [H, W] ids of the objects to move (0 elsewhere).
        background: uint8 RGB [H, W, 3] to paste onto.
        labels: uint8 [H, W] ids already in the background (objects that stay); pasted ids overwrite them.

    Returns:
        (image uint8 [H, W, 3], ids uint8 [H, W]).
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return background.copy(), labels.copy()
    crop_m = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    crop_i = objects[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = background.shape[:2]
    unit = h / _REF_HEIGHT
    scale = rng.uniform(*cfg.scale_range)
    lo, margin = max(1, round(cfg.min_side * unit)), round(cfg.border * unit)
    new_h = min(max(round(crop_m.shape[0] * scale), lo), max(h - margin, 1))
    new_w = min(max(round(crop_m.shape[1] * scale), lo), max(w - margin, 1))
    crop_m = cv2.resize(crop_m, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    crop_i = cv2.resize(crop_i, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = int(rng.integers(0, h - new_h + 1)), int(rng.integers(0, w - new_w + 1))
    placed = np.zeros((h, w), dtype=np.uint8)
    placed[top:top + new_h, left:left + new_w] = crop_m
    pasted = np.zeros_like(background)
    pasted[top:top + new_h, left:left + new_w] = crop_i
    inside = placed > 0
    image = background.copy()
    image[inside] = pasted[inside]
    in_box = np.zeros((h, w), dtype=np.uint8)
    in_box[top:top + new_h, left:left + new_w] = 1
    binary = inside.astype(np.uint8)
    band = ((cv2.dilate(binary, _ellipse(3)) - binary) & in_box) > 0  # just outside the object, inside the box
    mixed = (background[band].astype(np.uint16) + pasted[band].astype(np.uint16) + 1) // 2
    image[band] = mixed.astype(np.uint8)
    out_labels = labels.copy()
    out_labels[inside] = placed[inside]
    return image, out_labels


def _inner_rect(w: float, h: float, angle: float) -> tuple[float, float]:
    """Width and height of the largest upright rectangle inside a w x h rectangle rotated by ``angle`` rad."""
    if w <= 0 or h <= 0:
        return 0.0, 0.0
    long_side, short_side = (w, h) if w >= h else (h, w)
    sin_a, cos_a = abs(math.sin(angle)), abs(math.cos(angle))
    if short_side <= 2.0 * sin_a * cos_a * long_side or abs(sin_a - cos_a) < 1e-10:
        x = 0.5 * short_side
        return (x / sin_a, x / cos_a) if w >= h else (x / cos_a, x / sin_a)
    cos_2a = cos_a * cos_a - sin_a * sin_a
    return (w * cos_a - h * sin_a) / cos_2a, (h * cos_a - w * sin_a) / cos_2a


def rotate_zoom_matrix(shape: tuple[int, int], angle_deg: float) -> np.ndarray:
    """2x3 affine: rotate about the centre by ``angle_deg`` (counter-clockwise), then stretch the largest upright
    rectangle inside the rotated frame back to the full (H, W) (the official rotate, crop and resize in one)."""
    h, w = shape
    centre = (w / 2.0, h / 2.0)
    rot = np.vstack([cv2.getRotationMatrix2D(centre, angle_deg, 1.0), [0.0, 0.0, 1.0]])
    rw, rh = _inner_rect(w, h, math.radians(angle_deg))
    rw, rh = max(min(rw, w), 1.0), max(min(rh, h), 1.0)
    crop = np.array([[1.0, 0.0, -(centre[0] - rw / 2.0)], [0.0, 1.0, -(centre[1] - rh / 2.0)], [0.0, 0.0, 1.0]])
    zoom = np.diag([w / rw, h / rh, 1.0])
    return (zoom @ crop @ rot)[:2]


def _apply_rotation(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                    cfg: DreamConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rotate-and-zoom both, retrying angles that would lose every object (as the official code does)."""
    h, w = labels.shape
    steps = cfg.max_angle // 2
    for _ in range(_MAX_TRIES):
        matrix = rotate_zoom_matrix((h, w), 2.0 * int(rng.integers(-steps, steps + 1)))
        new_labels = cv2.warpAffine(labels, matrix, (w, h), flags=cv2.INTER_NEAREST)
        if (new_labels != 0).any():
            return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT), new_labels
    return image, labels


def _object_ids(mask: np.ndarray) -> np.ndarray:
    return np.array([v for v in np.unique(mask) if v not in (0, 255)], dtype=np.uint8)


class LucidDreamer:
    """Synthesises (image, mask) pairs from one frame and its object mask.

    Args:
        image: uint8 RGB [H, W, 3] (e.g. frame 0 of a video).
        mask: uint8 [H, W] object ids (0 background, 1..N objects; 255 = void is treated as background and
            removed from the picture like an object), same H, W as ``image``.
        config: random ranges (:class:`DreamConfig`).
        background: a precomputed object-free background (default: :func:`inpaint_background`).
        name: what the error messages call the input (e.g. the mask file).

    Raises:
        DataError: sizes differ, the image is not RGB uint8, or the mask has no object.
    """

    def __init__(self, image: np.ndarray, mask: np.ndarray, *, config: DreamConfig = DreamConfig(),
                 background: np.ndarray | None = None, name: str = "first-frame mask") -> None:
        image, mask = np.asarray(image), np.asarray(mask)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DataError(name, f"lucid dreaming needs a uint8 RGB frame [H, W, 3], got {image.dtype} {image.shape}")
        if mask.shape != image.shape[:2]:
            raise DataError(name, f"mask size {mask.shape} differs from the frame size {image.shape[:2]}")
        self.ids = _object_ids(mask)
        if self.ids.size == 0:
            raise DataError(name, "mask has no object (all pixels are background or void)")
        self.image = np.ascontiguousarray(image)
        self.mask = np.where(mask == 255, 0, mask).astype(np.uint8)
        self.config = config
        self.background = background if background is not None else inpaint_background(
            self.image, mask, radius=config.inpaint_radius, dilate=config.inpaint_dilate)

    def _start(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(background to paste on, labels of the objects that stay, ids of the objects that move)."""
        cfg = self.config
        count = int(rng.integers(0, self.ids.size)) + 1
        moving = np.sort(rng.choice(self.ids, count, replace=False))
        move_mask = np.isin(self.mask, moving)
        background = self.background.copy()
        labels = np.zeros_like(self.mask)
        if rng.random() < cfg.p_keep_others:
            grown = cv2.dilate(move_mask.astype(np.uint8), _ellipse(5)) > 0
            background[~grown] = self.image[~grown]
            labels = np.where(move_mask, 0, self.mask).astype(np.uint8)
        if rng.random() < cfg.p_flip_background:
            background, labels = background[:, ::-1].copy(), labels[:, ::-1].copy()
        if rng.random() < cfg.p_light_background:
            background = change_illumination(background, rng, cfg)
        return background, labels, moving

    def sample(self, seed: int = 0, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Pair ``index`` of ``seed``: (image uint8 RGB [H, W, 3], object ids uint8 [H, W]) of the input's size."""
        cfg = self.config
        rng = np.random.default_rng([seed, index])
        background, labels, moving = self._start(rng)
        objects = np.where(np.isin(self.mask, moving), self.mask, 0).astype(np.uint8)
        picture = self.image
        if rng.random() < cfg.p_deform:
            picture, objects = random_deform(picture, objects, rng, cfg)
        image, labels = paste_objects(picture, objects, background, labels, rng, cfg)
        if rng.random() < cfg.p_rotate:
            image, labels = _apply_rotation(image, labels, rng, cfg)
        if rng.random() < cfg.p_flip:
            image, labels = image[:, ::-1], labels[:, ::-1]
        if rng.random() < cfg.p_light:
            image = change_illumination(np.ascontiguousarray(image), rng, cfg)
        return np.ascontiguousarray(image), np.ascontiguousarray(labels)

    def samples(self, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        """Pairs ``0..count-1`` of ``seed``."""
        return [self.sample(seed, i) for i in range(count)]


def dream_contact_sheet(image: np.ndarray, mask: np.ndarray, pairs: Sequence[tuple[np.ndarray, np.ndarray]], *,
                        columns: int = 4, alpha: float = 0.5) -> np.ndarray:
    """A contact sheet: the source frame with its mask, then every dreamed image with its mask overlaid.

    Args:
        image, mask: the source frame (uint8 RGB [H, W, 3]) and its object ids [H, W].
        pairs: dreamed (image, ids) pairs.
        columns: tiles per row.

    Returns:
        uint8 RGB image (see :func:`vidseg.viz.grid.contact_sheet`).
    """
    tiles = [overlay_instances(image, np.where(mask == 255, 0, mask), alpha)]
    tiles += [overlay_instances(img, ids, alpha) for img, ids in pairs]
    labels = ["source"] + [f"dream {i}" for i in range(len(pairs))]
    return contact_sheet(tiles, columns=columns, labels=labels)
