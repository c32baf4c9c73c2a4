"""``vidseg segment``: segment a video file or a frame folder with a registered model.

Writes one indexed (P-mode) PNG per frame in the VSPW submission format (values 0..K-1, the semantic
palette) to ``<out>/<video>/<frame stem>.png``, each written atomically, and optionally an overlay mp4.
An interrupted run resumes: frames whose PNG exists are not decoded again (their support frames are still
read and, when another target needs them, encoded).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

HELP = "Segment a video file or frame folder: per-frame VSPW-format PNG masks and an optional overlay video."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file (mp4/mov/avi/webm/mkv) or folder of frames")
    parser.add_argument("--model", required=True, help="registered model name (see 'vidseg models')")
    parser.add_argument("--weights", default=None,
                        help="local checkpoint (.pth/.safetensors or Hugging Face folder; official layouts are "
                             "converted); without it the model has random weights")
    parser.add_argument("--out", required=True, help="output folder; masks go to OUT/<video>/<frame>.png")
    parser.add_argument("--overlay", default=None, help="also write an overlay mp4 to this path")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: scales 0.5-1.75 and flip")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run the model")
    parser.add_argument("--mode", default="online", choices=["online", "offline"],
                        help="online: past frames only; offline: may use future frames (TCB's test rule)")
    parser.add_argument("--num-classes", type=int, default=124, help="classes of the model (VSPW: 124)")
    parser.add_argument("--img-scale", default=None, metavar="LONGxSHORT",
                        help="keep-ratio test resize, e.g. 853x480 (CFFM's); default: frames as they are")
    parser.add_argument("--size-divisor", type=int, default=1,
                        help="round the model input size up to a multiple of this (CFFM uses 32)")
    parser.add_argument("--fps", type=float, default=None, help="overlay frame rate (default: the video's, or 15)")
    parser.add_argument("--json", default=None, help="also write the run summary to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_scale(text: str | None) -> tuple[int, int] | None:
    """``"853x480"`` -> (853, 480)."""
    from vidseg.errors import ConfigError

    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--img-scale must look like 853x480, got {text!r}") from None
    if a <= 0 or b <= 0:
        raise ConfigError(f"--img-scale must be positive, got {text!r}")
    return a, b


def _converter_for(name: str):
    if name.startswith(("segformer", "cffm", "mit")):
        from vidseg.models.convert_segformer import convert_segformer_checkpoint

        return convert_segformer_checkpoint
    if name.startswith(("tcb", "pspnet", "ocrnet")):
        from vidseg.models.convert_tcb import convert_tcb_checkpoint

        return convert_tcb_checkpoint
    return None


def load_model(name: str, weights: str | os.PathLike | None = None, num_classes: int = 124) -> Any:
    """Build a registered model and load local weights (our layout, or the official one of its family).

    Raises:
        DataError: unreadable weights, or weights that leave model parameters unfilled.
    """
    from vidseg.errors import DataError
    from vidseg.models import build
    from vidseg.models.checkpoint import load_state_dict, read_state_dict, strip_prefix

    model = build(name, num_classes=num_classes)
    if weights is None:
        return model
    state = strip_prefix(read_state_dict(weights))
    own = set(model.state_dict())
    converter = _converter_for(name)
    if converter is not None and not own <= set(state):
        state = converter(state)
    report = load_state_dict(model, state, source=weights)
    if report.missing:
        raise DataError(weights, f"checkpoint leaves model weights unfilled: {report.summary()}")
    return model


def palette_bytes(num_colors: int = 256) -> list[int]:
    """The semantic palette as a flat PIL palette list (classes 0..123 coloured, the rest black)."""
    from vidseg.categories import semantic_palette

    pal = np.zeros((num_colors, 3), dtype=np.uint8)
    colours = semantic_palette()
    pal[: len(colours)] = colours
    return pal.reshape(-1).tolist()


def write_mask(path: Path, labels: np.ndarray, palette: list[int]) -> None:
    """Write class indices [H, W] (0..255) as an indexed PNG with ``palette``, atomically."""
    from PIL import Image

    from vidseg.fileio import atomic_path

    img = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="P")
    img.putpalette(palette)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def video_name(path: Path) -> str:
    """Output folder name of a video: the folder name, or the file name without extension."""
    return path.name if path.is_dir() else path.stem


def _source_info(path: Path) -> tuple[int | None, float]:
    from vidseg.data.video import open_video

    source = open_video(path)
    return (int(source.num_frames) or None), float(getattr(source, "fps", 0.0) or 15.0)


def _overlay_writer(stack: contextlib.ExitStack, overlay: Path | None, fps: float) -> Any:
    if overlay is None:
        return None
    from vidseg.viz import Mp4Writer

    return stack.enter_context(Mp4Writer(overlay, fps=fps))


def segment_video(predictor: Any, video: Path, out_dir: Path, *, overlay: Path | None = None,
                  fps: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Write the masks (and overlay) of one video; returns a summary row.

    Frames whose mask already exists are skipped (resume); for the overlay their mask is read back.
    """
    from tqdm import tqdm

    from vidseg.fileio import read_image
    from vidseg.viz import overlay_semantic

    total, video_fps = _source_info(video)
    palette = palette_bytes()
    out_dir.mkdir(parents=True, exist_ok=True)

    def done(index: int, name: str) -> bool:
        return (out_dir / f"{name}.png").is_file()

    written = skipped = 0
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = _overlay_writer(stack, overlay, fps or video_fps)
        for pred in tqdm(predictor.predict(video, skip=done), total=total, desc=video.name, unit="frame",
                         disable=not progress):
            path = out_dir / f"{pred.name}.png"
            labels = pred.labels
            if pred.skipped:
                skipped += 1
                labels = read_image(path, "P") if writer is not None else None
            else:
                write_mask(path, labels, palette)
                written += 1
            if writer is not None:
                writer.write(overlay_semantic(pred.image, labels))
    seconds = time.perf_counter() - start
    return {"video": video.name, "frames": written + skipped, "written": written, "skipped": skipped,
            "seconds": round(seconds, 3), "fps": round(written / seconds, 3) if seconds > 0 else 0.0}


def run(args: argparse.Namespace) -> int:
    from vidseg.cli.common import format_table, write_json
    from vidseg.errors import DataError
    from vidseg.inference import TTA, VideoPredictor

    video = Path(args.video)
    if not video.exists():
        raise DataError(video, "video file or frame folder not found")
    model = load_model(args.model, args.weights, args.num_classes)
    predictor = VideoPredictor(model, mode=args.mode, device=args.device, tta=TTA() if args.tta else None,
                               img_scale=parse_scale(args.img_scale), size_divisor=args.size_divisor,
                               keep_images=args.overlay is not None)
    row = segment_video(predictor, video, Path(args.out) / video_name(video),
                        overlay=Path(args.overlay) if args.overlay else None, fps=args.fps,
                        progress=not args.quiet)
    print(format_table([list(row.values())], list(row)))
    if args.json:
        write_json(args.json, {"model": args.model, "mode": args.mode, "tta": bool(args.tta), **row})
    return 0
