"""``vidseg export``: write a registered model (or the per-frame step of a video model) as ONNX."""

from __future__ import annotations

import argparse
import sys
import time

from vidseg.cli.argtypes import add_partial_weights, add_quiet, nonnegative_float, positive_int
from vidseg.cli.test_options import add_test_arguments, settings_from_args

VSPW_FRAME = (480, 853)  # (H, W) of a VSPW 480p frame: the default frame whose official model input is traced

HELP = "Export a model to ONNX (image models whole; video models' per-frame step with --step), checked with onnxruntime."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name (see 'vidseg models')")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--weights", default=None, help="local checkpoint to load first (official layouts converted)")
    add_partial_weights(parser)
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
    add_quiet(parser)


def describe_graph(spec, size: tuple[int, int], num_classes: int) -> list[list[str]]:
    """What the exported graph takes and returns, in words (rows of the printed table)."""
    h, w = size
    image = f"'image': one normalised RGB frame, float32 [1, 3, {h}, {w}]"
    logits = f"'logits': class scores of that frame, float32 [1, {num_classes}, {h}, {w}] (argmax = class id)"
    if spec is None:
        return [["takes", image], ["returns", logits]]
    shapes = ", ".join("x".join(map(str, spec.leaf_shapes[j])) for j in spec.used_leaves)
    return [["takes", f"{image}; plus, for each of the {spec.num_supports} support frames of the clip, the "
                      f"{len(spec.used_leaves)} feature tensors this graph returned for that frame earlier "
                      f"('support<i>_<j>', shapes {shapes})"],
            ["returns", f"{logits}; plus the frame's own {len(spec.used_leaves)} feature tensors "
                        "('feature_<j>'), to be fed back as support inputs when later frames are segmented"]]


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
    say = (lambda text: None) if args.quiet else (lambda text: print(f"export {args.model}: {text}", file=sys.stderr,
                                                                     flush=True))
    say(f"tracing {'one streaming step' if args.step else 'the model'} at {size[0]}x{size[1]} (HxW) and writing "
        f"{args.out} ...")
    start = time.perf_counter()
    spec = export_onnx(model, args.out, step=args.step, image_size=size, opset=args.opset)
    say(f"written in {time.perf_counter() - start:.1f} s")
    scale = "x".join(map(str, settings.img_scale)) if settings.img_scale else "frame size"
    rows = [["file", args.out], ["size", f"{size[0]}x{size[1]}"], ["step", str(args.step)],
            ["input preprocessing", f"resize to {scale} keeping the ratio, then to multiples of "
                                    f"{settings.size_divisor}; {settings.normalization} normalisation"]]
    rows += describe_graph(spec, size, args.num_classes)
    if not args.no_check:
        say("checking the graph with onnxruntime against PyTorch ...")
        diff = check_onnx(model, args.out, step=args.step, image_size=size)
        rows.append(["max abs diff (onnxruntime)", f"{diff:.2e}"])
        if diff > args.tolerance:
            raise VidsegError(f"{args.out}: onnxruntime differs from PyTorch by {diff:.2e} > {args.tolerance}")
    print(format_table(rows, ["export", "value"]))
    return 0
