"""Scene model of the synthetic generator: what a video contains and how one frame is drawn.

A video is a 2-D world seen through a camera that pans and zooms. The world has three stuff bands (top,
middle, bottom) separated by smooth wavy boundaries, an optional stuff blob, an optional "others" blob
(unlabelled, VSPW raw 0) and thing objects that move along smooth paths (linear drift plus a sinusoid),
change scale, enter and leave the view and occlude each other (painter's order: the object whose base
is lower in the world is nearer). An optional screen-space caption bar is void. Some frames are degraded
(motion blur, noise, lighting change) after drawing; labels always describe what was drawn.

World units: one unit is the frame height at zoom 1; y grows downwards. Pixel (i, j) of a frame of
height H and width W sees world point ``x = cx + (j + 0.5 - W/2) / (z H)``, ``y = cy + (i + 0.5 - H/2) / (z H)``.

Everything random is drawn once per video in :func:`plan_video` from the video's own seed; drawing frame
``t`` (:func:`render_frame`) is a pure function of the plan and ``t`` (noise frames use a per-frame seed),
so frames can be drawn in any order and the same seed gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vidseg.data.synth.appearance import TILE_MASK, special_tile, unpack_rgb

IGNORE = 255
TEXELS_PER_OBJECT = 64  # texture texels across one object height (texture sticks to the object)

# Region codes of the stuff label map before objects are drawn.
R_TOP, R_MID, R_BOTTOM, R_BLOB, R_OTHERS = 0, 1, 2, 3, 4


# ----------------------------------------------------------------------------------------------------------
# Shapes of things, in object coordinates: u across (object height = 1), v in [-1, 0] (0 = base)
# ----------------------------------------------------------------------------------------------------------

def _ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def _rect(u: np.ndarray, v: np.ndarray, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    return (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)


def _ring(u: np.ndarray, v: np.ndarray, cu: float, cv: float, r_out: float, r_in: float) -> np.ndarray:
    d2 = (u - cu) ** 2 + (v - cv) ** 2
    return (d2 <= r_out**2) & (d2 >= r_in**2)


def _person(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _ellipse(u, v, 0.0, -0.42, 0.17, 0.42) | _ellipse(u, v, 0.0, -0.88, 0.11, 0.11)


def _car(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (_rect(u, v, -1.1, 1.1, -0.55, -0.14) | _rect(u, v, -0.55, 0.5, -0.95, -0.5)
            | _ellipse(u, v, -0.7, -0.16, 0.16, 0.16) | _ellipse(u, v, 0.7, -0.16, 0.16, 0.16))


def _dog(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (_ellipse(u, v, 0.0, -0.55, 0.6, 0.22) | _ellipse(u, v, 0.68, -0.8, 0.2, 0.18)
            | _rect(u, v, -0.5, -0.36, -0.45, 0.0) | _rect(u, v, 0.34, 0.48, -0.45, 0.0))


def _bicycle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (_ring(u, v, -0.55, -0.34, 0.34, 0.26) | _ring(u, v, 0.55, -0.34, 0.34, 0.26)
            | _rect(u, v, -0.55, 0.55, -0.62, -0.52) | _rect(u, v, -0.08, 0.02, -0.9, -0.34))


def _blob(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _ellipse(u, v, 0.0, -0.5, 0.45, 0.5)


# name -> (shape function, half width in object heights)
SHAPES: dict[str, tuple] = {
    "person": (_person, 0.2),
    "car": (_car, 1.12),
    "dog": (_dog, 0.9),
    "bicycle": (_bicycle, 0.92),
}
DEFAULT_SHAPE = (_blob, 0.46)


# ----------------------------------------------------------------------------------------------------------
# Plans (everything random about a video)
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Wave:
    """A smooth curve ``base + sum_k amp_k sin(freq_k x + phase_k)`` (vectorised over x)."""

    base: float
    amps: tuple[float, ...]
    freqs: tuple[float, ...]
    phases: tuple[float, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = np.full(x.shape, self.base, dtype=np.float32)
        for a, f, p in zip(self.amps, self.freqs, self.phases, strict=True):
            y += np.float32(a) * np.sin(np.float32(f) * x + np.float32(p))
        return y


@dataclass(frozen=True)
class Smooth:
    """A smooth scalar path ``start + speed t + amp sin(omega t + phase)``; ``|d/dt| <= |speed| + amp omega``."""

    start: float
    speed: float = 0.0
    amp: float = 0.0
    omega: float = 0.0
    phase: float = 0.0

    def __call__(self, t: float) -> float:
        return self.start + self.speed * t + self.amp * math.sin(self.omega * t + self.phase)

    @property
    def max_step(self) -> float:
        """Upper bound of the change between consecutive frames."""
        return abs(self.speed) + abs(self.amp * self.omega)


@dataclass(frozen=True)
class Ellipse:
    """An axis-aligned ellipse region in world coordinates."""

    cx: float
    cy: float
    rx: float
    ry: float


@dataclass(frozen=True)
class ObjectPlan:
    """A thing object: identity, class, look and motion.

    Attributes:
        track_id: identity, 1.. within the video, stable across frames.
        category: 0-based category id.
        name: category name (selects the shape).
        x, y: world position of the base centre over time.
        log_scale: natural log of the height in world units over time.
        facing: +1 or -1 (mirror the shape horizontally).
        tile: packed texture tile of this instance (class texture with an instance tint).
    """

    track_id: int
    category: int
    name: str
    x: Smooth
    y: Smooth
    log_scale: Smooth
    facing: int
    tile: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class Degradation:
    """How one frame is degraded after drawing."""

    blur: tuple[int, float] | None = None  # (kernel length in pixels, 0 = horizontal or 90 = vertical)
    noise: float = 0.0  # standard deviation in grey levels
    gain: tuple[float, float, float] | None = None  # per-channel lighting gain

    @property
    def kinds(self) -> tuple[str, ...]:
        out = []
        if self.blur is not None:
            out.append("blur")
        if self.noise > 0:
            out.append("noise")
        if self.gain is not None:
            out.append("light")
        return tuple(out)


@dataclass(frozen=True)
class VideoPlan:
    """Everything random about one synthetic video (drawn by :func:`plan_video`)."""

    height: int
    width: int
    num_frames: int
    seed_key: tuple[int, ...]
    region_categories: tuple[int, ...]  # category per stuff region code (IGNORE for others)
    region_tiles: np.ndarray = field(repr=False, compare=False)  # packed tiles [R, TILE*TILE]
    top: Wave  # boundary between the top and middle bands, y(x)
    bottom: Wave  # boundary between the middle and bottom bands
    blob: Ellipse | None = None
    others: Ellipse | None = None
    caption: tuple[int, int, int, int, int, int] | None = None  # (x0, y0, x1, y1, t0, t1) screen, frames
    cam_x: Smooth = Smooth(0.0)
    cam_y: Smooth = Smooth(0.0)
    log_zoom: Smooth = Smooth(0.0)
    objects: tuple[ObjectPlan, ...] = ()
    degradations: dict[int, Degradation] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ObjectState:
    """Where an object is in one frame (pixels, unclipped), for tests and tools.

    Attributes:
        track_id, category: identity and 0-based class.
        base_x, base_y: pixel position of the base centre.
        height: object height in pixels.
        depth_rank: 0 = farthest; objects are drawn in increasing rank (nearer ones occlude).
        visible_pixels: pixels of the object visible in the frame after occlusion.
    """

    track_id: int
    category: int
    base_x: float
    base_y: float
    height: float
    facing: int
    depth_rank: int
    visible_pixels: int


@dataclass
class SynthFrame:
    """One drawn frame and its exact ground truth.

    Attributes:
        image: uint8 RGB [H, W, 3] (after degradation).
        semantic: uint8 [H, W], 0-based category ids, 255 = ignore (others and void).
        instance: int32 [H, W], track id of the thing drawn at each pixel, 0 elsewhere.
        void: bool [H, W], True where the pixel is void (VSPW raw 255) rather than "others" (raw 0).
        objects: per object, its state in this frame (all objects, visible or not).
        degradation: the kinds of degradation applied (empty for a clean frame).
        camera: (x, y, zoom) of the camera.
        index: frame index in the video (0-based).
    """

    image: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    void: np.ndarray
    objects: list[ObjectState]
    degradation: tuple[str, ...]
    camera: tuple[float, float, float]
    index: int


# ----------------------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------------------

def shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of the shape of class ``name`` at object coordinates (broadcasting u [1, w], v [h, 1])."""
    fn = SHAPES.get(name, DEFAULT_SHAPE)[0]
    return fn(u, v)


