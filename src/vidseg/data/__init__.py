"""Datasets in their official layouts, video input, clip sampling, clip-consistent transforms, synthetic data.

Readers (``VSPWDataset``, ``VIPSegRawDataset``, ``VIPSeg720Dataset``, ``DAVISDataset``) turn a dataset root into
per-video records with lazy ``load_frame`` / ``load_label``; ``open_video`` reads a video file or frame folder;
``build_sampler`` + a transform + ``ClipDataset`` make training clips; ``synth.generate`` writes benchmark
data in the official layouts. Names are imported on first use so ``import vidseg.data`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    # layouts and readers
    "VideoRecord": "layout", "detect_layout": "layout", "LAYOUTS": "layout",
    "VSPWDataset": "vspw", "VSPWVideo": "vspw", "vspw_raw_to_label": "vspw", "vspw_label_to_raw": "vspw",
    "VIPSegRawDataset": "vipseg", "VIPSegRawVideo": "vipseg", "VIPSeg720Dataset": "vipseg",
    "VIPSeg720Video": "vipseg", "vipseg_raw_to_panoptic": "vipseg", "panoptic_to_vipseg_raw": "vipseg",
    "DAVISDataset": "davis", "DAVISVideo": "davis",
    "open_video": "video", "VideoFile": "video", "FrameFolder": "video",
    # checking, statistics, conversion
    "check_path": "tools.check", "CheckReport": "tools.check", "dataset_stats": "tools.stats",
    "convert_vspw_480p": "tools.convert", "convert_vipseg_720p": "tools.convert", "SegmentIdAssigner": "tools.convert",
    # clips for training and inference
    "build_sampler": "sampling", "TCBSampler": "sampling", "CFFMSampler": "sampling",
    "ConsecutiveSampler": "sampling", "PreviousFramesSampler": "sampling", "SingleFrameSampler": "sampling",
    "ClipDataset": "dataset",
    "cffm_train_transform": "transforms", "tcb_train_transform": "transforms", "eval_transform": "transforms",
    # synthetic data
    "SyntheticVideo": "synth", "SynthConfig": "synth", "generate": "synth",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"vidseg.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vidseg.data' has no attribute {name!r}")
