"""vidseg.metrics: pure metric functions and evaluators (reset / process / evaluate / state_dict / merge).

Submodules are imported lazily: ``confusion``, ``vc``, ``tc``, ``vspw``, ``davis``, ``davis_t``,
``youtube_objects`` (and the VIPSeg modules ``vpq``, ``stq``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Evaluator": "vidseg.metrics.evaluator",
    "VSPWEvaluator": "vidseg.metrics.vspw",
    "evaluate_vspw_folder": "vidseg.metrics.vspw",
    "TCEvaluator": "vidseg.metrics.tc",
    "DAVISEvaluator": "vidseg.metrics.davis_folder",
    "evaluate_davis_folder": "vidseg.metrics.davis_folder",
    "YouTubeObjectsEvaluator": "vidseg.metrics.youtube_objects",
    "evaluate_youtube_objects_folder": "vidseg.metrics.youtube_objects",
    "VIPSegEvaluator": "vidseg.metrics.vipseg_eval",
    "evaluate_vipseg_folder": "vidseg.metrics.vipseg_eval",
    "STQAccumulator": "vidseg.metrics.stq",
    "PanopticCategories": "vidseg.metrics.vpq",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidseg.metrics' has no attribute {name!r}")
