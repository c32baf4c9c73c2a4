"""``vidseg export``: write a registered model (or the per-frame step of a video model) as ONNX."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import nonnegative_float, positive_int
from vidseg.cli.test_options import add_test_arguments, settings_from_args

VSPW_FRAME = (480, 853)  # (H, W) of a VSPW 480p frame: the default frame whose official model input is traced

HELP = "Export a model to ONNX (image models whole; video models' per-frame step with --step), checked with onnxruntime."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name (see 'vidseg models')")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--weights", default=None, help="local checkpoint to load first (official layouts converted)")
    parser.add_argument("--partial-weights", action="store_true",
                        help="load the tensors of --weights that match the model and warn about the rest (e.g. a "
                             "backbone-only checkpoint); by default any missing or unexpected tensor is an error")
    parser.add_argument("--step", action="store_true",
                        help="export one streaming step of a video model: image + cached support features -> "
                             "logits + the frame's features")
    parser.add_argument("--size", default=None, metavar="HxW",
                        help="model input size the graph is traced at; default: the model's official input for a "
                             "480x853 frame (e.g. CFFM 480x864, SegFormer 512x928, TCB 480x853)")
    add_test_arguments(parser, clips=False)
    parser.add_argument("--num-classes", type=positive_int, default=124, help="classes of the model")
    parser.add_argument("--opset", type=positive_int, default=17, help="ONNX opset version")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    parser.add_argument("--tolerance", type=nonnegative_float, default=1e-4, help="largest accepted abs difference of outputs")


def run(args: argparse.Namespace) -> int:
    from vidseg.errors import VidsegError
    from vidseg.export import check_onnx, export_onnx
    from vidseg.inference.tta import variant_size
    from vidseg.models import load_model
    from vidseg.tables import format_table, parse_size

    settings = settings_from_args(args.model, args)
    if args.size is not None:
        size = parse_size(args.size, "--size", "480x853 (HxW)")
    else:
        size = variant_size(VSPW_FRAME, 1.0, settings.img_scale, settings.size_divisor)
    model = load_model(args.model, args.weights, num_classes=args.num_classes, strict=not args.partial_weights,
                       **settings.model_kwargs).eval()
    spec = export_onnx(model, args.out, step=args.step, image_size=size, opset=args.opset)
    scale = "x".join(map(str, settings.img_scale)) if settings.img_scale else "frame size"
    rows = [["file", args.out], ["size", f"{size[0]}x{size[1]}"], ["step", str(args.step)],
            ["input preprocessing", f"resize to {scale} keeping the ratio, then to multiples of "
                                    f"{settings.size_divisor}; {settings.normalization} normalisation"]]
    if spec is not None:
        rows.append(["support inputs", f"{spec.num_supports} x {len(spec.used_leaves)} tensors"])
    if not args.no_check:
        diff = check_onnx(model, args.out, step=args.step, image_size=size)
        rows.append(["max abs diff (onnxruntime)", f"{diff:.2e}"])
        if diff > args.tolerance:
            raise VidsegError(f"{args.out}: onnxruntime differs from PyTorch by {diff:.2e} > {args.tolerance}")
    print(format_table(rows, ["export", "value"]))
    return 0
