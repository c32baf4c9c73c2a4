"""``vidseg annotate propagate``: key-frame labels of one video folder -> labels, spot maps and a review page.

Layout. FRAMES_DIR holds one video's frames (``<stem>.jpg``/``.png``, or a VSPW video folder with ``origin/``);
LABELS_DIR holds the annotated key frames as VSPW raw masks ``<stem>.png`` (0 = others, 1..K = classes,
255 = void; the stem names the frame). OUT receives::

    mask/<stem>.png       VSPW raw labels of every frame (key frames copied)
    spots/<stem>.png      255 where the two propagation directions disagree, else 0
    review/<stem>*.jpg|png  the frame, the labels over it, the spots over it (for review.html)
    review.html           every frame, sorted by its share of spot pixels (worst first)
    propagation.json      per-frame provenance: bounding key frames, their SHA-256, the flow, the frames' SHA-256

Incremental re-runs. The frames between two neighbouring key frames (an *interval*; before the first and after
the last key frame an interval has one key frame) depend only on those key frames, the frames in between and the
flow. Each frame's provenance records exactly that; a re-run recomputes an interval only when its record differs
(a key frame was added, refined or removed, a frame changed, another flow) or an output file is missing, so adding
one refined key frame re-propagates the one interval it splits. ``review.html`` is the completion marker: it is
removed before anything is recomputed and written last; every other file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.annotate.propagation import propagate_keyframes
from vidseg.annotate.review import ReviewRow, write_review_images, write_review_page
from vidseg.errors import ConfigError, DataError
from vidseg.fileio import oriented_size, read_image, write_mask_png, write_text_atomic
from vidseg.flow.backends import FileFlow
from vidseg.flow.factory import build_flow_backend
from vidseg.provenance import weights_sha256

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
RECORD = "propagation.json"
FORMAT = "vidseg-propagation-v1"
REVIEW = "review.html"
VOID = 255

PairFlow = Callable[[int, int], np.ndarray]  # (frame index i, frame index j = i +- 1) -> flow i->j [H, W, 2]


@dataclass
class PropagateSummary:
    """What a run did: ``recomputed`` lists the stems of the frames whose labels were (re)computed."""

    frames: int
    keyframes: int
    recomputed: list[str] = field(default_factory=list)
    intervals_recomputed: int = 0
    intervals_kept: int = 0
    worst: list[tuple[str, float]] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def list_frames(frames_dir: str | os.PathLike) -> list[Path]:
    """Frame files of one video folder (``origin/`` inside a VSPW video folder is used when present)."""
    folder = Path(frames_dir)
    if not folder.is_dir():
        raise DataError(folder, "frames folder not found")
    if (folder / "origin").is_dir():
        folder = folder / "origin"
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file())
    if not frames:
        raise DataError(folder, f"no frames ({', '.join(FRAME_SUFFIXES)}) in the frames folder")
    stems = [p.stem for p in frames]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise DataError(folder, f"two frame files share the name {dup!r} (different extensions)")
    return frames


def match_keyframes(keys_dir: str | os.PathLike, frames: Sequence[Path]) -> dict[int, Path]:
    """Key-frame PNGs by frame index; a file that names no frame is an error (a typo would be silently unused)."""
    folder = Path(keys_dir)
    if not folder.is_dir():
        raise DataError(folder, "key-frame folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise DataError(folder, "no key-frame PNG (<frame stem>.png) in the key-frame folder")
    index = {p.stem: i for i, p in enumerate(frames)}
    unmatched = [p for p in files if p.stem not in index]
    if len(unmatched) == len(files):
        raise DataError(folder, f"no key-frame file matches a frame name (frames are named like "
                                f"{frames[0].stem!r}, key frames like {files[0].stem!r})")
    if unmatched:
        raise DataError(unmatched[0], f"key frame matches no frame in {frames[0].parent}")
    return {index[p.stem]: p for p in files}


def frame_size(path: Path) -> tuple[int, int]:
    """(H, W) of a frame file, from its header."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return oriented_size(img)
    except OSError as exc:
        raise DataError(path, f"unreadable image ({exc})") from None


