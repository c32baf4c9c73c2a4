"""``vidseg predict {vspw,vipseg,davis}``: a whole split through a model into the official submission layout.

Argument parsing only (:func:`vidseg.engine.predict.run_predict`). Works under
``torchrun --nproc_per_node N -m vidseg predict ...`` (videos split across ranks by frame count; rank 0 merges
and scores; the files equal a one-process run's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidseg.cli.argtypes import add_partial_weights
from vidseg.cli.backend_options import (
    add_backend_arguments,
    check_compile,
    check_torch_only,
    threads_from_args,
)
from vidseg.cli.test_options import add_test_arguments, settings_from_args

HELP = ("Predict every video of a VSPW, VIPSeg or DAVIS split into the official submission layout "
        "(resumable, torchrun-parallel), optionally scored with an HTML report.")
EPILOG = ("Layouts: vspw OUT/<video>/<frame>.png (class ids 0..123); vipseg OUT/pan_pred/<video>/<frame>.png "
          "(RGB ids) + OUT/pred.json; davis OUT/<sequence>/<frame>.png (object ids, DAVIS palette). "
          "--eval writes OUT/metrics.json and OUT/report.html.")
TEST_OPTIONS = ("img_scale", "size_divisor", "normalization", "mode", "short_video", "tta_dataset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=["vspw", "vipseg", "davis"], help="dataset layout of ROOT")
    parser.add_argument("--root", required=True, help="dataset root (VIPSeg: the 720P conversion for --eval)")
    parser.add_argument("--split", default="val", help="split: ROOT/<split>.txt (DAVIS: ImageSets/<year>/<split>.txt)")
    parser.add_argument("--davis-year", default="2017", choices=["2016", "2017"], help="DAVIS image set and scoring")
    parser.add_argument("--model", required=True, help="registered model name (see 'vidseg models')")
    parser.add_argument("--weights", default=None, help="local checkpoint (official layouts are converted); "
                                                        "without it the model has random weights")
    add_partial_weights(parser)
    parser.add_argument("--out", required=True, help="output folder (the submission layout)")
    parser.add_argument("--eval", action="store_true",
                        help="score the folder as 'vidseg eval' does; writes OUT/metrics.json and OUT/report.html")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of a folder made by another model, weights or options "
                             "(by default refused; the same run resumes)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cuda: one GPU per process (LOCAL_RANK under torchrun)")
    add_test_arguments(parser)
    add_backend_arguments(parser)
    parser.add_argument("--json", default=None, help="also write the per-rank summary (and metrics) to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _settings(args: argparse.Namespace):
    from vidseg.errors import ConfigError
    from vidseg.models import get_entry

    if get_entry(args.model).task == "semantic":
        return settings_from_args(args.model, args)
    check_torch_only(args, args.model, get_entry(args.model).task)
    given = [f"--{k.replace('_', '-')}" for k in TEST_OPTIONS if getattr(args, k, None) is not None]
    given += ["--tta"] if args.tta else []
    if given:
        raise ConfigError(f"{', '.join(given)} do(es) not apply to the {get_entry(args.model).task} model "
                          f"{args.model!r}")
    return None


def run(args: argparse.Namespace) -> int:
    with threads_from_args(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from vidseg.engine.predict import PredictRequest, run_predict
    from vidseg.tables import format_table, write_json

    req = PredictRequest(args.benchmark, Path(args.root), args.split, args.model, args.weights, Path(args.out),
                         settings=_settings(args), tta=bool(args.tta), evaluate=bool(args.eval), device=args.device,
                         davis_year=args.davis_year, strict_weights=not args.partial_weights,
                         overwrite=bool(args.overwrite), progress=not args.quiet, backend=args.backend,
                         onnx=args.onnx, onnx_cache=args.onnx_cache, pipeline=not args.no_pipeline,
                         compile=check_compile(args))
    result = run_predict(req)
    if not _is_main():
        return 0
    rows = [[r["rank"], r["videos"], r["frames"], r["written"], r["skipped"], r["seconds"], r["fps"]]
            for r in result["ranks"]]
    print(format_table(rows, ["rank", "videos", "frames", "written", "skipped", "seconds", "frames/s"]))
    metrics = result["metrics"]
    if metrics is not None:
        from vidseg.inference.predict_report import headline

        head = headline(args.benchmark, metrics)
        print(format_table([[round(100 * v, 2) for v in head.values()]], list(head)))
        print(f"report: {Path(args.out) / 'report.html'}")
    if args.json:
        write_json(args.json, result)
    return 0


def _is_main() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0
