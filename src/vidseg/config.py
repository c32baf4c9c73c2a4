"""Typed training configurations: dataclasses, YAML in/out, strict keys and ``--set key=value`` overrides.

A recipe is one flat YAML file (no inheritance) whose sections mirror :class:`TrainConfig`::

    name: cffm_b0_vspw
    model: {name: cffm_b0, num_classes: 124}
    data: {dataset: vspw, root: data/VSPW_480p, crop_size: 480, batch_size: 8}
    optim: {name: adamw, lr: 6.0e-05, weight_decay: 0.01, param_groups: cffm}
    schedule: {max_iters: 160000, warmup_iters: 1500, power: 1.0}

Unknown keys raise :class:`vidseg.errors.ConfigError` with "did you mean" suggestions (``difflib``), values are
converted to the field's declared type (``"1e-4"`` -> float, ``"true"`` -> bool, ``"[1, 2]"`` -> tuple) and a
wrong type is an error, never silently kept. ``--set optim.lr=1e-4`` overrides use dotted paths.

Example::

    cfg = load_config("configs/cffm_b0_vspw.yaml", overrides=["smoke=true", "optim.lr=1e-4"])
    print(dump_config(cfg))
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidseg.errors import ConfigError
from vidseg.fileio import write_text_atomic


@dataclass
class ModelConfig:
    """Which registered model to build (``vidseg.models.build``).

    Attributes:
        name: a name from ``vidseg models`` (e.g. ``cffm_b0``, ``tcb_ppm_r101``, ``segformer_b0``).
        num_classes: semantic classes (VSPW: 124).
        pretrained: local ImageNet weights for the backbone/encoder (file or Hugging Face folder), or None.
        weights: local weights of the whole model to start from (fine-tuning), or None.
        kwargs: extra keyword arguments for the model builder (e.g. loss weights, reduced sizes).
    """

    name: str = "segformer_b0"
    num_classes: int = 124
    pretrained: str | None = None
    weights: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Training / validation data.

    Attributes:
        dataset: ``vspw`` (official layout under ``root``) or ``synthetic`` (generated into the run folder);
            STCNN stages: ``davis``, ``frame_folders`` (ImageNet-VID style) or ``image_masks`` (saliency pairs).
        root: dataset root; None with ``dataset: vspw`` is an error unless ``smoke`` is set.
        train_split / val_split: split files (``train.txt`` / ``val.txt``).
        pseudo_label_root: a folder written by ``vidseg pseudo-label`` whose frames are added to training (STSC).
        crop_size: square training crop.
        scale_range: random resize ratio range (relative to ``base_size``), one draw per clip.
        base_size: (width, height) the image is resized into before the random ratio (CFFM ``img_scale``).
        flip_prob: horizontal flip probability, shared by the clip.
        reverse_prob: probability of reversing the video's frame order before sampling (both papers: 0.5).
        batch_size: clips per optimisation step, over all processes and accumulation steps.
        num_workers: DataLoader workers per process.
        val_max_videos: evaluate on at most this many validation videos during training (0 = all).
        synthetic_videos / synthetic_frames / synthetic_size: size of the generated data set (smoke / demo).
        short_edges: panoptic (VIPSeg) recipes: candidate short edges of detectron2's ResizeShortestEdge
            (one drawn per clip).
        max_size: panoptic recipes: longest allowed long edge after that resize.
        clip_length: panoptic recipes: consecutive frames per training clip (Clip-PanoFCN ``TRAIN_CLIPNUM``).
    """

    dataset: str = "vspw"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    pseudo_label_root: str | None = None
    crop_size: int = 480
    scale_range: tuple[float, float] = (0.5, 2.0)
    base_size: tuple[int, int] = (853, 480)
    flip_prob: float = 0.5
    reverse_prob: float = 0.5
    batch_size: int = 8
    num_workers: int = 4
    val_max_videos: int = 0
    synthetic_videos: int = 8
    synthetic_frames: int = 20
    synthetic_size: tuple[int, int] = (96, 64)
    short_edges: tuple[int, ...] = (608, 748, 806, 864, 922, 980, 1036, 1094, 1152, 1206, 1267, 1324, 1382, 1440)
    max_size: int = 4096
    clip_length: int = 3