def load_keyframe(path: Path, size: tuple[int, int], num_classes: int) -> np.ndarray:
    """Read and check one key frame: 8-bit single channel, the frames' size, values 0..num_classes or 255."""
    labels = read_image(path)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise DataError(path, f"key frame must be an 8-bit single-channel PNG (VSPW raw mask), got "
                              f"{labels.dtype} {labels.shape}")
    if labels.shape != tuple(size):
        raise DataError(path, f"key frame is {labels.shape[0]}x{labels.shape[1]}, the frames are {size[0]}x{size[1]}")
    values = np.unique(labels)
    bad = values[(values > num_classes) & (values != VOID)]
    if bad.size:
        raise DataError(path, f"labels {bad[:5].tolist()} outside the class range 0..{num_classes} "
                              f"(VSPW raw: 0 others, 1..{num_classes} classes, 255 void)")
    return labels


def make_pair_flow(spec: Any, frames: Any, stems: Sequence[str] | None = None, *, weights: Any = None,
                   device: str = "cpu") -> PairFlow:
    """A memoised ``flow(i, j)`` between frames i and j = i +- 1.

    Args:
        spec: ``dis``, ``dis:<preset>``, ``farneback``, ``raft``/``raft-small``/``raft-standard`` (with ``weights``),
            or a folder of flow files: ``<dir>/<stem>.npy|.flo`` = flow from frame ``stem`` to the next frame and
            ``<dir>/backward/<stem>.npy|.flo`` = flow from frame ``stem`` to the previous frame.
        frames: indexable, ``frames[i]`` -> uint8 RGB [H, W, 3] (not read for flow files).
        stems: frame names (flow files); default the indices.
    """
    names = list(stems) if stems is not None else None
    cache: dict[tuple[int, int], np.ndarray] = {}
    backend = resolve_flow(spec, weights, device)
    folder = Path(backend) if isinstance(backend, (str, os.PathLike)) else None
    if folder is not None:
        forward, backward = FileFlow(folder), (FileFlow(folder / "backward") if (folder / "backward").is_dir() else None)

    def flow(i: int, j: int) -> np.ndarray:
        if (i, j) not in cache:
            stem_i, stem_j = (names[i], names[j]) if names else (str(i), str(j))
            if folder is None:
                cache[(i, j)] = backend(frames[i], frames[j], video="", stem_t=stem_i, stem_t1=stem_j)
            elif j == i + 1:
                cache[(i, j)] = forward(None, None, video="", stem_t=stem_i)
            elif backward is None:
                raise DataError(folder / "backward", "backward flow folder not found (flow from each frame to "
                                                     "the previous one, <stem>.npy or .flo)")
            else:
                cache[(i, j)] = backward(None, None, video="", stem_t=stem_i)
        return cache[(i, j)]

    return flow


def resolve_flow(spec: Any, weights: Any = None, device: str = "cpu") -> Any:
    """A flow folder (returned as is) or a built backend (:func:`vidseg.flow.build_flow_backend`), checked now."""
    if isinstance(spec, (str, os.PathLike)) and Path(spec).is_dir():
        if weights is not None:
            raise ConfigError("--flow-weights is for --flow raft; flow files take no weights")
        return spec
    return build_flow_backend(spec, weights=weights, device=device)


def flow_identity(spec: Any, weights: Any) -> str:
    """What the flow is, for provenance: the spec, the weights' SHA-256, and a flow folder's content hash."""
    if isinstance(spec, (str, os.PathLike)) and Path(spec).is_dir():
        return f"files:{weights_sha256(spec)}"
    if not isinstance(spec, (str, os.PathLike)):  # a backend object: its class (the caller keeps it the same)
        return f"object:{type(spec).__module__}.{type(spec).__qualname__}"
    return f"{spec}:{weights_sha256(weights)}" if weights is not None else str(spec)


class FrameReader:
    """``reader[i]`` -> uint8 RGB frame i (read on demand, checked against the video's size)."""

    def __init__(self, paths: Sequence[Path], size: tuple[int, int]) -> None:
        self.paths, self.size = list(paths), size
        self._cache: dict[int, np.ndarray] = {}

    def __getitem__(self, i: int) -> np.ndarray:
        if i not in self._cache:
            image = read_image(self.paths[i], "RGB")
            if image.shape[:2] != tuple(self.size):
                raise DataError(self.paths[i], f"frame is {image.shape[0]}x{image.shape[1]}, the first frame is "
                                               f"{self.size[0]}x{self.size[1]}")
            self._cache[i] = image
        return self._cache[i]

    def forget(self, keep: set[int]) -> None:
        self._cache = {i: v for i, v in self._cache.items() if i in keep}


