"""Hand-written writers of tiny datasets in the official layouts, for reader / converter / check tests.

Deliberately independent of vidseg's own writers (only PIL and numpy), so a reader bug cannot be hidden
by the same bug in a writer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from vidseg.categories import davis_palette, vipseg_categories

THINGS = [c.id for c in vipseg_categories() if c.isthing]
STUFF = [c.id for c in vipseg_categories() if not c.isthing]


def frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random RGB frame (JPEG-friendly), uint8 [H, W, 3]."""
    base = rng.integers(0, 256, size=(1, 1, 3))
    ramp = np.linspace(0, 60, w, dtype=np.float32)[None, :, None]
    return np.clip(base + ramp, 0, 255).astype(np.uint8).repeat(h, 0)


def save_jpg(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=90)


def save_png(path: Path, arr: np.ndarray, mode: str | None = None, palette: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr, mode=mode)
    if palette is not None:
        img.putpalette(palette.reshape(-1).tolist())
    img.save(path)


def write_splits(root: Path, splits: dict[str, list[str]]) -> None:
    for split, names in splits.items():
        (root / f"{split}.txt").write_text("".join(n + "\n" for n in names))


# ----------------------------------------------------------------------------------------------------------
# VSPW
# ----------------------------------------------------------------------------------------------------------