@dataclass
class OptimConfig:
    """Optimizer and parameter groups.

    Attributes:
        name: ``adamw`` or ``sgd`` (``adam``: STCNN frame-prediction stage).
        lr: base learning rate.
        weight_decay: base weight decay.
        momentum: SGD momentum.
        betas: AdamW betas.
        param_groups: ``none`` (one group), ``cffm`` (decode head lr x ``head_lr_mult`` keeping weight decay,
            backbone norms without decay: mmcv's first-match rule), ``tcb`` (encoder lr x ``encoder_lr_mult``,
            no decay on biases) or ``detectron2`` (no decay on normalisation layers).
        head_lr_mult: learning-rate multiplier of the head (``cffm``).
        encoder_lr_mult: learning-rate multiplier of the encoder (``tcb``).
        grad_clip: gradient clipping threshold (0 = off).
        grad_clip_type: ``norm`` (the global gradient norm) or ``value`` (every element to
            [-grad_clip, grad_clip], detectron2's ``CLIP_TYPE: value``).
    """

    name: str = "adamw"
    lr: float = 6e-5
    weight_decay: float = 0.01
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    param_groups: str = "none"
    head_lr_mult: float = 10.0
    encoder_lr_mult: float = 0.1
    grad_clip: float = 0.0
    grad_clip_type: str = "norm"


@dataclass
class ScheduleConfig:
    """Iteration-based poly schedule with linear warm-up (mmcv ``PolyLrUpdaterHook`` semantics).

    Attributes:
        max_iters: total optimisation steps.
        warmup_iters: linear warm-up length (0 = none).
        warmup_ratio: learning-rate factor at iteration 0 of the warm-up.
        power: poly exponent (CFFM 1.0, TCB 0.9).
        min_lr: floor of the poly decay.
    """

    max_iters: int = 160000
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    power: float = 1.0
    min_lr: float = 0.0


@dataclass
class LossConfig:
    """Loss weights and reduction; passed to the model builder as keyword arguments when they differ from None.

    Attributes:
        frame_weight: weight of the per-frame CE on all clip frames (CFFM 0.5).
        target_weight: weight of the target-frame CE (1.0).
        aux_weight: deep-supervision weight (TCB 0.4).
        stcl_weight: weight of STSC's spatial-temporal contrastive loss (0.2).
        reduction: ``official`` (each family's loss formed as its official code: mmseg 0.x mean over all
            pixels for CFFM / SegFormer / Swin-UperNet / STSC, the VSPW code's NLL of upsampled log-probabilities
            per DataParallel chunk for TCB and the ResNet baselines) or ``valid`` (mean over the labelled pixels
            of each process's batch); None = the model's default (official). See docs/training.md ("Losses").
    """

    frame_weight: float | None = None
    target_weight: float | None = None
    aux_weight: float | None = None
    stcl_weight: float | None = None
    reduction: str | None = None