def half_width(name: str) -> float:
    """Half the width of the shape of class ``name`` in object heights."""
    return SHAPES.get(name, DEFAULT_SHAPE)[1]


def camera_at(plan: VideoPlan, t: int) -> tuple[float, float, float]:
    """(x, y, zoom) of the camera at frame t."""
    return plan.cam_x(t), plan.cam_y(t), math.exp(plan.log_zoom(t))


def pixel_to_world(plan: VideoPlan, t: int) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates of the pixel centres: (x [W], y [H]) as float32."""
    cx, cy, zoom = camera_at(plan, t)
    h, w = plan.height, plan.width
    scale = 1.0 / (zoom * h)
    wx = cx + (np.arange(w, dtype=np.float64) + 0.5 - w / 2) * scale
    wy = cy + (np.arange(h, dtype=np.float64) + 0.5 - h / 2) * scale
    return wx.astype(np.float32), wy.astype(np.float32)


def object_geometry(plan: VideoPlan, obj: ObjectPlan, t: int) -> tuple[float, float, float]:
    """Pixel base position (x, y) and pixel height of ``obj`` at frame t."""
    cx, cy, zoom = camera_at(plan, t)
    h, w = plan.height, plan.width
    px = (obj.x(t) - cx) * zoom * h + w / 2
    py = (obj.y(t) - cy) * zoom * h + h / 2
    return px, py, math.exp(obj.log_scale(t)) * zoom * h


def object_box(plan: VideoPlan, obj: ObjectPlan, t: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), clipped to the frame, that contains the object's whole shape."""
    px, py, ph = object_geometry(plan, obj, t)
    hw = half_width(obj.name) * ph
    x0 = max(0, math.floor(px - hw) - 1)
    x1 = min(plan.width, math.ceil(px + hw) + 1)
    y0 = max(0, math.floor(py - ph) - 1)
    y1 = min(plan.height, math.ceil(py) + 1)
    return x0, y0, x1, y1


