"""Synthetic video segmentation data in the exact official layouts of VSPW, VIPSeg and DAVIS 2017.

Two ways in:

* In memory, no disk: :class:`SyntheticVideo` (random access ``video[t]``) or :func:`iter_frames` yield
  :class:`~vidseg.data.synth_scene.SynthFrame` objects (RGB image, semantic labels in the library
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
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseg.data.synth_appearance import category_tile, pack_rgb, special_tile, tinted_tile, unpack_rgb
from vidseg.data.synth_scene import (
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
from vidseg.errors import ConfigError, DataError
from vidseg.fileio import encode_mask_png

KINDS = ("vspw", "vipseg", "davis")

DEFAULT_STUFF = ("sky", "building", "tree", "grass", "road", "water", "mountain")
DEFAULT_THINGS = ("person", "car", "dog", "bicycle")
# Typical object height (world units = frame heights at zoom 1) per class; others use 0.25.
BASE_HEIGHT = {"person": 0.36, "car": 0.2, "dog": 0.17, "bicycle": 0.22}

__all__ = [
    "DEFAULT_STUFF", "DEFAULT_THINGS", "KINDS", "SynthConfig", "SynthFrame", "SynthSummary", "SyntheticVideo",
    "generate", "iter_frames", "parse_size", "plan_video", "video_name",
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
    from vidseg.categories import vipseg_categories

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
    from vidseg.categories import vipseg_categories

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
        import torch

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


# ----------------------------------------------------------------------------------------------------------
# Label encodings of the official formats
# ----------------------------------------------------------------------------------------------------------

def vspw_raw_mask(frame: SynthFrame) -> np.ndarray:
    """VSPW raw mask uint8 [H, W]: class+1 for classes, 0 for others, 255 for void."""
    raw = frame.semantic + np.uint8(1)  # 255 wraps to 0 = others
    raw[frame.void] = 255
    return raw


def vipseg_instance_lut(plan: VideoPlan) -> np.ndarray:
    """Track id -> raw VIPSeg value: ``(category+1)*100 + k`` for things (k = 0.. per category by track id),
    ``category+1`` for objects of a stuff category. Index 0 is unused."""
    from vidseg.categories import vipseg_categories

    cats = vipseg_categories()
    lut = np.zeros(len(plan.objects) + 1, dtype=np.uint16)
    seen: dict[int, int] = {}
    for obj in sorted(plan.objects, key=lambda o: o.track_id):
        if cats[obj.category].isthing:
            k = seen.get(obj.category, 0)
            seen[obj.category] = k + 1
            lut[obj.track_id] = (obj.category + 1) * 100 + k
        else:
            lut[obj.track_id] = obj.category + 1
    return lut


_STUFF_RAW = np.arange(1, 257, dtype=np.uint16)  # library category -> raw VIPSeg value (stuff rule)
_STUFF_RAW[255] = 0  # ignore -> void


def vipseg_raw_mask(frame: SynthFrame, lut: np.ndarray) -> np.ndarray:
    """VIPSeg raw panomask uint16 [H, W]: stuff category+1, things category*100+instance, 0 void/others.

    Args:
        frame: a drawn frame.
        lut: track id -> raw value from :func:`vipseg_instance_lut` (at most 255 tracks).
    """
    import cv2  # 8-bit table lookups (cv2.LUT) are several times faster than numpy fancy indexing

    raw = cv2.LUT(frame.semantic, _STUFF_RAW)
    inst = frame.instance.astype(np.uint8)
    if inst.any():
        table = np.zeros(256, dtype=np.uint16)
        table[: len(lut)] = lut
        np.copyto(raw, cv2.LUT(inst, table), where=inst > 0)
    return raw


def davis_targets(first: SynthFrame, max_objects: int = 5) -> dict[int, int]:
    """Track id -> DAVIS object id (1..N): the objects visible in the first frame, by track id."""
    visible = [s for s in first.objects if s.visible_pixels > 0]
    visible = sorted(visible, key=lambda s: -s.visible_pixels)[:max_objects]
    return {s.track_id: k + 1 for k, s in enumerate(sorted(visible, key=lambda s: s.track_id))}


def davis_mask(frame: SynthFrame, targets: dict[int, int]) -> np.ndarray:
    """DAVIS annotation uint8 [H, W]: 0 background, 1..N target objects, 255 void."""
    import cv2

    table = np.zeros(256, dtype=np.uint8)
    for track, obj_id in targets.items():
        table[track] = obj_id
    out = cv2.LUT(frame.instance.astype(np.uint8), table)  # track ids are < 100 (SynthConfig.validate)
    np.copyto(out, np.uint8(255), where=frame.void)
    return out


# ----------------------------------------------------------------------------------------------------------
# Writing a dataset
# ----------------------------------------------------------------------------------------------------------

@dataclass
class SynthSummary:
    """What :func:`generate` wrote."""

    kind: str
    root: Path
    size: tuple[int, int]
    frames_per_video: int
    seed: int
    splits: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def num_videos(self) -> int:
        return sum(len(v) for v in self.splits.values())

    @property
    def num_frames(self) -> int:
        return self.num_videos * self.frames_per_video


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (e.g. ``"480x853"``) into (H, W); ConfigError otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"size must look like HxW (e.g. 480x853), got {text!r}") from None
    if h < 8 or w < 8:
        raise ConfigError(f"size must be at least 8x8, got {text!r}")
    return h, w


def split_videos(names: Sequence[str], val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """Assign videos in order to train, val and test with the given fractions (at least one train video)."""
    n = len(names)
    if not (0 <= val_fraction <= 1 and 0 <= test_fraction <= 1 and val_fraction + test_fraction <= 1):
        raise ConfigError(f"split fractions must lie in [0, 1] and sum to <= 1, got val={val_fraction}, "
                          f"test={test_fraction}")
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n_val == 0 and n - n_test >= 2:
        n_val = 1
    n_val = min(n_val, max(0, n - n_test - 1))
    n_train = n - n_val - n_test
    return {"train": list(names[:n_train]), "val": list(names[n_train:n_train + n_val]),
            "test": list(names[n_train + n_val:])}


def _save_jpeg(path: Path, image: np.ndarray) -> None:
    """Encode RGB [H, W, 3] as JPEG (quality 90, 4:2:0) with OpenCV's libjpeg-turbo (2x faster than Pillow)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # pragma: no cover - encoding a valid uint8 array does not fail
        raise DataError(path, "JPEG encoding failed")
    path.write_bytes(buf.tobytes())