@dataclass
class StcnnConfig:
    """STCNN training stages (``stage != "none"``; docs/training.md "STCNN stages", spec models.md §5).

    Attributes:
        stage: ``none`` (not an STCNN recipe), ``framepred``, ``segbranch``, ``joint`` or ``online``.
        frame_nums: delta, the previous frames of the temporal input (3-6).
        input_size: (H, W) clips are resized to (framepred 480x854, joint 400x710; ignored by segbranch, which
            crops ``data.crop_size``, and online, which keeps the frame size).
        generator_relu: framepred: train the released generator layout (decoder ReLUs) instead of the ReLU-free
            decoder of the joint model.
        discriminator: ``inception_v3`` (official) or ``small`` (CPU).
        beta: weight of the adversarial term of the generator loss.
        margin: the margin rule's threshold (0.3).
        lr_g: generator Adam learning rate in the joint stage (framepred uses ``optim.lr``).
        lr_d: discriminator Adam learning rate.
        gan_weight_decay: weight decay of the adversarial Adam optimisers.
        update_g_at_start: whether G is updated from the first step (joint: false).
        pretrained_resnet: torchvision ResNet-101 weights for the encoders (framepred, segbranch).
        generator_weights / segbranch_weights: stage-1 / stage-2 weights for the joint stage.
        discriminator_weights: D's initial weights (torchvision Inception-v3 or a stage-1 discriminator).
        sequence: online: the DAVIS sequence whose first frame is dreamed (default: first of ``data.val_split``).
        dream_pairs: online: lucid-dream pairs (100).
    """

    stage: str = "none"
    frame_nums: int = 4
    input_size: tuple[int, int] = (400, 710)
    generator_relu: bool = False
    discriminator: str = "inception_v3"
    beta: float = 0.001
    margin: float = 0.3
    lr_g: float = 1e-8
    lr_d: float = 1e-4
    gan_weight_decay: float = 5e-4
    update_g_at_start: bool = True
    pretrained_resnet: str | None = None
    generator_weights: str | None = None
    segbranch_weights: str | None = None
    discriminator_weights: str | None = None
    sequence: str | None = None
    dream_pairs: int = 100


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        name: recipe name (used for the output folder).
        seed: global seed; each rank and iteration derives its own.
        deterministic: request deterministic kernels (``torch.use_deterministic_algorithms``).
        device: ``auto`` (cuda if available, else cpu), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where the device computes it natively, else
            fp32; :mod:`vidseg.engine.precision`).
        channels_last: use channels-last memory format for the model and inputs.
        sync_bn: convert BatchNorm to SyncBatchNorm under multi-process CUDA training.
        grad_accum: micro-batches accumulated per optimisation step.
        checkpoint_every: save a resumable checkpoint every N iterations (0 = only at the end).
        keep_checkpoints: how many periodic checkpoints to keep besides ``last.pt``.
        eval_every: evaluate on the validation split every N iterations (0 = only at the end, -1 = never).
        log_every: log scalars every N iterations.
        smoke: shrink everything (tiny crop, few iterations, synthetic data if no root) for a CPU check.
        model / data / optim / schedule / loss / stcnn: the sections above.
    """

    name: str = "run"
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    sync_bn: bool = True
    grad_accum: int = 1
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2
    eval_every: int = 0
    log_every: int = 20
    smoke: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stcnn: StcnnConfig = field(default_factory=StcnnConfig)


_CHOICES: dict[str, tuple[str, ...]] = {
    "device": (),  # free-form, checked by the engine
    "precision": ("fp32", "bf16", "auto"),
    "data.dataset": ("vspw", "synthetic", "davis", "frame_folders", "image_masks", "vipseg"),
    "optim.name": ("adamw", "sgd", "adam"),
    "optim.param_groups": ("none", "cffm", "tcb", "detectron2"),
    "optim.grad_clip_type": ("norm", "value"),
    "stcnn.stage": ("none", "framepred", "segbranch", "joint", "online"),
    "stcnn.discriminator": ("inception_v3", "small"),
    "loss.reduction": ("official", "valid"),
}


# ----------------------------------------------------------------------------------------------------------
# value conversion
# ----------------------------------------------------------------------------------------------------------

def _parse_scalar_text(text: str) -> Any:
    """Parse a ``--set`` value with YAML rules (``1e-4``, ``true``, ``[1, 2]``, ``null``)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _convert_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, (int, float)):
        return float(value)
    raise ConfigError(f"{where}: expected a number, got {value!r}")


def _convert_int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value)) if float(value).is_integer() else int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if isinstance(value, int):
        return value
    raise ConfigError(f"{where}: expected an integer, got {value!r}")


def _convert_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _convert_tuple(value: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        value = _parse_scalar_text(value)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)} ({value!r})")
    return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))


