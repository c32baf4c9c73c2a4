"""Turn a recipe with an ``stcnn`` section into the stage module, its training data, step hook and evaluation.

The four recipes (``configs/stcnn_{framepred,segbranch,joint_davis16,online}.yaml``) differ in
``stcnn.stage``; :mod:`vidseg.engine.stcnn_stages` documents what each stage trains and how.

Weights flow between the stages as the official ``initialize_*`` functions do, through the converters of
:mod:`vidseg.models.convert_stcnn`:

* framepred: ``stcnn.pretrained_resnet`` (torchvision ResNet-101, conv1 tiled delta times) -> generator encoder;
  ``stcnn.discriminator_weights`` (torchvision Inception-v3, fc dropped) -> D;
* segbranch: ``stcnn.pretrained_resnet`` -> spatial encoder;
* joint: ``stcnn.generator_weights`` (stage 1 ``model_final.pt`` or the official NetG) -> temporal branch,
  ``stcnn.segbranch_weights`` (stage 2) -> spatial branch, ``stcnn.discriminator_weights`` (stage 1 D) -> D;
* online: ``model.weights`` (stage 3 ``model_final.pt`` or the official joint checkpoint) -> STCNN.

``model.kwargs`` sizes the networks (``layers``, ``width``, ``fpn_dim``, ``ppm_dim``); the default is the
official ResNet-101 model. ``smoke: true`` switches to the tiny variant on generated DAVIS data.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from vidseg.config import TrainConfig, reapply_explicit_overrides
from vidseg.data.davis import DAVISDataset, scan_davis
from vidseg.data.stcnn_data import (
    DreamClips,
    FramePredClips,
    ImageMaskPairs,
    JointClips,
    frame_folders,
    image_mask_pairs,
)
from vidseg.engine.dataset_root import dataset_root
from vidseg.engine.distributed import barrier, init_distributed
from vidseg.engine.stcnn_stages import (
    FramePredStage,
    JointStage,
    OnlineStage,
    SegBranchStage,
    StageModule,
    StcnnStepHook,
)
from vidseg.engine.trainer import Trainer, TrainResult, seed_everything, set_deterministic
from vidseg.errors import ConfigError, DataError
from vidseg.models.checkpoint import (
    load_state_dict,
    load_weights,
    read_state_dict,
    save_weights,
    strip_prefix,
)
from vidseg.models.convert_stcnn import (
    convert_inception_imagenet,
    convert_netd,
    generator_to_joint_pred,
    seg_branch_to_joint,
    torchvision_resnet_to_encoder,
)
from vidseg.models.vos.discriminator import build_discriminator
from vidseg.models.vos.frame_pred import build_frame_pred_net
from vidseg.models.vos.seg_branch import build_seg_branch
from vidseg.models.vos.stcnn import build_stcnn

TINY_KWARGS = {"layers": [1, 1, 1, 1], "width": 8, "fpn_dim": 16, "ppm_dim": 16}
_SIZE_KEYS = ("layers", "width", "fpn_dim", "ppm_dim")


def is_stcnn(cfg: TrainConfig) -> bool:
    """Whether the recipe trains an STCNN stage."""
    return cfg.stcnn.stage != "none"


def apply_stcnn_smoke(cfg: TrainConfig) -> TrainConfig:
    """A copy shrunk for a CPU check: tiny networks, small discriminator, 48x64 inputs, 2 steps of 2 clips per process,
    generated DAVIS data (and image/mask pairs cut from it) when no root is set."""
    cfg = copy.deepcopy(cfg)
    cfg.model.kwargs = {**cfg.model.kwargs, **TINY_KWARGS}
    cfg.model.weights = None
    s = cfg.stcnn
    s.frame_nums = 3
    s.discriminator = "small"
    s.pretrained_resnet = s.generator_weights = s.segbranch_weights = s.discriminator_weights = None
    s.input_size = (48, 64)
    s.dream_pairs = 4
    cfg.data.crop_size = 48
    cfg.data.batch_size = 2 * int(os.environ.get("WORLD_SIZE", "1"))  # 2 per process (BN in D needs 2)
    cfg.data.num_workers = 0
    if cfg.data.root is None:
        cfg.data.dataset = "synthetic"
        cfg.data.synthetic_videos, cfg.data.synthetic_frames, cfg.data.synthetic_size = 3, 8, (64, 48)
    cfg.schedule.max_iters = 2
    cfg.schedule.warmup_iters = 0
    cfg.grad_accum = 1
    cfg.checkpoint_every = 0
    cfg.keep_checkpoints = 0
    cfg.eval_every = -1
    cfg.log_every = 1
    cfg.device = "cpu" if cfg.device == "auto" else cfg.device
    return reapply_explicit_overrides(cfg)  # explicit --set values win over the smoke sizes


# ----------------------------------------------------------------------------------------------------------
# networks
# ----------------------------------------------------------------------------------------------------------

def _sizes(cfg: TrainConfig, *keys: str) -> dict[str, Any]:
    unknown = sorted(set(cfg.model.kwargs) - set(_SIZE_KEYS))
    if unknown:
        raise ConfigError(f"model.kwargs: {unknown} not understood by the STCNN stages (use {list(_SIZE_KEYS)})")
    out = {k: cfg.model.kwargs[k] for k in keys if k in cfg.model.kwargs}
    if "layers" in out:
        out["layers"] = tuple(out["layers"])
    return out


def _discriminator(cfg: TrainConfig) -> nn.Module:
    name = cfg.stcnn.discriminator
    try:
        disc = build_discriminator(name)
    except ValueError as exc:
        raise ConfigError(f"stcnn.discriminator: {exc}") from None
    path = cfg.stcnn.discriminator_weights
    if path:
        state = strip_prefix(read_state_dict(path))
        converter = convert_inception_imagenet if any(k.startswith("fc.") for k in state) else convert_netd
        load_state_dict(disc, converter(state), source=path)
    return disc


def _load_resnet(encoder: nn.Module, path: str | None, frame_nums: int | None) -> None:
    if path:
        state = torchvision_resnet_to_encoder(strip_prefix(read_state_dict(path)), frame_nums=frame_nums)
        load_state_dict(encoder, state, source=path)


def _load_partial(model: nn.Module, path: str | None, converter: Any) -> None:
    if path:
        state, _report = converter(strip_prefix(read_state_dict(path)))
        load_state_dict(model, state, source=path)


def build_stage_module(cfg: TrainConfig) -> StageModule:
    """The stage's trainable module with its initial weights (module docstring)."""
    s, stage, delta = cfg.stcnn, cfg.stcnn.stage, cfg.stcnn.frame_nums
    if stage == "framepred":
        gen = build_frame_pred_net(frame_nums=delta, relu=s.generator_relu, **_sizes(cfg, "layers", "width"))
        _load_resnet(gen.encoder, s.pretrained_resnet, delta)
        module: StageModule = FramePredStage(generator=gen, discriminator=_discriminator(cfg), beta=s.beta)
        exported = gen
    elif stage == "segbranch":
        branch = build_seg_branch(**_sizes(cfg, *_SIZE_KEYS))
        _load_resnet(branch.encoder, s.pretrained_resnet, None)
        module, exported = SegBranchStage(branch=branch), branch
    else:
        model = build_stcnn(frame_nums=delta, **_sizes(cfg, *_SIZE_KEYS))
        _load_partial(model, s.generator_weights, generator_to_joint_pred)
        _load_partial(model, s.segbranch_weights, seg_branch_to_joint)
        exported = model
        module = OnlineStage(model=model) if stage == "online" else \
            JointStage(model=model, discriminator=_discriminator(cfg), beta=s.beta)
    if cfg.model.weights:
        load_weights(exported, cfg.model.weights, strict=True)
    return module


