"""Category lists and palettes of the benchmarks, read from the files shipped in ``vidseg/resources``.

VSPW classes after the official shift (raw 1..124 -> 0..123) are the VIPSeg category ids, so one list of
124 categories (name, thing/stuff flag, colour) serves both benchmarks.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

NUM_VSPW_CLASSES = 124
IGNORE_LABEL = 255


@dataclass(frozen=True)
class Category:
    """One category: ``id`` is 0-based (VSPW shifted id == VIPSeg JSON id)."""

    id: int
    name: str
    isthing: bool
    color: tuple[int, int, int]


def _resource_text(name: str) -> str:
    return resources.files("vidseg").joinpath("resources", name).read_text(encoding="utf-8")


@functools.cache
def vipseg_categories() -> tuple[Category, ...]:
    """The 124 VIPSeg categories (58 things, 66 stuff) in id order."""
    raw = json.loads(_resource_text("vipseg_categories.json"))
    cats = tuple(Category(int(c["id"]), str(c["name"]), bool(c["isthing"]), tuple(c["color"])) for c in raw)
    return tuple(sorted(cats, key=lambda c: c.id))


@functools.cache
def vspw_class_names() -> tuple[str, ...]:
    """The 124 VSPW class names in shifted order (index k = raw id k+1; 'others' excluded)."""
    raw = json.loads(_resource_text("vspw_label_num_dic.json"))
    by_raw = {int(v): k for k, v in raw.items()}
    return tuple(by_raw[i] for i in range(1, NUM_VSPW_CLASSES + 1))


def thing_ids() -> tuple[int, ...]:
    """Category ids (0-based) of the VIPSeg thing classes."""
    return tuple(c.id for c in vipseg_categories() if c.isthing)


def semantic_palette() -> np.ndarray:
    """Colours of the 124 classes as a uint8 array [124, 3] (the VIPSeg category colours)."""
    return np.array([c.color for c in vipseg_categories()], dtype=np.uint8)


def davis_palette() -> np.ndarray:
    """The DAVIS indexed-PNG palette as a uint8 array [256, 3]."""
    rows = [line.split() for line in _resource_text("davis_palette.txt").splitlines() if line.strip()]
    pal = np.zeros((256, 3), dtype=np.uint8)
    arr = np.array(rows, dtype=np.uint8)[:256]
    pal[: len(arr)] = arr
    return pal


@functools.cache
def davis_db_info() -> dict:
    """DAVIS sequence metadata (name, set, year, num_frames, eval_t) from ``davis_db_info.yaml``."""
    import yaml

    return yaml.safe_load(_resource_text("davis_db_info.yaml"))