def _convert_optional(value: Any, args: tuple[Any, ...], where: str) -> Any:
    if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
        return None
    (inner,) = [a for a in args if a is not type(None)]
    return _convert(value, inner, where)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise :class:`ConfigError` naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _convert_optional(value, typing.get_args(tp), where)
    if origin is tuple:
        return _convert_tuple(value, typing.get_args(tp), where)
    if origin is dict:
        if isinstance(value, str):
            value = _parse_scalar_text(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        return _convert_bool(value, where)
    if tp is int:
        return _convert_int(value, where)
    if tp is float:
        return _convert_float(value, where)
    if tp is str:
        if isinstance(value, (Mapping, list, tuple)) or value is None:
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if tp is Any:
        return value
    raise ConfigError(f"{where}: unsupported field type {tp!r}")  # pragma: no cover - a programming error


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown_key(key: str, known: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    section = f" in section '{where}'" if where else ""
    return ConfigError(f"unknown config key {key!r}{section}{hint}; known keys: {', '.join(known)}")


# counts and sizes that must be at least this (checked on load and on --set, naming the key)
_MINIMUM: dict[str, int] = {
    "data.batch_size": 1, "data.crop_size": 1, "data.num_workers": 0, "grad_accum": 1, "schedule.max_iters": 1,
    "data.synthetic_videos": 1, "data.synthetic_frames": 1, "keep_checkpoints": 0,
}


def _check_choice(path: str, value: Any) -> None:
    minimum = _MINIMUM.get(path)
    if minimum is not None and isinstance(value, int) and value < minimum:
        raise ConfigError(f"{path}: must be >= {minimum}, got {value}")
    choices = _CHOICES.get(path)
    if choices and value is not None and value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(choices)}{hint}")


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, strictly: unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"section '{prefix or '<top>'}' must be a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in hints:
            raise _unknown_key(str(key), names, prefix.rstrip("."))
        path = f"{prefix}{key}"
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value if value is not None else {}, f"{path}.")
        else:
            kwargs[key] = _convert(value, tp, path)
            _check_choice(path, kwargs[key])
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists), suitable for YAML/JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def apply_override(cfg: TrainConfig, item: str) -> TrainConfig:
    """Apply one ``key=value`` override (dotted key, YAML value) and return the new config."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.lr=1e-4)")
    key, text = item.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    obj: Any = cfg
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(obj)]
        if part not in names:
            raise _unknown_key(part, names, ".".join(parts[:depth]))
        if depth < len(parts) - 1:
            obj = getattr(obj, part)
            if not dataclasses.is_dataclass(obj):
                raise ConfigError(f"override {key!r}: {'.'.join(parts[:depth + 1])} is not a section")
    tp = _hints(type(obj))[parts[-1]]
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"override {key!r}: cannot set a whole section, set its keys (e.g. {key}.name=...)")
    value = _convert(_parse_scalar_text(text), tp, key)
    _check_choice(key, value)
    setattr(obj, parts[-1], value)
    return cfg


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a recipe YAML (or start from defaults when ``path`` is None) and apply ``key=value`` overrides.

    Raises:
        ConfigError: unknown keys (with suggestions), wrong types, invalid choices, unreadable YAML.
    """
    import yaml

    data: Mapping[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"{p}: invalid YAML ({first})") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{p}: top level must be a mapping of config keys")
        try:
            cfg = from_dict(TrainConfig, data)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
    else:
        cfg = TrainConfig()
    for item in overrides:
        cfg = apply_override(cfg, item)
    cfg.__dict__[_EXPLICIT] = tuple(overrides)  # not a field: never dumped, survives copy.deepcopy
    return cfg


_EXPLICIT = "_explicit_overrides"


def reapply_explicit_overrides(cfg: TrainConfig) -> TrainConfig:
    """Apply again the ``key=value`` overrides ``cfg`` was loaded with (except ``smoke``).

    Derived settings (``smoke: true`` shrinking a recipe) call this last, so values the user set explicitly on
    the same command line win over them.
    """
    for item in cfg.__dict__.get(_EXPLICIT, ()):
        if item.split("=", 1)[0].strip() != "smoke":
            cfg = apply_override(cfg, item)
    return cfg


def dump_config(cfg: TrainConfig) -> str:
    """YAML text of ``cfg`` (every key, in declaration order); ``load_config`` reads it back equal."""
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML atomically."""

    write_text_atomic(path, dump_config(cfg))


def config_from_yaml_text(text: str) -> TrainConfig:
    """Parse a YAML string (e.g. the copy stored in a checkpoint) strictly."""
    import yaml

    return from_dict(TrainConfig, yaml.safe_load(text) or {})
