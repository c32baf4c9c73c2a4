"""``vidseg pseudo-label --weights A.pt B.pt --model NAME --data ROOT --out DIR [--threshold 0.5]``."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import add_partial_weights, fraction, positive_int
from vidseg.cli.backend_options import add_backend_arguments, threads_from_args
from vidseg.cli.test_options import add_test_arguments, settings_from_args

HELP = "STSC pseudo-labels: average several models' softmax, drop pixels under a threshold, write VSPW masks."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", nargs="+", required=True, help="model weight files (one per ensemble member)")
    add_partial_weights(parser)
    parser.add_argument("--model", nargs="+", required=True,
                        help="registered model name for all weights, or one name per weights file")
    parser.add_argument("--data", required=True, help="VSPW dataset root (holds data/ and the split files)")
    parser.add_argument("--split", default="test", help="split whose frames get pseudo-labels")
    parser.add_argument("--out", required=True, help="output folder (a VSPW-layout data set)")
    parser.add_argument("--threshold", type=fraction, default=0.5,
                        help="pixels whose averaged top probability is below this become ignore (255)")
    parser.add_argument("--num-classes", type=positive_int, default=124, help="number of classes of the models")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="builder keyword for every model (YAML value), e.g. --model-arg embed_dim=64; repeatable")
    add_test_arguments(parser)
    add_backend_arguments(parser, pipeline=False)


def run(args: argparse.Namespace) -> int:
    with threads_from_args(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import yaml

    from vidseg.cli.backend_options import backend_from_args, prepare_from_args
    from vidseg.engine.pseudo_label import generate_pseudo_labels, load_models, names_per_weights
    from vidseg.errors import ConfigError

    kwargs = {}
    for item in args.model_arg:
        if "=" not in item:
            raise ConfigError(f"--model-arg {item!r} must look like key=value")
        key, value = item.split("=", 1)
        kwargs[key.strip()] = yaml.safe_load(value)
    models = load_models(args.weights, args.model, args.num_classes, args.device, kwargs,
                         strict=not args.partial_weights)
    models = [prepare_from_args(m, args) for m in models]  # BN folded (never trained here), --compile
    names = names_per_weights(args.weights, args.model)
    settings = [settings_from_args(name, args) for name in names]
    if args.onnx is not None and len(models) > 1:
        raise ConfigError("--onnx names one graph; an ensemble of several models exports each on the fly "
                          "(leave out --onnx)")
    backends = [backend_from_args(args, model, name) for model, name in zip(models, names, strict=True)]
    s = generate_pseudo_labels(models, args.data, args.out, split=args.split, threshold=args.threshold,
                               settings=settings, tta=args.tta, backends=backends)
    print(f"{s.frames} frames of {s.videos} videos; {100 * s.kept_fraction:.1f}% of pixels kept; written to {s.out} "
          f"(train with --set data.pseudo_label_root={s.out})")
    return 0
