"""Writing synthetic datasets in the official on-disk layouts of VSPW, VIPSeg and DAVIS 2017 (``vidseg synth``).

The frames come from :mod:`vidseg.data.synth.video`; this module encodes their labels in each benchmark's raw
format and writes a whole dataset atomically (a staging folder renamed into place).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from vidseg.categories import davis_palette, vipseg_categories
from vidseg.data.synth.appearance import pack_rgb, unpack_rgb
from vidseg.data.synth.scene import SynthFrame, VideoPlan
from vidseg.data.synth.video import KINDS, SynthConfig, SyntheticVideo, video_name
from vidseg.errors import ConfigError, DataError
from vidseg.fileio import encode_mask_png, remove_orphaned_staging
from vidseg.tables import parse_size as parse_pair

__all__ = [
    "SynthSummary", "davis_mask", "davis_targets", "generate", "pack_rgb", "parse_size", "split_videos",
    "unpack_rgb", "vipseg_instance_lut", "vipseg_raw_mask", "vspw_raw_mask",
]

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
    """Parse ``"HxW"`` (e.g. ``"480x853"``) into (H, W); ConfigError otherwise (at least 8x8)."""
    return parse_pair(text, "size", "HxW (e.g. 480x853)", minimum=8)


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
    return resources.files("vidseg").joinpath("resources", "vspw_label_num_dic.json").read_text(encoding="utf-8")


class _Writer:
    """Writes one video of one layout under a staging root."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        if kind == "davis":
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


def generate_cached(kind: str, cache_dir: str | os.PathLike, *, videos: int, frames: int, size: tuple[int, int],
                    seed: int, val_fraction: float = 0.34) -> Path:
    """Generate (once) a synthetic dataset under ``cache_dir`` and return its root.

    The root is named after its parameters, ``synthetic_<kind>_<N>x<T>_<W>x<H>_s<seed>``, so a later call with the
    same parameters reuses it; :func:`generate` only renames a complete dataset into place, so an existing root is
    finished. ``size`` is (H, W).
    """
    h, w = size
    root = Path(cache_dir) / f"synthetic_{kind}_{videos}x{frames}_{w}x{h}_s{seed}"
    if not root.is_dir():
        generate(kind, root, videos=videos, frames=frames, size=(h, w), seed=seed, val_fraction=val_fraction,
                 overwrite=True, progress=False)
    return root


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
    remove_orphaned_staging(out.parent, f".{out.name}.synth-")  # left by a killed earlier run
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