def object_local_coords(plan: VideoPlan, obj: ObjectPlan, t: int,
                        box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Object coordinates (u [1, w], v [h, 1]) of the pixel centres of ``box`` (u mirrored by facing)."""
    px, py, ph = object_geometry(plan, obj, t)
    x0, y0, x1, y1 = box
    u = ((np.arange(x0, x1, dtype=np.float32) + 0.5 - px) / ph * obj.facing)[None, :]
    v = ((np.arange(y0, y1, dtype=np.float32) + 0.5 - py) / ph)[:, None]
    return u, v


def amodal_mask(plan: VideoPlan, obj: ObjectPlan, t: int) -> np.ndarray:
    """Full-frame bool mask [H, W] of the object's shape at frame t, ignoring occlusion."""
    out = np.zeros((plan.height, plan.width), dtype=bool)
    box = object_box(plan, obj, t)
    x0, y0, x1, y1 = box
    if x1 > x0 and y1 > y0:
        u, v = object_local_coords(plan, obj, t, box)
        out[y0:y1, x0:x1] = shape_mask(obj.name, u, v)
    return out


def depth_order(plan: VideoPlan, t: int) -> list[ObjectPlan]:
    """Objects sorted far to near at frame t (base higher in the world = farther; ties by track id)."""
    return sorted(plan.objects, key=lambda o: (o.y(t), o.track_id))


def _draw_stuff(plan: VideoPlan, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Region code map uint8 [H, W] of the stuff layer."""
    region = (wy[:, None] >= plan.top(wx)[None, :]).view(np.uint8)
    region = region + (wy[:, None] >= plan.bottom(wx)[None, :]).view(np.uint8)
    for code, ell in ((R_BLOB, plan.blob), (R_OTHERS, plan.others)):
        if ell is None:
            continue
        cols = np.flatnonzero(np.abs(wx - ell.cx) < ell.rx)
        rows = np.flatnonzero(np.abs(wy - ell.cy) < ell.ry)
        if cols.size == 0 or rows.size == 0:
            continue
        ex = ((wx[cols] - ell.cx) / ell.rx) ** 2
        ey = ((wy[rows] - ell.cy) / ell.ry) ** 2
        inside = (ey[:, None] + ex[None, :]) < 1.0
        view = region[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        np.putmask(view, inside, code)
    return region


def _texel(coord: np.ndarray, texels_per_unit: float) -> np.ndarray:
    """Wrapped integer texel index of world coordinates (int64)."""
    return np.floor(coord * np.float32(texels_per_unit)).astype(np.intp) & TILE_MASK  # intp: np.take needs no copy


def _draw_objects(plan: VideoPlan, t: int, packed: np.ndarray, semantic: np.ndarray,
                  instance: np.ndarray) -> list[ObjectPlan]:
    """Paint objects far to near (nearer ones overwrite); returns them in drawing order."""
    order = depth_order(plan, t)
    for obj in order:
        box = object_box(plan, obj, t)
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            continue
        u, v = object_local_coords(plan, obj, t, box)
        mask = shape_mask(obj.name, u, v)
        tex_idx = (_texel(v, TEXELS_PER_OBJECT) << 7) + _texel(u, TEXELS_PER_OBJECT)
        np.copyto(packed[y0:y1, x0:x1], np.take(obj.tile, tex_idx), where=mask)
        np.copyto(semantic[y0:y1, x0:x1], np.uint8(obj.category), where=mask)
        np.copyto(instance[y0:y1, x0:x1], np.int32(obj.track_id), where=mask)
    return order


def _object_states(plan: VideoPlan, t: int, order: list[ObjectPlan], instance: np.ndarray) -> list[ObjectState]:
    """State of every object (by track id) with its visible pixel count in the final instance map."""
    out = []
    for rank, obj in enumerate(order):
        px, py, ph = object_geometry(plan, obj, t)
        x0, y0, x1, y1 = object_box(plan, obj, t)
        visible = int(np.count_nonzero(instance[y0:y1, x0:x1] == obj.track_id)) if x1 > x0 and y1 > y0 else 0
        out.append(ObjectState(obj.track_id, obj.category, float(px), float(py), float(ph), obj.facing, rank,
                               visible))
    return sorted(out, key=lambda s: s.track_id)


def _draw_caption(plan: VideoPlan, t: int, packed: np.ndarray, semantic: np.ndarray,
                  instance: np.ndarray, void: np.ndarray) -> None:
    if plan.caption is None:
        return
    x0, y0, x1, y1, t0, t1 = plan.caption
    if not t0 <= t < t1:
        return
    tile = special_tile("void")
    idx = ((np.arange(y0, y1) & TILE_MASK) << 7)[:, None] + (np.arange(x0, x1) & TILE_MASK)[None, :]
    packed[y0:y1, x0:x1] = np.take(tile, idx)
    semantic[y0:y1, x0:x1] = IGNORE
    instance[y0:y1, x0:x1] = 0
    void[y0:y1, x0:x1] = True


def degrade(image: np.ndarray, deg: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Apply motion blur, then lighting, then noise to a uint8 RGB image [H, W, 3]."""
    import cv2

    out = image
    if deg.blur is not None:
        # a box filter along the motion direction (horizontal or vertical camera shake)
        length, angle = deg.blur
        ksize = (length, 1) if abs(math.cos(math.radians(angle))) >= 0.5 else (1, length)
        out = cv2.blur(out, ksize, borderType=cv2.BORDER_REFLECT_101)
    if deg.gain is not None:
        out = cv2.multiply(out, (*deg.gain, 0.0))  # per-channel gain, rounded and saturated
    if deg.noise > 0:
        out = cv2.add(out, _noise(rng, out.shape, deg.noise), dtype=cv2.CV_8U)
    return out


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean integer noise int16 with standard deviation ``sigma``.

    Triangular noise (sum of two uniform bytes, std 255/sqrt(6)) drawn from the raw 64-bit generator
    output: close to Gaussian and about ten times cheaper than ``standard_normal`` for a whole frame.
    """
    import cv2

    n = int(np.prod(shape))
    raw = rng.bit_generator.random_raw((2 * n + 7) // 8).view(np.uint8)[: 2 * n].reshape(2, *shape)
    k = sigma * math.sqrt(6.0) / 255.0
    return cv2.addWeighted(raw[0], k, raw[1], k, -255.0 * k, dtype=cv2.CV_16S)


def _region_lut(plan: VideoPlan) -> np.ndarray:
    """Region code -> category as a 256-entry uint8 table (a uint8 index into it needs no conversion)."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    lut[: len(plan.region_categories)] = plan.region_categories
    return lut


def render_frame(plan: VideoPlan, t: int) -> SynthFrame:
    """Draw frame ``t`` of a planned video.

    Returns:
        the frame with image [H, W, 3], semantic [H, W], instance [H, W] and void [H, W].
    """
    import cv2

    if not 0 <= t < plan.num_frames:
        raise IndexError(f"frame {t} outside 0..{plan.num_frames - 1}")
    wx, wy = pixel_to_world(plan, t)
    region = _draw_stuff(plan, wx, wy)
    texel_scale = plan.height  # stuff texels: one per pixel at zoom 1
    tex_idx = region.astype(np.intp) << 14
    tex_idx += (_texel(wy, texel_scale) << 7)[:, None]
    tex_idx += _texel(wx, texel_scale)[None, :]
    packed = np.take(plan.region_tiles, tex_idx)
    semantic = cv2.LUT(region, _region_lut(plan))  # a SIMD table lookup, ~7x faster than numpy indexing
    instance = np.zeros(region.shape, dtype=np.int32)
    void = np.zeros(region.shape, dtype=bool)
    order = _draw_objects(plan, t, packed, semantic, instance)
    _draw_caption(plan, t, packed, semantic, instance, void)
    states = _object_states(plan, t, order, instance)
    image = unpack_rgb(packed)
    deg = plan.degradations.get(t)
    if deg is not None:
        rng = np.random.default_rng([*plan.seed_key, 1_000_003, t])
        image = degrade(image, deg, rng)
    return SynthFrame(image=image, semantic=semantic, instance=instance, void=void, objects=states,
                      degradation=deg.kinds if deg is not None else (), camera=camera_at(plan, t), index=t)


# ----------------------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------------------

def _wave(rng: np.random.Generator, base: float, amp: float) -> Wave:
    k = 3
    return Wave(base=base, amps=tuple(float(a) for a in rng.uniform(0.2, 1.0, k) * amp / k * 2),
                freqs=tuple(float(f) for f in rng.uniform(2.0, 14.0, k)),
                phases=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, k)))


