"""``vidseg train CONFIG [--set key=value ...] [--resume] [--out DIR]`` (also under ``torchrun -m vidseg``)."""

from __future__ import annotations

import argparse

HELP = "Train a recipe from configs/ (iteration-based; torchrun for several processes/GPUs; exact resume)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="recipe YAML, e.g. configs/cffm_b0_vspw.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (dotted path, YAML value), e.g. --set optim.lr=1e-4 "
                             "--set data.root=data/VSPW_480p --set smoke=true; repeatable")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint (last.pt or iter_*.pt) in the output folder")
    parser.add_argument("--out", default=None, help="run folder (default runs/<name>)")
    parser.add_argument("--no-eval", action="store_true", help="skip evaluation on the validation split")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    from vidseg.config import dump_config, load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from vidseg.engine.distributed import shutdown_distributed
    from vidseg.engine.run import train

    try:
        result = train(cfg, args.out, resume=args.resume, evaluate=not args.no_eval)
    finally:
        shutdown_distributed()
    if result.interrupted:
        print(f"interrupted at iteration {result.iteration}; checkpoint {result.checkpoint} "
              "(continue with --resume)")
        return 130
    if result.metrics:
        from vidseg.tables import format_table

        keys = [k for k in ("mIoU", "WIoU", "mVC8", "mVC16") if k in result.metrics]
        print(format_table([[cfg.name, *(100 * result.metrics[k] for k in keys)]], ["run", *keys]))
    print(f"done: {result.iteration} iterations; checkpoint {result.checkpoint}")
    return 0
