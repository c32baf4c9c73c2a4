"""Class appearance for the synthetic generator: one seamless RGB texture tile per category.

Every category gets a mean colour and a texture (band-pass filtered noise with a class-specific period,
orientation and contrast), so a small network can tell classes apart from colour and texture statistics.
Some classes deliberately share a mean colour and differ only in texture (grass/tree, road/building,
sky/water under a lighting change), so a degraded frame (blur, noise, darkening) is ambiguous on its own
and context from neighbouring frames helps.

Tiles depend only on the category id (never on the dataset seed), so the same class looks the same in
every synthetic dataset: a model trained on one seed transfers to another.

Tiles are stored packed as ``uint32`` (RGBA bytes, alpha unused) so that rendering a frame is a single
1-D ``np.take``; written with numpy FFTs because no maintained library generates tileable textures.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

TILE = 128  # tile side in texels; a power of two so that wrapping is a bitwise AND
TILE_MASK = TILE - 1


@dataclass(frozen=True)
class Appearance:
    """Colour and texture statistics of one category.

    Attributes:
        mean: mean RGB colour (0..255).
        period: dominant texture period in texels (pixels at zoom 1).
        orientation: direction of the texture's wave vector in degrees, or ``None`` for isotropic texture.
        contrast: standard deviation of the luminance texture in grey levels.
        grid: if True, the texture has a second component rotated by 90 degrees (windows, tiles).
        chroma: standard deviation of a slow colour variation in grey levels.
    """

    mean: tuple[int, int, int]
    period: float
    orientation: float | None
    contrast: float
    grid: bool = False
    chroma: float = 6.0


# Hand-designed appearance of the default classes (names as in the VSPW/VIPSeg category list).
# Pairs with close colours (grass/tree, road/building/mountain, sky/water after darkening) differ in texture.
DEFAULT_APPEARANCE: dict[str, Appearance] = {
    "sky": Appearance((135, 180, 235), period=48.0, orientation=None, contrast=5.0, chroma=4.0),
    "water": Appearance((70, 115, 175), period=6.0, orientation=90.0, contrast=22.0),
    "grass": Appearance((75, 145, 55), period=4.0, orientation=0.0, contrast=28.0),
    "tree": Appearance((60, 125, 50), period=12.0, orientation=None, contrast=34.0),
    "road": Appearance((108, 106, 112), period=3.0, orientation=None, contrast=14.0),
    "building": Appearance((125, 118, 116), period=16.0, orientation=0.0, contrast=38.0, grid=True),
    "mountain": Appearance((118, 98, 86), period=10.0, orientation=45.0, contrast=24.0),
    "person": Appearance((200, 150, 120), period=7.0, orientation=None, contrast=20.0),
    "car": Appearance((185, 45, 50), period=24.0, orientation=90.0, contrast=12.0),
    "dog": Appearance((150, 108, 60), period=4.0, orientation=30.0, contrast=30.0),
    "bicycle": Appearance((45, 45, 70), period=5.0, orientation=0.0, contrast=10.0),
}

# Appearance of regions labelled "others" (VSPW raw 0) and of the void caption bar: not a category.
OTHERS_APPEARANCE = Appearance((165, 60, 170), period=8.0, orientation=135.0, contrast=30.0)
VOID_APPEARANCE = Appearance((235, 235, 235), period=3.0, orientation=0.0, contrast=45.0, chroma=0.0)


def appearance_for(category_id: int, name: str) -> Appearance:
    """The appearance of a category: the hand-designed one for default classes, else drawn from its id."""
    if name in DEFAULT_APPEARANCE:
        return DEFAULT_APPEARANCE[name]
    rng = np.random.default_rng([7919, category_id])
    mean = tuple(int(v) for v in rng.integers(30, 226, size=3))
    iso = rng.random() < 0.4
    return Appearance(
        mean=mean,  # type: ignore[arg-type]
        period=float(rng.uniform(3.0, 24.0)),
        orientation=None if iso else float(rng.uniform(0.0, 180.0)),
        contrast=float(rng.uniform(8.0, 36.0)),
        grid=bool(rng.random() < 0.2),
    )


def _bandpass_noise(rng: np.random.Generator, period: float, orientation: float | None, grid: bool) -> np.ndarray:
    """Unit-variance periodic noise [TILE, TILE] whose spectrum peaks at 1/period in the given direction."""
    freqs = np.fft.fftfreq(TILE)
    fy, fx = np.meshgrid(freqs, freqs, indexing="ij")
    radius = np.hypot(fx, fy)
    f0 = 1.0 / max(period, 2.0)
    bandwidth = 0.35 * f0
    spectrum = np.exp(-0.5 * ((radius - f0) / bandwidth) ** 2)
    if orientation is not None:
        angle = np.arctan2(fy, fx)
        directions = [np.deg2rad(orientation)]
        if grid:
            directions.append(directions[0] + np.pi / 2)
        weight = np.zeros_like(spectrum)
        for theta in directions:
            # |cos| keeps both half-planes (a real signal has a symmetric spectrum)
            weight += np.abs(np.cos(angle - theta)) ** 24
        spectrum *= weight
    phase = np.exp(2j * np.pi * rng.random((TILE, TILE)))
    field = np.fft.ifft2(spectrum * phase).real
    return (field - field.mean()) / (field.std() + 1e-8)


def _smooth_noise(rng: np.random.Generator) -> np.ndarray:
    """Unit-variance periodic low-frequency noise [TILE, TILE, 3] for slow colour variation."""
    return np.stack([_bandpass_noise(rng, TILE / 3.0, None, False) for _ in range(3)], axis=-1)


def render_tile(app: Appearance, seed: int) -> np.ndarray:
    """Render a seamless RGB texture tile.

    Args:
        app: the appearance to render.
        seed: seed of the noise (fixed per category so tiles never change between datasets).

    Returns:
        uint8 array [TILE, TILE, 3].
    """
    rng = np.random.default_rng([104729, seed])
    lum = _bandpass_noise(rng, app.period, app.orientation, app.grid)
    chroma = _smooth_noise(rng)
    rgb = np.asarray(app.mean, dtype=np.float64) + app.contrast * lum[..., None] + app.chroma * chroma
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pack uint8 RGB [..., 3] into uint32 [...] (little-endian RGBA bytes, alpha 255)."""
    rgba = np.empty(rgb.shape[:-1] + (4,), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    return rgba.view(np.uint32)[..., 0]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`: uint32 [...] -> contiguous uint8 RGB [..., 3]."""
    rgba = np.ascontiguousarray(packed)[..., None].view(np.uint8)
    if rgba.ndim == 3:
        import cv2  # a SIMD channel drop, ~10x faster than a strided numpy copy

        return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
    return np.ascontiguousarray(rgba[..., :3])


@functools.lru_cache(maxsize=512)
def category_tile(category_id: int, name: str) -> np.ndarray:
    """Packed uint32 tile [TILE, TILE] of a category (cached; read-only)."""
    tile = pack_rgb(render_tile(appearance_for(category_id, name), seed=category_id))
    tile.setflags(write=False)
    return tile


@functools.lru_cache(maxsize=4)
def special_tile(kind: str) -> np.ndarray:
    """Packed tile of the non-category regions: ``"others"`` or ``"void"``."""
    app = OTHERS_APPEARANCE if kind == "others" else VOID_APPEARANCE
    tile = pack_rgb(render_tile(app, seed=100_000 + (kind == "void")))
    tile.setflags(write=False)
    return tile


def tinted_tile(tile: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """A packed tile with each RGB channel multiplied by ``gain`` [3] (per-instance colour variation)."""
    rgb = unpack_rgb(tile).astype(np.float32) * gain.astype(np.float32)
    return pack_rgb(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
