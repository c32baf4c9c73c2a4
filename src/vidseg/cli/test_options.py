"""Test-time options shared by ``segment``, ``pseudo-label`` and ``export``: each defaults to the model's official
test settings (its registry entry's :class:`vidseg.inference.settings.InferenceSettings`) and overrides one field.

The choices are written out here so that building the parser imports nothing heavy; ``tests/cli`` checks they
equal the library's (``NORMALIZATIONS``, ``MODES``, ``SHORT_VIDEO_RULES``, ``TTA_SCALES``).
"""

from __future__ import annotations

import argparse
from typing import Any

from vidseg.cli.argtypes import positive_int

NORMALIZATION_CHOICES = ("mmseg", "torchvision", "detectron2")
MODE_CHOICES = ("online", "offline")
SHORT_VIDEO_CHOICES = ("clamp", "wrap")
TTA_DATASET_CHOICES = ("ade20k", "cityscapes", "vspw")
OFFICIAL = "default: the model's official test setting ('vidseg models --json' shows it)"


def add_test_arguments(parser: argparse.ArgumentParser, *, clips: bool = True) -> None:
    """``--img-scale``, ``--size-divisor``, ``--normalization`` and (with ``clips``) ``--mode``, ``--short-video``,
    ``--tta``, ``--tta-dataset``; every default is the model's official one."""
    parser.add_argument("--img-scale", default=None, metavar="HxW",
                        help="keep-ratio test resize bound, e.g. 480x853 (HxW; the long frame edge is fitted to the "
                             "larger number and the short edge to the smaller, so 853x480 is the same bound), or "
                             f"'none' for frames as they are; {OFFICIAL}")
    parser.add_argument("--size-divisor", type=positive_int, default=None,
                        help=f"second resize: stretch the input to multiples of this (1: none); {OFFICIAL}")
    parser.add_argument("--normalization", default=None, choices=NORMALIZATION_CHOICES,
                        help=f"mmseg: (x - mean) / std on 0..255; torchvision: x / 255 first (TCB); detectron2: "
                             f"x - mean, std 1 (Clip-PanoFCN); {OFFICIAL}")
    if not clips:
        return
    parser.add_argument("--mode", default=None, choices=MODE_CHOICES,
                        help=f"online: past frames only; offline: future frames too (TCB's test rule); {OFFICIAL}")
    parser.add_argument("--short-video", default=None, choices=SHORT_VIDEO_CHOICES,
                        help="TCB offline, supports before frame 0: clamp to frame 0, or wrap to the end of the "
                             "video like the official loader (which fails under 9 frames)")
    parser.add_argument("--tta", action="store_true",
                        help="multi-scale + flip test with the official --aug-test ratios of --tta-dataset; for "
                             "CFFM it is vidseg's own (the official CFFM aug_test does not run)")
    parser.add_argument("--tta-dataset", default=None, choices=TTA_DATASET_CHOICES,
                        help=f"whose --aug-test ratios --tta uses: vspw 0.5-1.75, ade20k 0.75-1.25, cityscapes "
                             f"0.5-2.0; {OFFICIAL}")


def settings_from_args(model: str, args: argparse.Namespace, *, short_video: str | None = None) -> Any:
    """The model's official :class:`~vidseg.inference.settings.InferenceSettings` with the user's options applied.

    Args:
        model: registered model name.
        args: parsed arguments of :func:`add_test_arguments`.
        short_video: the command's own default for ``--short-video`` (``segment``: ``"clamp"`` for user videos);
            None keeps the official one.
    """
    from dataclasses import replace

    from vidseg.models import official_settings
    from vidseg.tables import parse_size

    settings = official_settings(model)
    img_scale = getattr(args, "img_scale", None)
    if img_scale is not None:
        scale = None if img_scale.lower() == "none" else parse_size(img_scale, "--img-scale", "853x480 or none")
        settings = replace(settings, img_scale=scale)
    return settings.with_overrides(
        size_divisor=getattr(args, "size_divisor", None), normalization=getattr(args, "normalization", None),
        mode=getattr(args, "mode", None), tta_dataset=getattr(args, "tta_dataset", None),
        short_video=getattr(args, "short_video", None) or short_video)