def intervals(keys: Sequence[int], num_frames: int) -> list[tuple[int | None, int | None]]:
    """(a, b) key-frame pairs bounding the non-key frames; None = the video's start / end."""
    out: list[tuple[int | None, int | None]] = []
    if keys[0] > 0:
        out.append((None, keys[0]))
    out += [(a, b) for a, b in zip(keys, keys[1:]) if b > a + 1]
    if keys[-1] < num_frames - 1:
        out.append((keys[-1], None))
    return out


class _Run:
    """State of one ``propagate_folder`` call (paths, key frames, hashes, the provenance being written)."""

    def __init__(self, frames: list[Path], keyfiles: dict[int, Path], out: Path, flow: Any, weights: Any,
                 device: str, tolerance: float, num_classes: int) -> None:
        self.frames, self.keyfiles, self.out = frames, keyfiles, out
        self.stems = [p.stem for p in frames]
        self.size = frame_size(frames[0])
        self.keys = {k: load_keyframe(p, self.size, num_classes) for k, p in sorted(keyfiles.items())}
        self.key_sha = {k: file_sha256(p) for k, p in keyfiles.items()}
        self.flow_spec = resolve_flow(flow, weights, device)  # checked (and RAFT loaded) once, before any writing
        self.options = {"flow": flow_identity(flow, weights), "tolerance": tolerance, "num_classes": num_classes}
        self.tolerance = tolerance
        self.reader = FrameReader(frames, self.size)
        self.record = _load_record(out)

    def interval_source(self, a: int | None, b: int | None) -> dict[str, Any]:
        lo, hi = (0 if a is None else a), (len(self.frames) - 1 if b is None else b)
        digest = hashlib.sha256()
        for t in range(lo, hi + 1):
            digest.update(self.stems[t].encode() + b"\0" + file_sha256(self.frames[t]).encode())
        keys = [k for k in (a, b) if k is not None]
        return {"keyframes": {self.stems[k]: self.key_sha[k] for k in keys}, "frames_sha256": digest.hexdigest(),
                **self.options}

    def outputs_exist(self, stem: str) -> bool:
        names = [f"mask/{stem}.png", f"spots/{stem}.png", *(f"review/{n}" for n in review_names(stem))]
        return all((self.out / n).is_file() for n in names)

    def up_to_date(self, stems: Sequence[str], source: dict[str, Any]) -> bool:
        seen = self.record["frames"]
        return all(seen.get(s, {}).get("source") == source and self.outputs_exist(s) for s in stems)

    def write_frame(self, t: int, labels: np.ndarray, spots: np.ndarray, source: dict[str, Any]) -> None:
        stem = self.stems[t]
        write_mask_png(self.out / "mask" / f"{stem}.png", labels)
        write_mask_png(self.out / "spots" / f"{stem}.png", np.where(spots, 255, 0).astype(np.uint8))
        write_review_images(self.out / "review", stem, self.reader[t], labels, spots)
        share = float(spots.mean())
        kind = "key" if t in self.keys else "propagated"
        self.record["frames"][stem] = {"index": t, "kind": kind, "spot_share": share, "source": source}

    def save_record(self, complete: bool) -> None:
        self.record["complete"] = complete
        write_text_atomic(self.out / RECORD, json.dumps(self.record, indent=1, sort_keys=True) + "\n")


def review_names(stem: str) -> tuple[str, str, str]:
    return f"{stem}.jpg", f"{stem}_labels.jpg", f"{stem}_spots.jpg"


def _load_record(out: Path) -> dict[str, Any]:
    path = out / RECORD
    if not path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise DataError(out, f"output folder is not empty and holds no {RECORD} (not made by "
                                 "`vidseg annotate propagate`); choose an empty or new folder")
        return {"format": FORMAT, "frames": {}, "complete": False}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable propagation record ({exc}); delete the output folder to start over") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("frames"), dict):
        raise DataError(path, f"not a {FORMAT} record; delete the output folder to start over")
    return record


