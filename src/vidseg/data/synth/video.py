"""Synthetic video segmentation data in the exact official layouts of VSPW, VIPSeg and DAVIS 2017.

Two ways in:

* In memory, no disk: :class:`SyntheticVideo` (random access ``video[t]``) or :func:`iter_frames` yield
  :class:`~vidseg.data.synth.scene.SynthFrame` objects (RGB image, semantic labels in the library
  convention, thing track ids, void mask, per-object state) for tests, demos and quick training.
* On disk: :func:`generate` writes a whole dataset (``vidseg synth``) in the official layout and formats
  (JPEG frames; VSPW 8-bit ``L`` masks with raw values 0 = others, 1..124 classes, 255 = void; VIPSeg 16-bit
  panomasks with the category for stuff and ``category*100 + instance`` for things, 0 = void; DAVIS
  indexed-palette annotations with objects 1..N and 255 = void; split files; ``label_num_dic_final.json``).

The content is built so models can learn and temporal methods matter: stuff classes are textured regions
with class-specific colour and texture statistics, things have identities and move smoothly, occlude each
other, enter and leave, change scale; the camera pans and zooms; some frames are degraded (motion blur,
noise, lighting) so a frame alone can be ambiguous. Same seed, same bytes: video ``i`` of seed ``s`` depends
only on ``(s, i)``, the frame size, the frame count and the class configuration.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from vidseg.categories import vipseg_categories
from vidseg.data.synth.appearance import category_tile, special_tile, tinted_tile
from vidseg.data.synth.scene import (
    IGNORE,
    Ellipse,
    ObjectPlan,
    Smooth,
    SynthFrame,
    VideoPlan,
    _bounded_path,
    _wave,
    camera_at,
    half_width,
    render_frame,
    sample_degradations,
    view_half_width,
)
from vidseg.errors import ConfigError

KINDS = ("vspw", "vipseg", "davis")

DEFAULT_STUFF = ("sky", "building", "tree", "grass", "road", "water", "mountain")
DEFAULT_THINGS = ("person", "car", "dog", "bicycle")
# Typical object height (world units = frame heights at zoom 1) per class; others use 0.25.
BASE_HEIGHT = {"person": 0.36, "car": 0.2, "dog": 0.17, "bicycle": 0.22}

__all__ = [
    "DEFAULT_STUFF", "DEFAULT_THINGS", "KINDS", "SynthConfig", "SynthFrame", "SyntheticVideo", "iter_frames",
    "plan_video", "video_name",
]


@dataclass(frozen=True)
class SynthConfig:
    """What synthetic videos contain.

    Attributes:
        stuff: stuff category names (VSPW/VIPSeg names, e.g. ``"sky"``); each video uses three of them as
            bands and optionally a fourth as a blob.
        things: thing category names; objects are drawn from these.
        objects: (min, max) number of thing objects per video.
        degrade_prob: probability that a frame (other than the first) is degraded.
        others_prob: probability that a video has an unlabelled "others" region (VSPW raw 0).
        void_prob: probability that a video shows a void caption bar for part of its frames.
        blob_prob: probability of an extra stuff blob.
        max_speed: maximum object step per frame in frame heights.
        max_pan: maximum camera step per frame in frame heights.
        max_zoom_step: maximum change of log zoom per frame.
        max_scale_step: maximum change of log object height per frame.
    """

    stuff: tuple[str, ...] = DEFAULT_STUFF
    things: tuple[str, ...] = DEFAULT_THINGS
    objects: tuple[int, int] = (2, 5)
    degrade_prob: float = 0.15
    others_prob: float = 0.3
    void_prob: float = 0.3
    blob_prob: float = 0.6
    max_speed: float = 0.025
    max_pan: float = 0.012
    max_zoom_step: float = 0.01
    max_scale_step: float = 0.01

    def stuff_ids(self) -> tuple[int, ...]:
        """0-based category ids of :attr:`stuff` (ConfigError for unknown names or thing classes)."""
        return tuple(_category_id(n, want_thing=False) for n in self.stuff)

    def thing_ids(self) -> tuple[int, ...]:
        """0-based category ids of :attr:`things` (ConfigError for unknown names or stuff classes)."""
        return tuple(_category_id(n, want_thing=True) for n in self.things)

    def validate(self) -> None:
        """Raise ConfigError if the configuration cannot produce videos."""
        if not self.stuff:
            raise ConfigError("synthetic config: at least one stuff class is needed")
        self.stuff_ids()
        self.thing_ids()
        lo, hi = self.objects
        if lo < 0 or hi < lo or hi > 99:
            raise ConfigError(f"synthetic config: objects must be 0 <= min <= max <= 99, got {self.objects}")
        if lo > 0 and not self.things:
            raise ConfigError("synthetic config: objects requested but no thing classes given")
        for name in ("degrade_prob", "others_prob", "void_prob", "blob_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"synthetic config: {name} must lie in [0, 1], got {value}")


def _category_id(name: str, want_thing: bool) -> int:

    cats = {c.name: c for c in vipseg_categories()}
    if name not in cats:
        close = difflib.get_close_matches(name, list(cats), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"synthetic config: unknown category {name!r}{hint}")
    cat = cats[name]
    if cat.isthing != want_thing:
        role = "thing" if cat.isthing else "stuff"
        raise ConfigError(f"synthetic config: {name!r} is a {role} class in VIPSeg; list it under "
                          f"{'things' if cat.isthing else 'stuff'}")
    return cat.id


def _category_name(cat: int) -> str:

    return vipseg_categories()[cat].name


# ----------------------------------------------------------------------------------------------------------
# Planning a video
# ----------------------------------------------------------------------------------------------------------

def _pick(rng: np.random.Generator, pool: Sequence[int], k: int) -> list[int]:
    """k classes from pool, distinct when the pool allows it."""
    if len(pool) >= k:
        return [int(c) for c in rng.choice(np.asarray(pool), size=k, replace=False)]
    return [int(pool[i % len(pool)]) for i in rng.permutation(k)]


def _plan_object(rng: np.random.Generator, config: SynthConfig, track_id: int, cat: int, size: tuple[int, int],
                 num_frames: int, cam: tuple, video_gain: np.ndarray) -> ObjectPlan:
    h, w = size
    cam_x, log_zoom = cam
    name = _category_name(cat)
    height = BASE_HEIGHT.get(name, 0.25) * float(rng.uniform(0.6, 1.4))
    log_scale = _bounded_path(rng, float(np.log(height)), config.max_scale_step, drift=0.5)
    y = _bounded_path(rng, float(rng.uniform(0.3, 0.45) if track_id == 1 else rng.uniform(-0.05, 0.4)),
                      0.25 * config.max_speed, drift=0.5)
    x = _bounded_path(rng, 0.0, config.max_speed, drift=0.8)
    crossing = track_id > 1 and rng.random() < 0.5 and num_frames > 1
    if crossing:
        # on the left or right edge of the view at a random frame, moving in or out
        tc = int(rng.integers(num_frames))
        side = 1.0 if rng.random() < 0.5 else -1.0
        hw = view_half_width(w, h, float(np.exp(log_zoom(tc))))
        target = cam_x(tc) + side * (hw + half_width(name) * height)
        inward = rng.random() < 0.5
        speed = abs(x.speed) if abs(x.speed) > 0.3 * config.max_speed else 0.6 * config.max_speed
        speed = -side * speed if inward else side * speed
        amp = min(x.amp, (config.max_speed - abs(speed)) / x.omega)
        start = target - speed * tc - amp * np.sin(x.omega * tc + x.phase)
        x = Smooth(float(start), float(speed), float(amp), x.omega, x.phase)
    else:
        hw = view_half_width(w, h, float(np.exp(log_zoom(0))))
        x = Smooth(cam_x(0) + float(rng.uniform(-0.8, 0.8)) * hw - x.amp * np.sin(x.phase),
                    x.speed, x.amp, x.omega, x.phase)
    gain = video_gain * rng.uniform(0.8, 1.2, 3)
    tile = tinted_tile(category_tile(cat, name), gain)
    tile.setflags(write=False)
    return ObjectPlan(track_id=track_id, category=cat, name=name, x=x, y=y, log_scale=log_scale,
                      facing=1 if rng.random() < 0.5 else -1, tile=tile)


def _plan_ellipse(rng: np.random.Generator, cam_x0: float, y_range: tuple[float, float],
                  rx: tuple[float, float], ry: tuple[float, float]) -> Ellipse:
    return Ellipse(cam_x0 + float(rng.uniform(-0.6, 0.6)), float(rng.uniform(*y_range)),
                   float(rng.uniform(*rx)), float(rng.uniform(*ry)))


def _plan_caption(rng: np.random.Generator, size: tuple[int, int], num_frames: int):
    h, w = size
    x0 = int(0.03 * w)
    x1 = max(x0 + 1, x0 + int(0.25 * w))
    y0 = int(0.88 * h)
    y1 = max(y0 + 1, int(0.95 * h))
    t0 = int(rng.integers(0, max(1, num_frames // 2)))
    t1 = int(rng.integers(t0 + 1, num_frames + 1))
    return (x0, y0, x1, y1, t0, t1)


def plan_video(size: tuple[int, int], num_frames: int, seed: int, index: int = 0,
               config: SynthConfig | None = None) -> VideoPlan:
    """Draw everything random about video ``index`` of dataset seed ``seed``.

    Args:
        size: (H, W) of the frames.
        num_frames: number of frames T.
        seed: dataset seed (non-negative).
        index: video index within the dataset.
        config: content configuration (defaults to :class:`SynthConfig`).
    """
    config = config or SynthConfig()
    config.validate()
    h, w = size
    if h < 8 or w < 8 or num_frames < 1:
        raise ConfigError(f"synthetic video: size must be at least 8x8 and frames >= 1, got {h}x{w}, {num_frames}")
    if seed < 0 or index < 0:
        raise ConfigError("synthetic video: seed and index must be non-negative")
    rng = np.random.default_rng([seed, index])
    stuff = config.stuff_ids()
    bands = _pick(rng, stuff, 3)
    rest = [c for c in stuff if c not in bands]
    top_base = float(rng.uniform(-0.3, -0.1))
    top = _wave(rng, top_base, 0.08)
    bottom = _wave(rng, float(rng.uniform(top_base + 0.2, 0.25)), 0.08)
    cam_x = _bounded_path(rng, float(rng.uniform(-5, 5)), config.max_pan, drift=0.7)
    cam_y = _bounded_path(rng, 0.0, 0.2 * config.max_pan, drift=0.0)
    log_zoom = _bounded_path(rng, float(rng.uniform(-0.1, 0.2)), config.max_zoom_step, drift=0.3)
    blob = blob_cat = None
    if rest and rng.random() < config.blob_prob:
        blob_cat = int(rng.choice(rest))
        blob = _plan_ellipse(rng, cam_x(0), (-0.1, 0.4), (0.1, 0.3), (0.05, 0.15))
    others = _plan_ellipse(rng, cam_x(0), (0.0, 0.4), (0.06, 0.15), (0.04, 0.1)) \
        if rng.random() < config.others_prob else None
    caption = _plan_caption(rng, size, num_frames) if rng.random() < config.void_prob else None
    video_gain = rng.uniform(0.92, 1.08, 3)
    region_cats = (*bands, blob_cat if blob_cat is not None else IGNORE, IGNORE)
    tiles = [tinted_tile(category_tile(c, _category_name(c)), video_gain) for c in bands]
    tiles.append(tinted_tile(category_tile(blob_cat, _category_name(blob_cat)), video_gain)
                 if blob_cat is not None else tiles[0])
    tiles.append(special_tile("others"))
    region_tiles = np.stack([t.reshape(-1) for t in tiles])
    region_tiles.setflags(write=False)
    things = config.thing_ids()
    n_obj = int(rng.integers(config.objects[0], config.objects[1] + 1)) if things else 0
    obj_cats = [int(rng.choice(np.asarray(things))) for _ in range(n_obj)]
    objects = tuple(_plan_object(rng, config, k + 1, cat, size, num_frames, (cam_x, log_zoom), video_gain)
                    for k, cat in enumerate(obj_cats))
    degradations = sample_degradations(rng, num_frames, w, config.degrade_prob)
    return VideoPlan(height=h, width=w, num_frames=num_frames, seed_key=(seed, index),
                     region_categories=tuple(int(c) for c in region_cats), region_tiles=region_tiles,
                     top=top, bottom=bottom, blob=blob, others=others, caption=caption, cam_x=cam_x,
                     cam_y=cam_y, log_zoom=log_zoom, objects=objects, degradations=degradations)


# ----------------------------------------------------------------------------------------------------------
# In-memory access
# ----------------------------------------------------------------------------------------------------------

def video_name(kind: str, index: int) -> str:
    """Folder name of synthetic video ``index`` (DAVIS sequences are lower-case words, others ids)."""
    return f"synth-{index:04d}" if kind == "davis" else f"{1000 + index}_synth_{index:04d}"


class SyntheticVideo:
    """A synthetic video drawn on demand: ``video[t]`` is a :class:`SynthFrame`, frames in any order.

    Args:
        size: (H, W) of the frames.
        num_frames: number of frames T.
        seed: dataset seed.
        index: video index in the dataset (different index, different video).
        config: content configuration.
    """

    def __init__(self, size: tuple[int, int], num_frames: int, seed: int = 0, index: int = 0,
                 config: SynthConfig | None = None) -> None:
        self.plan = plan_video(size, num_frames, seed, index, config)
        self.size = (int(size[0]), int(size[1]))
        self.seed = seed
        self.index = index

    def __len__(self) -> int:
        return self.plan.num_frames

    def __getitem__(self, t: int) -> SynthFrame:
        if t < 0:
            t += len(self)
        return render_frame(self.plan, t)

    def __iter__(self) -> Iterator[SynthFrame]:
        for t in range(len(self)):
            yield render_frame(self.plan, t)

    def camera(self, t: int) -> tuple[float, float, float]:
        """(x, y, zoom) of the camera at frame t."""
        return camera_at(self.plan, t)

    def clip(self, indices: Sequence[int]):
        """Frames ``indices`` as a :class:`vidseg.structures.Clip` (past to present, target last).

        Returns:
            Clip with frames float32 [T, 3, H, W] in 0..1 and labels int64 [T, H, W] (255 = ignore).
        """
        import torch  # torch (and structures, which needs it) only here: `vidseg synth --help` stays fast

        from vidseg.structures import Clip

        frames = [self[int(t)] for t in indices]
        images = torch.from_numpy(np.stack([f.image for f in frames])).permute(0, 3, 1, 2).float() / 255.0
        labels = torch.from_numpy(np.stack([f.semantic for f in frames]).astype(np.int64))
        return Clip(frames=images, labels=labels, frame_indices=tuple(int(t) for t in indices),
                    video=video_name("vspw", self.index))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All frames at once: images uint8 [T, H, W, 3], semantic uint8 [T, H, W], instance int32 [T, H, W]."""
        frames = list(self)
        return (np.stack([f.image for f in frames]), np.stack([f.semantic for f in frames]),
                np.stack([f.instance for f in frames]))


def iter_frames(size: tuple[int, int], num_frames: int, seed: int = 0, index: int = 0,
                config: SynthConfig | None = None) -> Iterator[SynthFrame]:
    """Yield the frames of one synthetic video in order (in memory, nothing written)."""
    yield from SyntheticVideo(size, num_frames, seed, index, config)
