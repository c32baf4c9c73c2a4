"""``vidseg segment``: segment a video file or a frame folder with a registered model.

Argument parsing only; the registry entry's ``task`` picks the writer:

* ``semantic``: :func:`vidseg.inference.segment.segment_video` (VSPW-format PNGs in ``<out>/<video>/``,
  resumable, optional overlay mp4). With no test options the model runs its official test pipeline (registry
  ``official_settings``: resize, normalisation, clip rule, memory); TCB's supports before frame 0 are clamped
  (user videos) unless ``--short-video wrap`` asks for the official loader's wrap-around.
* ``panoptic`` (Clip-PanoFCN, PanopticFCN + association):
  :func:`vidseg.inference.panoptic_segment.segment_panoptic_video` (the VIPSeg submission layout in ``<out>``:
  ``pan_pred/<video>/*.png`` + ``pred.json``; overlay with track colours and a legend).
* ``object`` (STCNN, needs ``--first-mask``): optional online fine-tuning per object
  (:mod:`vidseg.engine.vos_finetune`, ``--finetune``), then
  :func:`vidseg.inference.vos_segment.segment_object_video` (DAVIS layout ``<out>/<video>/*.png``).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from vidseg.cli.argtypes import add_partial_weights, add_quiet, positive_float, positive_int
from vidseg.cli.backend_options import (
    add_backend_arguments,
    backend_from_args,
    check_torch_only,
    prepare_from_args,
    threads_from_args,
)
from vidseg.cli.test_options import add_test_arguments, settings_from_args

HELP = ("Segment a video file or frame folder: semantic (VSPW-format masks), panoptic (VIPSeg submission layout) "
        "or object masks from a first-frame mask (DAVIS layout), and an optional overlay video.")
FINETUNE_DIR = ".finetune"  # per-object online fine-tuning checkpoints, inside OUT/<video>/
TEST_OPTIONS = ("img_scale", "size_divisor", "normalization", "mode", "short_video", "tta_dataset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file (mp4/mov/avi/webm/mkv) or folder of frames")
    parser.add_argument("--model", required=True, help="registered model name (see 'vidseg models')")
    parser.add_argument("--weights", default=None,
                        help="local checkpoint (.pth/.safetensors or Hugging Face folder; official layouts are "
                             "converted); without it the model has random weights")
    add_partial_weights(parser)
    parser.add_argument("--out", required=True,
                        help="output folder; semantic and object masks go to OUT/<video>/<frame>.png, panoptic "
                             "results to OUT/pan_pred/<video>/<frame>.png + OUT/pred.json")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the masks in OUT/<video>/ when they were made by another model, other weights "
                             "or other options (by default such a folder is refused; the same run resumes)")
    parser.add_argument("--overlay", metavar="FILE", help="also write an overlay mp4 to this path")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run the model")
    parser.add_argument("--num-classes", type=positive_int, default=124, help="classes of the model (VSPW: 124)")
    add_test_arguments(parser)
    parser.add_argument("--fps", type=positive_float, default=None, help="overlay frame rate (default: the video's, or 15)")
    parser.add_argument("--json", metavar="FILE", help="also write the run summary to this JSON file")
    parser.add_argument("--first-mask", default=None,
                        help="object models: the first frame's mask (indexed PNG, one id per object; DAVIS format)")
    parser.add_argument("--finetune", action="store_true",
                        help="object models: online fine-tuning on lucid dreams of the first frame before "
                             "segmenting (one model per object; resumable, state in OUT/<video>/.finetune/)")
    parser.add_argument("--finetune-pairs", type=positive_int, default=100,
                        help="lucid-dream pairs per object for --finetune (the official default)")
    parser.add_argument("--finetune-epochs", type=positive_int, default=6,
                        help="passes over the pairs for --finetune (the official default)")
    add_backend_arguments(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    with threads_from_args(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from vidseg.errors import DataError
    from vidseg.models import get_entry

    video = Path(args.video)
    if not video.exists():
        raise DataError(video, "video file or frame folder not found")
    task = get_entry(args.model).task
    if args.weights is None:
        warnings.warn(f"no --weights: {args.model} has random weights, so its masks are meaningless (give a "
                      "checkpoint, e.g. one written by 'vidseg train' or 'vidseg demo')", stacklevel=1)
    runners = {"panoptic": _run_panoptic, "object": _run_object}
    if task not in runners:
        return _run_semantic(args, video)
    _refuse_options(args, task)
    check_torch_only(args, args.model, task)
    return runners[task](args, video)


def _refuse_options(args: argparse.Namespace, task: str) -> None:
    """Semantic test options and object-only options do not apply to other tasks: say so instead of ignoring."""
    from vidseg.errors import ConfigError

    given = [f"--{k.replace('_', '-')}" for k in TEST_OPTIONS if getattr(args, k, None) is not None]
    given += ["--tta"] if args.tta else []
    if task != "object":
        given += [flag for flag, on in (("--first-mask", args.first_mask), ("--finetune", args.finetune)) if on]
    if given:
        raise ConfigError(f"{', '.join(given)} do(es) not apply to {task} model {args.model!r}")


def _print_row(row: dict, json_path: str | None, extra: dict) -> None:
    from vidseg.tables import format_table, write_json

    print(format_table([list(row.values())], list(row)))
    if json_path:
        write_json(json_path, {**extra, **row})


def _run_panoptic(args: argparse.Namespace, video: Path) -> int:
    from vidseg.inference.panoptic_segment import PNG_DIR, segment_panoptic_video
    from vidseg.inference.segment import video_name
    from vidseg.models import load_model, make_predictor
    from vidseg.provenance import make_record, prepare_output_folder

    model = load_model(args.model, args.weights, strict=not args.partial_weights).to(args.device)
    predictor = make_predictor(args.model, model)
    out = Path(args.out)
    name = video_name(video)
    record = make_record("segment", args.model, args.weights, {"partial_weights": bool(args.partial_weights)},
                         source=video)
    prepare_output_folder(out / PNG_DIR / name, record, outputs=["*.png"], overwrite=args.overwrite)
    row = segment_panoptic_video(predictor, video, out, video_id=name,
                                 overlay=Path(args.overlay) if args.overlay else None, fps=args.fps,
                                 progress=not args.quiet, pipeline=not args.no_pipeline)
    _print_row(row, args.json, {"model": args.model, "task": "panoptic"})
    return 0


def _run_object(args: argparse.Namespace, video: Path) -> int:
    from vidseg.errors import ConfigError
    from vidseg.inference.segment import video_name
    from vidseg.inference.vos_segment import segment_object_video
    from vidseg.models import load_model, make_predictor
    from vidseg.provenance import make_record, prepare_output_folder

    if args.first_mask is None:
        raise ConfigError(f"model {args.model!r} segments objects from a first-frame mask: give --first-mask MASK.png")
    model = load_model(args.model, args.weights, strict=not args.partial_weights).to(args.device)
    out, name = Path(args.out), video_name(video)
    finetune = {"pairs": args.finetune_pairs, "epochs": args.finetune_epochs} if args.finetune else None
    record = make_record("segment", args.model, args.weights,
                         {"partial_weights": bool(args.partial_weights), "finetune": finetune,
                          "first_mask_sha256": _sha256(Path(args.first_mask))}, source=video)
    # the fine-tuning checkpoints are outputs too: made by another run, they are refused or (--overwrite) removed
    prepare_output_folder(out / name, record, outputs=["*.png", f"{FINETUNE_DIR}/*.pt"], overwrite=args.overwrite)
    models = _finetuned(model, video, Path(args.first_mask), out / name / FINETUNE_DIR, finetune, args.quiet) \
        if finetune else model
    row = segment_object_video(make_predictor(args.model, models), video, Path(args.first_mask), out / name,
                               overlay=Path(args.overlay) if args.overlay else None, fps=args.fps,
                               progress=not args.quiet, pipeline=not args.no_pipeline)
    _print_row(row, args.json, {"model": args.model, "task": "object", "finetune": finetune})
    return 0


def _sha256(path: Path) -> str:
    from vidseg.errors import DataError
    from vidseg.provenance import weights_sha256

    if not path.is_file():
        raise DataError(path, "first-frame mask not found")
    return weights_sha256(path)


def _finetuned(model, video: Path, first_mask: Path, work_dir: Path, finetune: dict, quiet: bool):
    """{object id: model} fine-tuned online on the first frame (resumable through ``work_dir``)."""
    from tqdm import tqdm

    from vidseg.engine.stcnn_online import OnlineConfig
    from vidseg.engine.vos_finetune import finetune_for_video
    from vidseg.inference.predictor import iter_video
    from vidseg.inference.vos import read_first_mask

    frame0, _ = next(iter_video(video))
    bars = []

    def on_object(obj: int, total: int):
        bars.append(tqdm(total=total, desc=f"fine-tune object {obj}", unit="step", disable=quiet))
        return lambda step, loss: bars[-1].update(1)

    try:
        return finetune_for_video(model, frame0, read_first_mask(first_mask), work_dir,
                                  config=OnlineConfig(pairs=finetune["pairs"], epochs=finetune["epochs"]),
                                  on_object=on_object)
    finally:
        for bar in bars:
            bar.close()


def _run_semantic(args: argparse.Namespace, video: Path) -> int:
    from vidseg.inference.segment import segment_video, video_name
    from vidseg.models import load_model, make_predictor
    from vidseg.provenance import make_record, prepare_output_folder

    if args.first_mask is not None or args.finetune:
        from vidseg.errors import ConfigError

        raise ConfigError(f"--first-mask/--finetune apply to object models, not {args.model!r}")
    settings = settings_from_args(args.model, args, short_video="clamp")
    if args.tta and not settings.official_tta:
        print(f"note: --tta on {args.model} is vidseg's multi-scale test ({settings.tta_dataset} ratios + flip); "
              "the official code has no working one for this model")
    model = load_model(args.model, args.weights, num_classes=args.num_classes, strict=not args.partial_weights,
                       **settings.model_kwargs)
    model = prepare_from_args(model.to(args.device), args)  # BN folded (never trained here), --compile
    predictor = make_predictor(args.model, model, device=args.device, keep_images=args.overlay is not None,
                               backend=backend_from_args(args, model, args.model),
                               **settings.predictor_options(tta=args.tta))
    out_dir = Path(args.out) / video_name(video)
    record = make_record("segment", args.model, args.weights,
                         {"settings": settings.to_dict(), "tta": bool(args.tta), "num_classes": args.num_classes,
                          "partial_weights": bool(args.partial_weights)}, source=video)
    prepare_output_folder(out_dir, record, outputs=["*.png"], overwrite=args.overwrite)
    row = segment_video(predictor, video, out_dir,
                        overlay=Path(args.overlay) if args.overlay else None, fps=args.fps,
                        progress=not args.quiet, pipeline=not args.no_pipeline)
    _print_row(row, args.json, {"model": args.model, "mode": settings.mode, "tta": bool(args.tta),
                                "official_settings": settings.to_dict()})
    return 0