def _work_list(run: _Run) -> list[tuple[int | None, int | None, list[int], dict[str, Any]]]:
    """Intervals (and key frames, as one-frame intervals) whose provenance or outputs are out of date."""
    todo = []
    for k in run.keys:
        source = run.interval_source(k, k)
        if not run.up_to_date([run.stems[k]], source):
            todo.append((k, k, [k], source))
    for a, b in intervals(sorted(run.keys), len(run.frames)):
        inner = list(range(0 if a is None else a + 1, len(run.frames) if b is None else b))
        source = run.interval_source(a, b)
        if not run.up_to_date([run.stems[t] for t in inner], source):
            todo.append((a, b, inner, source))
    return todo


def _propagate_interval(run: _Run, a: int | None, b: int | None, inner: list[int], source: dict[str, Any]) -> None:
    lo, hi = (0 if a is None else a), (len(run.frames) - 1 if b is None else b)
    if a == b:  # a key frame: its own labels, no spots
        run.write_frame(a, run.keys[a], np.zeros(run.size, dtype=bool), source)
        return
    flow = make_pair_flow(run.flow_spec, run.reader, run.stems)
    window = list(range(lo, hi + 1))
    keyframes = {t - lo: run.keys[t] for t in (a, b) if t is not None}
    result = propagate_keyframes(window, keyframes, lambda i, j: flow(i, j), tolerance=run.tolerance)
    for t in inner:
        run.write_frame(t, result.labels[t - lo], result.spots[t - lo], source)
    run.reader.forget({hi})


def propagate_folder(frames_dir: str | os.PathLike, keys_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                     flow: Any = "dis", weights: Any = None, device: str = "cpu", tolerance: float = 1.5,
                     num_classes: int = 124, progress: Callable[[str], None] | None = None) -> PropagateSummary:
    """Propagate the key frames of one video to all its frames; see the module docstring for the layout.

    Args:
        frames_dir: the video's frame folder.
        keys_dir: key-frame VSPW raw masks named ``<frame stem>.png``.
        out_dir: output folder (created; a re-run recomputes only intervals whose sources changed).
        flow: flow spec (:func:`make_pair_flow`).
        weights: RAFT checkpoint for ``flow="raft*"``.
        device: torch device for RAFT.
        tolerance: forward/backward flow agreement in pixels.
        num_classes: K; key-frame values must be 0..K or 255.
        progress: called with one line per recomputed interval.

    Returns:
        a :class:`PropagateSummary`.
    """
    frames = list_frames(frames_dir)
    keyfiles = match_keyframes(keys_dir, frames)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(out, "output path is a file, not a folder")
    run = _Run(frames, keyfiles, out, flow, weights, device, tolerance, num_classes)  # validates every input
    todo = _work_list(run)
    summary = PropagateSummary(frames=len(frames), keyframes=len(keyfiles))
    stale = set(run.record["frames"]) - set(run.stems)
    if todo or stale or not (out / REVIEW).is_file():
        (out / REVIEW).unlink(missing_ok=True)
        for stem in stale:
            run.record["frames"].pop(stem)
        out.mkdir(parents=True, exist_ok=True)
        run.save_record(complete=False)
    for a, b, inner, source in todo:
        _propagate_interval(run, a, b, inner, source)
        run.save_record(complete=False)  # resumable: a finished interval is never recomputed
        if a != b:
            summary.intervals_recomputed += 1
            summary.recomputed += [run.stems[t] for t in inner]
            if progress:
                span = f"{run.stems[inner[0]]}..{run.stems[inner[-1]]}"
                progress(f"propagated {len(inner)} frames ({span})")
    summary.intervals_kept = len(intervals(sorted(run.keys), len(frames))) - summary.intervals_recomputed
    rows = [ReviewRow(stem=s, index=run.record["frames"][s]["index"], kind=run.record["frames"][s]["kind"],
                      spot_share=run.record["frames"][s]["spot_share"], images=review_names(s)) for s in run.stems]
    write_review_page(out / REVIEW, rows, title=f"label propagation review: {Path(frames_dir).name}")
    run.save_record(complete=True)
    summary.worst = sorted(((r.stem, r.spot_share) for r in rows), key=lambda x: -x[1])[:5]
    return summary
