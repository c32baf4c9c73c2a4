"""The synthetic data generator: in-memory videos (:mod:`.video`), drawn scenes (:mod:`.scene`, :mod:`.appearance`)
and whole datasets written in the official layouts (:mod:`.writer`, ``vidseg synth``)."""

from vidseg.data.synth.video import (
    DEFAULT_STUFF,
    DEFAULT_THINGS,
    KINDS,
    SynthConfig,
    SyntheticVideo,
    iter_frames,
    plan_video,
    video_name,
)
from vidseg.data.synth.writer import (
    SynthSummary,
    davis_mask,
    davis_targets,
    generate,
    generate_cached,
    parse_size,
    split_videos,
    vipseg_instance_lut,
    vipseg_raw_mask,
    vspw_raw_mask,
)

__all__ = [
    "DEFAULT_STUFF", "DEFAULT_THINGS", "KINDS", "SynthConfig", "SynthSummary", "SyntheticVideo", "davis_mask",
    "davis_targets", "generate", "generate_cached", "iter_frames", "parse_size", "plan_video", "split_videos", "video_name",
    "vipseg_instance_lut", "vipseg_raw_mask", "vspw_raw_mask",
]