def _save_png(path: Path, array: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Save a mask with the library's one PNG encoder (the dataset folder is renamed into place when complete)."""
    path.write_bytes(encode_mask_png(array, palette))


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _label_dict_text() -> str:
    from importlib import resources

    return resources.files("vidseg").joinpath("resources", "vspw_label_num_dic.json").read_text(encoding="utf-8")


class _Writer:
    """Writes one video of one layout under a staging root."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        if kind == "davis":
            from vidseg.categories import davis_palette

            self.palette = davis_palette()

    def write_video(self, name: str, video: SyntheticVideo, labelled: bool, bar) -> None:
        fmt = "{:05d}" if self.kind == "davis" else "{:08d}"
        start = 0 if self.kind == "davis" else 1
        img_dir, mask_dir = self._dirs(name)
        img_dir.mkdir(parents=True)
        if labelled:
            mask_dir.mkdir(parents=True)
        lut = vipseg_instance_lut(video.plan) if self.kind == "vipseg" else None
        targets = None
        for t, frame in enumerate(video):
            stem = fmt.format(t + start)
            _save_jpeg(img_dir / f"{stem}.jpg", frame.image)
            if labelled:
                if self.kind == "vspw":
                    _save_png(mask_dir / f"{stem}.png", vspw_raw_mask(frame))
                elif self.kind == "vipseg":
                    _save_png(mask_dir / f"{stem}.png", vipseg_raw_mask(frame, lut))
                else:
                    targets = targets if targets is not None else davis_targets(frame)
                    _save_png(mask_dir / f"{stem}.png", davis_mask(frame, targets), self.palette)
            bar.update(1)

    def _dirs(self, name: str) -> tuple[Path, Path]:
        if self.kind == "vspw":
            return self.root / "data" / name / "origin", self.root / "data" / name / "mask"
        if self.kind == "vipseg":
            return self.root / "imgs" / name, self.root / "panomasks" / name
        return self.root / "JPEGImages" / "480p" / name, self.root / "Annotations" / "480p" / name

    def write_splits(self, splits: dict[str, list[str]]) -> None:
        if self.kind == "davis":
            for year in ("2016", "2017"):
                folder = self.root / "ImageSets" / year
                folder.mkdir(parents=True, exist_ok=True)
                for split in ("train", "val"):
                    _write_lines(folder / f"{split}.txt", splits[split])
            return
        for split in ("train", "val", "test"):
            _write_lines(self.root / f"{split}.txt", splits[split])
        (self.root / "label_num_dic_final.json").write_text(_label_dict_text(), encoding="utf-8")


def _marker_files(kind: str) -> tuple[str, ...]:
    return ("ImageSets",) if kind == "davis" else ("train.txt", "label_num_dic_final.json")


def _publish(staging: Path, out: Path, kind: str, overwrite: bool) -> None:
    """Move the finished staging folder onto ``out`` (replacing an earlier dataset only if allowed)."""
    if out.exists() and not out.is_dir():
        raise DataError(out, "output path exists and is not a folder")
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(staging, out)
        return
    if not overwrite:
        raise DataError(out, "output folder is not empty (pass --overwrite to replace an earlier dataset)")
    if not all((out / m).exists() for m in _marker_files(kind)):
        raise DataError(out, f"refusing to overwrite: the folder does not look like a {kind} dataset")
    trash = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, trash)
    os.replace(staging, out)
    shutil.rmtree(trash, ignore_errors=True)


def _check_out(out: Path, kind: str, overwrite: bool) -> None:
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DataError(out, "output folder is not empty (pass --overwrite to replace an earlier dataset)")
        if not all((out / m).exists() for m in _marker_files(kind)):
            raise DataError(out, f"refusing to overwrite: the folder does not look like a {kind} dataset")
    elif out.exists() and not out.is_dir():
        raise DataError(out, "output path exists and is not a folder")


def generate(kind: str, out: str | os.PathLike, videos: int = 4, frames: int = 30,
             size: tuple[int, int] = (480, 853), seed: int = 0, config: SynthConfig | None = None, *,
             val_fraction: float = 0.4, test_fraction: float = 0.0, overwrite: bool = False,
             progress: bool = True) -> SynthSummary:
    """Write a synthetic dataset in the official layout of ``kind``.

    The dataset is built in a hidden staging folder beside ``out`` and renamed onto ``out`` when complete,
    so an interrupted run never leaves a folder that looks like a finished dataset.

    Args:
        kind: ``"vspw"``, ``"vipseg"`` or ``"davis"``.
        out: dataset root to create (must be absent or empty unless ``overwrite``).
        videos: number of videos N.
        frames: frames per video T.
        size: (H, W) of every frame.
        seed: dataset seed; the same arguments give byte-identical files.
        config: content configuration.
        val_fraction, test_fraction: share of videos in the val and test splits (in that order after
            train). Test videos have no masks, as in the official releases. DAVIS has no test split here.
        overwrite: replace an existing dataset of the same layout at ``out``.
        progress: show a progress bar.

    Returns:
        a :class:`SynthSummary` with the split lists.
    """
    from tqdm import tqdm

    if kind not in KINDS:
        raise ConfigError(f"unknown synthetic dataset kind {kind!r}; choose from {', '.join(KINDS)}")
    if videos < 1 or frames < 1:
        raise ConfigError(f"videos and frames must be >= 1, got {videos} and {frames}")
    if kind == "davis" and test_fraction > 0:
        raise ConfigError("the DAVIS 2017 trainval layout has no test split; use test_fraction=0")
    config = config or SynthConfig()
    config.validate()
    out = Path(out)
    _check_out(out, kind, overwrite)
    names = [video_name(kind, i) for i in range(videos)]
    splits = split_videos(names, val_fraction, test_fraction)
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.synth-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        writer = _Writer(kind, staging)
        with tqdm(total=videos * frames, desc=f"synth {kind}", unit="frame", disable=not progress) as bar:
            for i, name in enumerate(names):
                video = SyntheticVideo(size, frames, seed, i, config)
                writer.write_video(name, video, labelled=name not in splits["test"], bar=bar)
        writer.write_splits(splits)
        _publish(staging, out, kind, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SynthSummary(kind=kind, root=out, size=(int(size[0]), int(size[1])), frames_per_video=frames,
                        seed=seed, splits=splits, seconds=time.perf_counter() - start)


# re-exported helpers used by tests and tools
__all__ += ["davis_mask", "davis_targets", "pack_rgb", "split_videos", "unpack_rgb", "vipseg_instance_lut",
            "vipseg_raw_mask", "vspw_raw_mask"]
