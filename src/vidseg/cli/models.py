"""``vidseg models``: list the registered models with their parameter counts, task and paper."""

from __future__ import annotations

import argparse

from vidseg.cli.argtypes import add_quiet, positive_int

HELP = ("List the registered models (name, parameters, task, paper, official test input); --json prints the list "
        "as JSON with each model's official test settings.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="write the list as JSON (name, params, task, paper, official test settings) to FILE; "
                             "without FILE (or with -) print it instead of the table")
    parser.add_argument("--out", help=argparse.SUPPRESS)  # older spelling of --json FILE
    parser.add_argument("--task", default=None,
                        choices=["backbone", "semantic", "video-semantic", "video-panoptic", "video-object"],
                        help="only the models of this task")
    parser.add_argument("--num-classes", type=positive_int, default=124, help="classes used when counting parameters")
    add_quiet(parser)


def count_parameters(name: str, num_classes: int = 124) -> int:
    """Parameters of a registered model, built on the meta device (no memory, no initialisation cost).

    Falls back to a CPU build for a model whose construction needs real tensors.
    """
    import torch

    from vidseg.models import build

    try:
        with torch.device("meta"):
            model = build(name, num_classes=num_classes)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        model = build(name, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters())


def model_table(task: str | None = None, num_classes: int = 124, progress: bool = True) -> list[dict]:
    """``[{"name", "params", "task", "paper", "test"}]`` for the registered models (optionally one task); ``test``
    is the official test settings (:meth:`vidseg.inference.settings.InferenceSettings.to_dict`)."""
    from tqdm import tqdm

    from vidseg.models.registry import MODELS, available_models, official_settings

    names = [n for n in available_models() if task is None or MODELS[n].listed_task == task]
    rows = []
    for name in tqdm(names, desc="counting parameters", disable=not progress, leave=False):
        entry = MODELS[name]
        rows.append({"name": name, "params": count_parameters(name, num_classes), "task": entry.listed_task,
                     "paper": entry.paper, "test": official_settings(name).to_dict()})
    return rows


def test_input(test: dict) -> str:
    """One line for a model's official test settings, e.g. ``853x480/32 mmseg online``."""
    scale = "x".join(str(v) for v in test["img_scale"]) if test["img_scale"] else "native"
    divisor = f"/{test['size_divisor']}" if test["size_divisor"] > 1 else ""
    extra = f" short-video {test['short_video']}" if test["short_video"] != "clamp" else ""
    return f"{scale}{divisor} {test['normalization']} {test['mode']}{extra}"


def run(args: argparse.Namespace) -> int:
    import json

    from vidseg.tables import format_table

    to_stdout = args.json == "-"
    rows = model_table(args.task, args.num_classes, progress=not (args.quiet or to_stdout))
    for path in {p for p in (args.out, args.json) if p and p != "-"}:
        from vidseg.fileio import write_text_atomic

        write_text_atomic(path, json.dumps(rows, indent=2) + "\n")
    if to_stdout:
        print(json.dumps(rows, indent=2))
    else:
        table = [[r["name"], f"{r['params']:,}", f"{r['params'] / 1e6:.2f}M", r["task"], r["paper"],
                  test_input(r["test"])] for r in rows]
        print(format_table(table, ["name", "params", "M", "task", "paper", "official test input"]))
    return 0
