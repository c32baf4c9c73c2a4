"""The one registry of user-facing model names: ``vidseg.models.build(name, num_classes=124, **overrides)``.

The table is explicit (no import side effects): each name maps to the builder function that constructs it,
given as ``"module:function"`` and imported on first use, plus fixed keyword arguments, the task and the
paper it comes from. A builder takes keyword-only arguments and returns an ``nn.Module``.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from vidseg.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name."""

    builder: str  # "vidseg.models.<module>:<function>"
    kwargs: dict[str, Any] = field(default_factory=dict)
    task: str = "semantic"  # "backbone", "semantic", "video-semantic"
    paper: str = ""


_MIT = "vidseg.models.backbones.mit:build_mit"
_RESNET = "vidseg.models.backbones.resnet:build_resnet"
_SWIN = "vidseg.models.backbones.swin:build_swin"
_SEGFORMER = "vidseg.models.segformer:build_segformer"
_BASELINE = "vidseg.models.baselines:build_baseline"
_TCB = "vidseg.models.video.tcb:build_tcb"
_CFFM = "vidseg.models.video.cffm:build_cffm"
_STSC = "vidseg.models.video.stsc:build_stsc"

MODELS: dict[str, ModelEntry] = {
    # backbones
    **{f"mit_b{i}": ModelEntry(_MIT, {"variant": f"b{i}"}, "backbone", "SegFormer") for i in range(6)},
    "resnet50_deepstem_os8": ModelEntry(_RESNET, {"depth": 50}, "backbone", "VSPW (CSAIL ResNet)"),
    "resnet101_deepstem_os8": ModelEntry(_RESNET, {"depth": 101}, "backbone", "VSPW (CSAIL ResNet)"),
    **{f"swin_{s}": ModelEntry(_SWIN, {"variant": s}, "backbone", "Swin") for s in "tsbl"},
    # image baselines
    **{f"segformer_b{i}": ModelEntry(_SEGFORMER, {"variant": f"b{i}"}, "semantic", "SegFormer / VSPW")
       for i in range(6)},
    "pspnet_r101": ModelEntry(_BASELINE, {"head": "psp"}, "semantic", "VSPW Table 2"),
    "ocrnet_r101": ModelEntry(_BASELINE, {"head": "ocr"}, "semantic", "VSPW Table 2"),
    "deeplabv3plus_r101": ModelEntry(_BASELINE, {"head": "deeplabv3plus"}, "semantic", "VSPW Table 2"),
    "upernet_r101": ModelEntry(_BASELINE, {"head": "upernet"}, "semantic", "VSPW Table 2"),
    **{f"upernet_swin_{s}": ModelEntry(_BASELINE, {"head": "upernet", "backbone": f"swin_{s}"}, "semantic",
                                       "STSC baseline") for s in "tsbl"},
    # video models
    "tcb_ppm_r101": ModelEntry(_TCB, {"blend": "ppm"}, "video-semantic", "VSPW (TCB)"),
    "tcb_ocr_r101": ModelEntry(_TCB, {"blend": "ocr", "use_memory": False}, "video-semantic", "VSPW (TCB)"),
    "tcb_ocr_mem_r101": ModelEntry(_TCB, {"blend": "ocr", "use_memory": True}, "video-semantic", "VSPW (TCB)"),
    **{f"cffm_b{i}": ModelEntry(_CFFM, {"variant": f"b{i}"}, "video-semantic", "CFFM") for i in (0, 1, 2, 5)},
    **{f"stsc_upernet_swin_{s}": ModelEntry(_STSC, {"variant": s}, "video-semantic", "STSC") for s in "tsbl"},
}


def _resolve(builder: str):
    module_name, func_name = builder.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def available_models() -> list[str]:
    """All registered names, sorted."""
    return sorted(MODELS)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; unknown names raise :class:`ConfigError` with a suggestion."""
    try:
        return MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, MODELS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; 'vidseg models' lists them") from None


def build(name: str, num_classes: int = 124, **overrides: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`available_models`.
        num_classes: number of semantic classes (ignored by backbones).
        **overrides: keyword arguments passed on to the builder (they override the registry's).

    Returns:
        the model, on CPU, in training mode.
    """
    entry = get_entry(name)
    kwargs = {**entry.kwargs, **overrides}
    if entry.task != "backbone":
        kwargs["num_classes"] = num_classes
    return _resolve(entry.builder)(**kwargs)
