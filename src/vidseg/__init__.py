"""vidseg: video segmentation toolkit (VSPW, VIPSeg, DAVIS): models, metrics, training, streaming inference.

Importing ``vidseg`` is cheap and has no side effects: sub-packages (``vidseg.data``, ``vidseg.models``,
``vidseg.metrics``, ``vidseg.inference``, ``vidseg.engine``, ``vidseg.viz``) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from vidseg.errors import ConfigError, DataError, VidsegError
from vidseg.structures import Clip, ClipBatch

__version__ = "0.1.0"

_SUBMODULES = ("data", "models", "metrics", "flow", "engine", "inference", "annotate", "viz", "categories")

__all__ = ["Clip", "ClipBatch", "ConfigError", "DataError", "VidsegError", "__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"vidseg.{name}")
    raise AttributeError(f"module 'vidseg' has no attribute {name!r}")
