"""Scoring folders of predictions: the plumbing every benchmark's folder evaluator shares.

Split files, label PNG reading with one-line errors, listing frames, naming the first missing/extra files,
and running per-video jobs in worker processes with a progress bar. The benchmark modules
(:mod:`vidseg.metrics.vspw`, :mod:`vidseg.metrics.davis_folder`, :mod:`vidseg.metrics.youtube_objects`,
:mod:`vidseg.metrics.vipseg_eval`) hold only what is specific to their format.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from vidseg.data.layout import read_split_file
from vidseg.errors import DataError
from vidseg.fileio import check_image_format


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel (L, P or 16-bit) PNG as a 2-D integer array; RGB raises DataError."""
    try:
        with Image.open(path) as img:
            check_image_format(Path(path), img.format)
            mode = img.mode
            if mode not in ("L", "P", "I;16", "I", "1"):
                raise DataError(path, f"image mode is {mode}: an indexed/grayscale label PNG is expected, not colour")
            arr = np.asarray(img)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable or truncated image ({exc})") from None
    return arr.astype(np.uint8) if mode == "1" else arr


def read_split(root: Path, split: str) -> list[str]:
    """Video names of ``<root>/<split>.txt`` (one per line), or all folders of data/ if split is 'all'."""
    if split == "all":
        if not (root / "data").is_dir():
            raise DataError(root / "data", "folder not found")
        names = sorted(p.name for p in (root / "data").iterdir() if p.is_dir())
        if not names:
            raise DataError(root / "data", "holds no video folders: nothing to evaluate")
        return names
    path = root / f"{split}.txt"
    names = read_split_file(path)
    if not names:
        raise DataError(path, "lists no videos: nothing to evaluate (an empty split gives no metrics)")
    return names


def list_pngs(folder: Path) -> list[str]:
    """Sorted stems of the ``*.png`` files of ``folder`` (none if it does not exist)."""
    return sorted(p.stem for p in folder.glob("*.png")) if folder.is_dir() else []


def first_names(names: list[str], k: int = 5) -> str:
    """The first ``k`` names joined for an error message, ``...`` when there are more."""
    return ", ".join(names[:k]) + (" ..." if len(names) > k else "")


def run_jobs(fn, jobs: list[dict[str, Any]], workers: int, progress: bool, desc: str):
    """Yield ``fn(job)`` for each job in order, with ``workers`` processes and a tqdm bar (ETA)."""
    bar = tqdm(total=len(jobs), desc=desc, unit="video", disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield fn(job)
                bar.update(1)
            return
        with mp.get_context("spawn").Pool(min(workers, len(jobs)), initializer=_worker_init) as pool:
            for res in pool.imap(fn, jobs, chunksize=1):
                yield res
                bar.update(1)
    finally:
        bar.close()


def _worker_init() -> None:
    # one thread per worker process (torch is imported later, by the TC warp, if at all)
    os.environ["OMP_NUM_THREADS"] = "1"


def raise_missing(missing: list[str], where: str | os.PathLike, what: str = "prediction frames") -> None:
    """Raise :class:`DataError` at ``where`` naming how many of ``what`` are missing and the first few."""
    if missing:
        raise DataError(where, f"{len(missing)} {what} missing: {first_names(missing)}")


def report_extra(extra: list[str], where: str | os.PathLike, protocol: str,
                 what: str = "predictions without ground truth") -> None:
    """Files nobody asked for: an error in the strict protocol, a warning in the official one (ignored)."""
    if not extra:
        return
    msg = f"{len(extra)} {what} (ignored): {first_names(extra)}"
    if protocol == "strict":
        raise DataError(where, msg)
    warnings.warn(f"{where}: {msg}", stacklevel=3)