_OPTIMIZER = {"framepred": "adam", "segbranch": "sgd", "joint": "sgd", "online": "sgd"}
_DATASETS = {"framepred": ("davis", "frame_folders", "synthetic"), "segbranch": ("image_masks", "synthetic"),
             "joint": ("davis", "synthetic"), "online": ("davis", "synthetic")}


def check_recipe(cfg: TrainConfig) -> None:
    """Refuse optimiser / dataset kinds the stage does not use (one-line ConfigError)."""
    stage = cfg.stcnn.stage
    if cfg.optim.name != _OPTIMIZER[stage]:
        raise ConfigError(f"optim.name={cfg.optim.name!r}: the STCNN {stage} stage uses {_OPTIMIZER[stage]!r}")
    if cfg.data.dataset not in _DATASETS[stage]:
        raise ConfigError(f"data.dataset={cfg.data.dataset!r}: the STCNN {stage} stage reads one of "
                          f"{', '.join(_DATASETS[stage])}")


def build_step_hook(cfg: TrainConfig) -> StcnnStepHook:
    """The stage's optimisers and margin rule from ``optim`` (main SGD / generator Adam) and ``stcnn``."""
    check_recipe(cfg)
    s, o = cfg.stcnn, cfg.optim
    return StcnnStepHook(s.stage, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum, lr_g=s.lr_g,
                         lr_d=s.lr_d, gan_weight_decay=s.gan_weight_decay, margin=s.margin,
                         update_g_at_start=s.update_g_at_start)


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------

