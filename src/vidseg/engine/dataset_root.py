"""Where a training recipe's data lives: ``data.root``, or a synthetic set generated once beside the run."""

from __future__ import annotations

import os
from pathlib import Path

from vidseg.config import TrainConfig
from vidseg.data.synth import generate_cached
from vidseg.errors import ConfigError


def dataset_root(cfg: TrainConfig, out_dir: str | os.PathLike, kind: str, what: str) -> Path:
    """The dataset root of a recipe.

    Args:
        cfg: the training config; ``data.dataset: synthetic`` selects the generated set.
        out_dir: the run folder; synthetic sets are generated (once) under ``out_dir/data_cache``.
        kind: synthetic layout to generate: ``"vspw"``, ``"vipseg"`` or ``"davis"``.
        what: what ``data.root`` should name, for the error when it is unset.

    Returns:
        ``data.root``, or the root of the synthetic set of ``kind`` that ``cfg.data`` describes.
    """
    d = cfg.data
    if d.dataset == "synthetic":
        w, h = d.synthetic_size
        return generate_cached(kind, Path(out_dir) / "data_cache", videos=d.synthetic_videos,
                               frames=d.synthetic_frames, size=(h, w), seed=cfg.seed)
    if d.root is None:
        raise ConfigError(f"data.root is not set ({what}); use --set data.root=PATH, data.dataset=synthetic or "
                          "smoke=true")
    return Path(d.root)