def vspw_raw_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Raw VSPW mask: blocks of classes 1..124, some 0 (others) and 255 (void)."""
    m = rng.integers(1, 125, size=(h // 4 + 1, w // 4 + 1)).astype(np.uint8)
    m = m.repeat(4, 0).repeat(4, 1)[:h, :w].copy()
    m[0, 0], m[0, 1] = 0, 255
    return m


def make_vspw(root: Path, videos: int = 2, frames: int = 3, h: int = 24, w: int = 40, seed: int = 0,
              test_videos: int = 1) -> dict[str, list[np.ndarray]]:
    """VSPW root: ``data/<video>/{origin,mask}``, split files; the last ``test_videos`` have no masks.

    Returns:
        raw masks per labelled video.
    """
    rng = np.random.default_rng(seed)
    names = [f"{1000 + i}_vid{i}" for i in range(videos + test_videos)]
    out: dict[str, list[np.ndarray]] = {}
    for i, name in enumerate(names):
        masks = []
        for t in range(frames):
            save_jpg(root / "data" / name / "origin" / f"{t + 1:08d}.jpg", frame(rng, h, w))
            if i < videos:
                m = vspw_raw_mask(rng, h, w)
                save_png(root / "data" / name / "mask" / f"{t + 1:08d}.png", m, mode="L")
                masks.append(m)
        if i < videos:
            out[name] = masks
    labelled = names[:videos]
    write_splits(root, {"train": labelled[:-1] or labelled, "val": labelled[-1:], "test": names[videos:]})
    return out


# ----------------------------------------------------------------------------------------------------------
# VIPSeg raw
# ----------------------------------------------------------------------------------------------------------

def vipseg_raw_mask(rng: np.random.Generator, h: int, w: int, things: list[tuple[int, int]]) -> np.ndarray:
    """Raw panomask: two stuff bands, a void stripe and one box per (thing category, instance)."""
    s1, s2 = STUFF[3], STUFF[10]
    m = np.full((h, w), s1 + 1, np.uint16)
    m[h // 2:] = s2 + 1
    m[h - 2:, w - 4:] = 6 + 1  # Playground_slide, the stuff whose colour equals car's
    m[:, :2] = 0
    for k, (cat, inst) in enumerate(things):
        y, x = 2 + 3 * k + int(rng.integers(0, 2)), 4 + 5 * k + int(rng.integers(0, 2))
        m[y:y + 3, x:x + 4] = (cat + 1) * 100 + inst
    return m


def make_vipseg_raw(root: Path, videos: int = 2, frames: int = 3, h: int = 24, w: int = 40, seed: int = 0,
                    test_videos: int = 1) -> dict[str, list[np.ndarray]]:
    """Raw VIPSeg root: ``imgs/``, 16-bit ``panomasks/``, split files. Returns raw masks per labelled video."""
    rng = np.random.default_rng(seed)
    names = [f"{i}_clip{i}" for i in range(videos + test_videos)]
    # person (60) x2, car (48: its colour equals the stuff Playground_slide's) and the last thing category
    objects = [(60, 0), (60, 1), (48, 0), (THINGS[-1], 3)]
    out: dict[str, list[np.ndarray]] = {}
    for i, name in enumerate(names):
        masks = []
        for t in range(frames):
            save_jpg(root / "imgs" / name / f"{t + 1:08d}.jpg", frame(rng, h, w))
            if i < videos:
                m = vipseg_raw_mask(rng, h, w, objects[: 2 + (t + i) % 3])
                save_png(root / "panomasks" / name / f"{t + 1:08d}.png", m)
                masks.append(m)
        if i < videos:
            out[name] = masks
    labelled = names[:videos]
    write_splits(root, {"train": labelled[:-1] or labelled, "val": labelled[-1:], "test": names[videos:]})
    return out


# ----------------------------------------------------------------------------------------------------------
# VIPSeg 720P COCO style (written by hand, with ids chosen here)
# ----------------------------------------------------------------------------------------------------------

def make_vipseg_720(root: Path, videos: int = 2, frames: int = 3, h: int = 24, w: int = 40, seed: int = 0,
                    ) -> dict:
    """720P layout: ``images/``, RGB-id ``panomasksRGB/``, ``panoptic_gt_VIPSeg.json`` and split JSONs.

    Each video has a stuff segment (category 0, wall), a second stuff (category 14) and two person
    instances whose ids are fixed per video. Returns the JSON dict written.
    """
    rng = np.random.default_rng(seed)
    cats = [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
            for c in vipseg_categories()]
    wall = 120 + 256 * 120 + 65536 * 120
    floor_cat = 14
    fc = vipseg_categories()[floor_cat].color
    floor = fc[0] + 256 * fc[1] + 65536 * fc[2]
    data: dict = {"videos": [], "annotations": [], "categories": cats}
    for v in range(videos):
        name = f"{v}_v720"
        persons = [1000 + 17 * v + 1, 5000 + 31 * v + 2]
        images, anns = [], []
        for t in range(frames):
            stem = f"{t + 1:08d}"
            save_jpg(root / "images" / name / f"{stem}.jpg", frame(rng, h, w))
            ids = np.full((h, w), wall, np.int64)
            ids[h // 2:] = floor
            ids[:, :2] = 0
            ids[2:6, 4 + t:8 + t] = persons[0]
            if t != 1:  # the second person leaves in frame 1
                ids[10:14, 20:25] = persons[1]
            rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
            save_png(root / "panomasksRGB" / name / f"{stem}.png", rgb)
            segs = []
            for sid in np.unique(ids):
                if sid == 0:
                    continue
                cat = 0 if sid == wall else floor_cat if sid == floor else 60
                segs.append({"id": int(sid), "category_id": cat, "iscrowd": 0, "area": int((ids == sid).sum())})
            images.append({"id": stem, "width": w, "height": h, "file_name": f"{stem}.png"})
            anns.append({"image_id": stem, "file_name": f"{stem}.png", "segments_info": segs})
        data["videos"].append({"video_id": name, "images": images})
        data["annotations"].append({"video_id": name, "annotations": anns})
    root.mkdir(parents=True, exist_ok=True)
    (root / "panoptic_gt_VIPSeg.json").write_text(json.dumps(data))
    names = [v["video_id"] for v in data["videos"]]
    for split, keep in {"train": names[:-1], "val": names[-1:]}.items():
        sub = {"videos": [v for v in data["videos"] if v["video_id"] in keep],
               "annotations": [a for a in data["annotations"] if a["video_id"] in keep], "categories": cats}
        (root / f"panoptic_gt_VIPSeg_{split}.json").write_text(json.dumps(sub))
    return data


# ----------------------------------------------------------------------------------------------------------
# DAVIS
# ----------------------------------------------------------------------------------------------------------

def make_davis(root: Path, videos: int = 2, frames: int = 3, h: int = 24, w: int = 40, seed: int = 0,
               ) -> dict[str, list[np.ndarray]]:
    """DAVIS 2017 root: palette masks with objects 1..(1+v), ImageSets/2017 and 2016 split files."""
    rng = np.random.default_rng(seed)
    names = [f"seq-{chr(97 + i)}" for i in range(videos)]
    out: dict[str, list[np.ndarray]] = {}
    for i, name in enumerate(names):
        masks = []
        for t in range(frames):
            save_jpg(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", frame(rng, h, w))
            m = np.zeros((h, w), np.uint8)
            for k in range(1, 2 + i + 1):
                m[2 * k:2 * k + 3, 3 * k + t:3 * k + t + 4] = k
            m[-1, -3:] = 255
            save_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", m, mode="P", palette=davis_palette())
            masks.append(m)
        out[name] = masks
    for year in ("2016", "2017"):
        (root / "ImageSets" / year).mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / year / "train.txt").write_text(names[0] + "\n")
        (root / "ImageSets" / year / "val.txt").write_text("".join(n + "\n" for n in names[1:]))
    return out


def make_davis2016(root: Path, videos: int = 2, frames: int = 3, h: int = 24, w: int = 40, seed: int = 0,
                   ) -> dict[str, list[np.ndarray]]:
    """DAVIS 2016 package: binary greyscale masks (0/255) and ImageSets/480p path-pair split files."""
    rng = np.random.default_rng(seed)
    names = [f"seq16-{i}" for i in range(videos)]
    out: dict[str, list[np.ndarray]] = {}
    lines = []
    for name in names:
        masks = []
        for t in range(frames):
            save_jpg(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", frame(rng, h, w))
            m = np.zeros((h, w), np.uint8)
            m[4:12, 5 + t:15 + t] = 255
            save_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", m, mode="L")
            masks.append(m)
            lines.append(f"/JPEGImages/480p/{name}/{t:05d}.jpg /Annotations/480p/{name}/{t:05d}.png\n")
        out[name] = masks
    (root / "ImageSets" / "480p").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("".join(lines))
    return out


# ----------------------------------------------------------------------------------------------------------
# video files
# ----------------------------------------------------------------------------------------------------------

def write_video(path: Path, frames: int = 8, h: int = 32, w: int = 48, fps: int = 15) -> list[np.ndarray]:
    """Encode a small video (codec by extension) with PyAV; returns the frames written."""
    import av

    codec = {".mp4": "libx264", ".mov": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9", ".mkv": "libx264"}
    imgs = [np.full((h, w, 3), 20 * i % 256, np.uint8) for i in range(frames)]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec[path.suffix], rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for img in imgs:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return imgs