def stcnn_data_root(cfg: TrainConfig, out_dir: str | os.PathLike) -> Path:
    """``data.root``, or the generated synthetic DAVIS data set."""
    return dataset_root(cfg, out_dir, "davis", "STCNN stages: a DAVIS root, a folder of frame folders or of "
                        "image/mask pairs")


def _synthetic_pairs(root: Path) -> list[tuple[Path, Path]]:
    """Image/mask pairs from a generated DAVIS root (every annotated frame), for smoke runs of stage 2."""
    videos, _ = scan_davis(root, 2016, None)
    return [(v.frames[i], v.masks[i]) for v in videos for i in range(len(v)) if v.masks[i] is not None]


def _first_frame(cfg: TrainConfig, root: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(frame 0, object ids, sequence name) of ``stcnn.sequence`` (default: the first val sequence)."""
    dataset = DAVISDataset(root, 2017 if (root / "ImageSets" / "2017").is_dir() else 2016, cfg.data.val_split)
    names = [v.name for v in dataset.videos]
    name = cfg.stcnn.sequence or names[0]
    if name not in names:
        raise DataError(root, f"stcnn.sequence {name!r} is not in split {cfg.data.val_split!r}")
    video = dataset.videos[names.index(name)]
    image, ids = video.load_sample(0)
    return image, ids, name


def build_stage_dataset(cfg: TrainConfig, out_dir: str | os.PathLike) -> Any:
    """The stage's training clips (:mod:`vidseg.data.stcnn_data`)."""
    root = stcnn_data_root(cfg, out_dir)
    stage, delta, size = cfg.stcnn.stage, cfg.stcnn.frame_nums, tuple(cfg.stcnn.input_size)
    if stage == "framepred":
        return FramePredClips(frame_folders(root, None), delta, size)
    if stage == "segbranch":
        pairs = _synthetic_pairs(root) if cfg.data.dataset == "synthetic" else image_mask_pairs(root)
        return ImageMaskPairs(pairs, crop=cfg.data.crop_size)
    if stage == "joint":
        videos, problems = scan_davis(root, 2016, cfg.data.train_split, single_object=True)
        if problems:
            raise problems[0]
        return JointClips(videos, delta, size)
    image, ids, name = _first_frame(cfg, root)
    return DreamClips(image, ids, delta, count=cfg.stcnn.dream_pairs, seed=cfg.seed, name=f"{root}/{name}")


def train_stcnn(cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool | str = False) -> TrainResult:
    """One STCNN stage through :class:`vidseg.engine.trainer.Trainer` (DDP, bf16, resume, progress bar).

    Writes ``model_final.pt`` (the stage's network without the discriminator) and, for the adversarial
    stages, ``discriminator_final.pt`` into ``out_dir``.
    """
    if cfg.smoke:
        cfg = apply_stcnn_smoke(cfg)
    check_recipe(cfg)
    out = Path(out_dir)
    if cfg.data.dataset != "synthetic":
        stcnn_data_root(cfg, out)  # a missing root is reported before anything heavy happens
    info = init_distributed(cfg.device)
    set_deterministic(cfg.deterministic)
    if info.is_main:
        stcnn_data_root(cfg, out)  # generate synthetic data once, before the other ranks read it
    barrier()
    seed_everything(cfg.seed)
    module = build_stage_module(cfg)
    trainer = Trainer(cfg, module, build_stage_dataset(cfg, out), out_dir=out, dist_info=info,
                      step_hook=build_step_hook(cfg))
    result = trainer.fit(resume=resume)
    if info.is_main and not result.interrupted:
        save_weights(module.exported(), out / "model_final.pt")
        if isinstance(module, (FramePredStage, JointStage)):
            save_weights(module.discriminator, out / "discriminator_final.pt")
    return result