def _bounded_path(rng: np.random.Generator, start: float, max_step: float, drift: float) -> Smooth:
    """A smooth path whose per-frame step never exceeds ``max_step`` (drift share of it is linear)."""
    speed = float(rng.uniform(-1, 1)) * drift * max_step
    omega = float(rng.uniform(0.05, 0.3))
    amp = float(rng.uniform(0, 1)) * (max_step - abs(speed)) / omega
    return Smooth(start, speed, amp, omega, float(rng.uniform(0, 2 * np.pi)))


def view_half_width(plan_w: int, plan_h: int, zoom: float) -> float:
    """Half the view width in world units at a zoom."""
    return plan_w / plan_h / 2 / zoom


def sample_degradations(rng: np.random.Generator, num_frames: int, width: int, prob: float) -> dict[int, Degradation]:
    """Per frame (never frame 0) an optional degradation: blur, noise, lighting or a combination."""
    out: dict[int, Degradation] = {}
    for t in range(1, num_frames):
        if rng.random() >= prob:
            continue
        kinds = {("blur", "noise", "light")[int(rng.integers(3))]}
        if rng.random() < 0.25:
            kinds.add(("blur", "noise", "light")[int(rng.integers(3))])
        blur = None
        if "blur" in kinds:
            length = max(3, int(round(rng.uniform(0.02, 0.045) * width)) | 1)
            blur = (length, float(rng.choice([0.0, 0.0, 90.0])))
        noise = float(rng.uniform(20, 45)) if "noise" in kinds else 0.0
        gain = None
        if "light" in kinds:
            level = rng.uniform(0.3, 0.5) if rng.random() < 0.7 else rng.uniform(1.5, 1.9)
            gain = tuple(float(level * c) for c in rng.uniform(0.9, 1.1, 3))
        out[t] = Degradation(blur=blur, noise=noise, gain=gain)  # type: ignore[arg-type]
    return out
