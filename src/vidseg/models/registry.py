"""The one registry of user-facing model names, and the one place that knows each model.

``vidseg.models.load_model(name, weights=None, **kw)`` builds any registered model and loads local weights
(our layout, or the official layout of its family through the entry's converter); ``build(name)`` only builds.

The table is explicit (no import side effects). Each :class:`ModelEntry` states everything the rest of the
library needs to know about a name: the builder (``"module:function"``, imported on first use) and its fixed
keyword arguments, the family, the task, the checkpoint converter, the test-time frame rule, the training clip
rule and augmentation, and the predictor factory. Nothing else dispatches on model names.
"""

from __future__ import annotations

import difflib
import importlib
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from vidseg.errors import ConfigError, DataError
from vidseg.models.checkpoint import load_state_dict, read_state_dict, strip_prefix

TASKS = ("backbone", "semantic", "panoptic", "object")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name.

    Attributes:
        builder: ``"vidseg.models.<module>:<function>"``, a keyword-only builder returning an ``nn.Module``.
        kwargs: fixed keyword arguments of this name (user overrides win).
        family: the method, e.g. ``"segformer"``, ``"cffm"``, ``"tcb"``, ``"stsc"``, ``"baseline"``, ``"mit"``.
        task: ``"backbone"``, ``"semantic"``, ``"panoptic"`` or ``"object"``.
        video: True for models that read support frames (listed as ``video-<task>``).
        converter: ``"module:function"`` mapping an official checkpoint's state dict to ours, or None.
        test_rule: the test-time clip rule, a key of :data:`vidseg.inference.rules.RULES` (``build`` sets it
            as ``model.test_rule``).
        train_clips: the training clip sampler (``"single"``, ``"cffm"``, ``"tcb"``, ``"stsc"``; see
            :func:`vidseg.engine.build.clip_sampler`).
        augment: the training augmentation (``"segformer"``: keep-ratio resize, crop, flip, photometric;
            ``"resnet"``: flip, scales {0.8, 1, 1.5, 2}, crop).
        predictor: ``"module:Class"`` of the streaming predictor (``cls(model, **options)``).
        test: ``"module:NAME"`` of the official test settings (:class:`vidseg.inference.settings.InferenceSettings`:
            test scale, size divisor, normalisation, clip mode, TCB's short-video rule, memory, TTA ratios) that
            ``segment``, ``pseudo-label`` and ``export`` use unless overridden; :func:`official_settings` reads it.
        classes_kwarg: the builder keyword that receives ``num_classes`` (None: the builder takes none, e.g.
            backbones, or a family whose class counts are fixed in ``kwargs``).
        paper: where the model comes from.
    """

    builder: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    family: str = "baseline"
    task: str = "semantic"
    video: bool = False
    converter: str | None = None
    test_rule: str = "offsets"
    train_clips: str = "single"
    augment: str = "segformer"
    predictor: str = "vidseg.inference.predictor:VideoPredictor"
    test: str = "vidseg.inference.settings:PLAIN_TEST"
    classes_kwarg: str | None = "num_classes"
    paper: str = ""

    @property
    def listed_task(self) -> str:
        """The task as ``vidseg models`` shows it: ``video-semantic`` for video models."""
        return f"video-{self.task}" if self.video else self.task


_MIT = "vidseg.models.backbones.mit:build_mit"
_RESNET = "vidseg.models.backbones.resnet:build_resnet"
_SWIN = "vidseg.models.backbones.swin:build_swin"
_SEGFORMER = "vidseg.models.segformer:build_segformer"
_BASELINE = "vidseg.models.baselines:build_baseline"
_TCB = "vidseg.models.video.tcb:build_tcb"
_CFFM = "vidseg.models.video.cffm:build_cffm"
_STSC = "vidseg.models.video.stsc:build_stsc"
_NVLABS = "vidseg.models.convert_segformer:convert_segformer_checkpoint"  # NVlabs / mmseg SegFormer, CFFM
_CSAIL = "vidseg.models.convert_tcb:convert_tcb_checkpoint"  # official TCB / CSAIL ResNet layouts
_TEST = "vidseg.inference.settings:"  # + the name of an InferenceSettings there (official test pipelines)
_STCNN_SMALL = {"layers": (2, 2, 2, 2), "width": 16, "fpn_dim": 64, "ppm_dim": 64}  # CPU variant, 4.3M params


def _backbone(builder: str, kwargs: dict[str, Any], family: str, paper: str, converter: str | None = None
              ) -> ModelEntry:
    return ModelEntry(builder, kwargs, family=family, task="backbone", converter=converter, classes_kwarg=None,
                      paper=paper)


def _r101(head: str) -> ModelEntry:
    return ModelEntry(_BASELINE, {"head": head}, converter=_CSAIL if head in ("psp", "ocr") else None,
                      augment="resnet", test=_TEST + "VSPW_IMAGE_TEST", paper="VSPW Table 2")


def _tcb(kwargs: dict[str, Any]) -> ModelEntry:
    test = _TEST + ("TCB_MEM_TEST" if kwargs.get("use_memory") else "TCB_TEST")
    return ModelEntry(_TCB, kwargs, family="tcb", video=True, converter=_CSAIL, test_rule="tcb", train_clips="tcb",
                      augment="resnet", test=test, paper="VSPW (TCB)")


def _panofcn_entry(builder: str, test_rule: str, predictor: str, paper: str) -> ModelEntry:
    """A Clip-PanoFCN-family entry (58 thing + 66 stuff classes, official converter, consecutive training clips);
    ``builder`` names a function of ``models.panoptic.clip_panofcn``, ``predictor`` a ``module:Class`` of
    ``vidseg.inference``; clips of 3 test as ``PANOFCN_TEST``, frame by frame as ``PANOFCN_FRAMES_TEST``."""
    return ModelEntry(f"vidseg.models.panoptic.clip_panofcn:{builder}", {"num_thing": 58, "num_stuff": 66},
                      family="clip_panofcn", task="panoptic", video=True,
                      converter="vidseg.models.convert_panofcn:convert_clip_panofcn_checkpoint",
                      test_rule=test_rule, train_clips="consecutive", predictor=f"vidseg.inference.{predictor}",
                      test=_TEST + ("PANOFCN_FRAMES_TEST" if test_rule == "frames" else "PANOFCN_TEST"),
                      classes_kwarg=None, paper=paper)


MODELS: dict[str, ModelEntry] = {
    # backbones
    **{f"mit_b{i}": _backbone(_MIT, {"variant": f"b{i}"}, "mit", "SegFormer", _NVLABS) for i in range(6)},
    "resnet50_deepstem_os8": _backbone(_RESNET, {"depth": 50}, "resnet", "VSPW (CSAIL ResNet)"),
    "resnet101_deepstem_os8": _backbone(_RESNET, {"depth": 101}, "resnet", "VSPW (CSAIL ResNet)"),
    **{f"swin_{s}": _backbone(_SWIN, {"variant": s}, "swin", "Swin") for s in "tsbl"},
    # image baselines
    **{f"segformer_b{i}": ModelEntry(_SEGFORMER, {"variant": f"b{i}"}, family="segformer", converter=_NVLABS,
                                     test=_TEST + "SEGFORMER_ADE_TEST", paper="SegFormer / VSPW") for i in range(6)},
    "pspnet_r101": _r101("psp"),
    "ocrnet_r101": _r101("ocr"),
    "deeplabv3plus_r101": _r101("deeplabv3plus"),
    "upernet_r101": _r101("upernet"),
    **{f"upernet_swin_{s}": ModelEntry(_BASELINE, {"head": "upernet", "backbone": f"swin_{s}"},
                                       paper="STSC baseline") for s in "tsbl"},
    # video models
    "tcb_ppm_r101": _tcb({"blend": "ppm"}),
    # TCB-PPM on the MiT-B0 encoder: the demo's temporal model (vidseg demo; no official checkpoint exists)
    "tcb_ppm_b0": replace(_tcb({"blend": "ppm", "encoder": "mit_b0"}), converter=None,
                          paper="TCB-PPM on MiT-B0 (vidseg demo model)"),
    "tcb_ocr_r101": _tcb({"blend": "ocr", "use_memory": False}),
    # the released model's memory rule (official FIFO of 8 contexts), so an official checkpoint runs as released
    "tcb_ocr_mem_r101": _tcb({"blend": "ocr", "use_memory": True, "memory": "official"}),
    # vidseg's variant: one exponential-moving-average memory per video (not the released behaviour)
    "tcb_ocr_mem_ema_r101": replace(_tcb({"blend": "ocr", "use_memory": True, "memory": "ema"}),
                                    test=_TEST + "TCB_TEST", paper="TCB (vidseg EMA memory variant)"),
    **{f"cffm_b{i}": ModelEntry(_CFFM, {"variant": f"b{i}"}, family="cffm", video=True, converter=_NVLABS,
                                test_rule="cffm", train_clips="cffm", test=_TEST + "CFFM_TEST", paper="CFFM")
       for i in (0, 1, 2, 5)},
    **{f"stsc_upernet_swin_{s}": ModelEntry(_STSC, {"variant": s}, family="stsc", video=True, train_clips="stsc",
                                            paper="STSC") for s in "tsbl"},
    # video object segmentation (docs/stcnn.md); test rule: the previous delta frames (official table)
    **{name: ModelEntry("vidseg.models.vos.stcnn:build_stcnn", kwargs, family="stcnn", task="object", video=True,
                        converter="vidseg.models.convert_stcnn:convert_stcnn_checkpoint",
                        test_rule="previous_frames", train_clips="previous_frames",
                        predictor="vidseg.inference.vos:StcnnVosPredictor", test=_TEST + "STCNN_TEST",
                        classes_kwarg=None, paper="STCNN (Xu et al., CVPR 2019)")
       for name, kwargs in (("stcnn_r101", {}), ("stcnn_small", _STCNN_SMALL))},
    # video panoptic segmentation (VIPSeg): clips of 3 frames, inter-clip tracking (docs/training.md)
    "clip_panofcn_r50": _panofcn_entry("build_clip_panofcn", "clips", "panoptic:PanopticVideoPredictor",
                                       "VIPSeg (Clip-PanoFCN)"),
    # the same network run frame by frame (PanopticFCN), things linked by IoU + Hungarian association (VIPSeg §3.4.1)
    "panofcn_r50": _panofcn_entry("build_clip_panofcn", "frames", "panoptic_assoc:AssociatedFramePredictor",
                                  "VIPSeg (PanopticFCN baseline)"),
    # CPU variant for tests, smoke training and the demo: ResNet (1,1,1,1) width 16, 64-wide heads, 1.46M params
    "clip_panofcn_tiny": _panofcn_entry("build_tiny_clip_panofcn", "clips", "panoptic:PanopticVideoPredictor",
                                        "VIPSeg (Clip-PanoFCN), small"),
}


def resolve(target: str) -> Any:
    """The object named by ``"module:attribute"`` (imported on first use)."""
    module_name, func_name = target.split(":")
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
        num_classes: number of classes, passed as the entry's ``classes_kwarg`` (ignored when that is None).
        **overrides: keyword arguments passed on to the builder (they override the registry's).

    Returns:
        the model, on CPU, in training mode.
    """
    entry = get_entry(name)
    kwargs = {**entry.kwargs, **overrides}
    if entry.classes_kwarg is not None:
        kwargs[entry.classes_kwarg] = num_classes
    model = resolve(entry.builder)(**kwargs)
    if entry.task != "backbone":
        model.test_rule = entry.test_rule
    return model


def checkpoint_spec(weights: str | os.PathLike) -> dict[str, Any] | None:
    """What a checkpoint written by vidseg says about its model: ``{"name", "num_classes", "kwargs"}``, or None.

    vidseg training checkpoints (``vidseg-train-v1``, e.g. ``last.pt`` of ``vidseg train`` or ``vidseg demo``)
    store their config; its ``model`` section names the registered model, its class count and the builder
    overrides (a narrower demo model, another encoder). Other files (official checkpoints, plain weights) give None.
    """
    path = Path(weights)
    if not path.is_file() or path.suffix not in (".pt", ".pth", ".ckpt"):
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not ours; read_state_dict reports unreadable files
        return None
    if not isinstance(obj, dict) or not str(obj.get("format", "")).startswith("vidseg-") or not obj.get("config"):
        return None
    try:
        model = (yaml.safe_load(obj["config"]) or {}).get("model") or {}
    except yaml.YAMLError:
        return None
    if not isinstance(model, dict) or not model.get("name"):
        return None
    return {"name": str(model["name"]), "num_classes": int(model.get("num_classes", 124)),
            "kwargs": dict(model.get("kwargs") or {})}


def _with_spec(name: str, weights: str | os.PathLike, num_classes: int | None,
               overrides: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Class count and builder overrides of ``name``, completed from the checkpoint's own record."""
    spec = checkpoint_spec(weights)
    if spec is None:
        return (124 if num_classes is None else num_classes), overrides
    if spec["name"] in MODELS and get_entry(spec["name"]).builder != get_entry(name).builder:
        raise DataError(weights, f"checkpoint of model {spec['name']}, not {name}: use --model {spec['name']}")
    return (spec["num_classes"] if num_classes is None else num_classes), {**spec["kwargs"], **overrides}


def load_model(name: str, weights: str | os.PathLike | None = None, *, num_classes: int | None = None,
               strict: bool = True, **overrides: Any) -> nn.Module:
    """Build a registered model and load local weights: our layout, or its family's official layout.

    The entry's converter is applied when the checkpoint's keys are not the model's own. By default every model
    tensor must be filled and every checkpoint tensor used: weights of another model never load silently.

    Args:
        name: a registered name.
        weights: local checkpoint (.pth / .safetensors / Hugging Face folder), or None for random weights. A
            checkpoint written by vidseg rebuilds its own model: its recorded builder overrides and class count
            apply (explicit ``overrides``/``num_classes`` win), see :func:`checkpoint_spec`.
        num_classes: classes of the model (None: the checkpoint's, else 124).
        strict: reject missing and unexpected keys (the default). ``strict=False`` is partial loading (e.g. a
            backbone-only checkpoint; the CLI's ``--partial-weights``): what matches is loaded, the rest is
            reported in a warning; at least one tensor must match.
        **overrides: builder keyword arguments (override the entry's).

    Returns:
        the model, on CPU, in training mode.

    Raises:
        DataError: unreadable weights, or keys that do not match the model (the message names the file, the
            model and the first keys).
    """
    entry = get_entry(name)
    if weights is None:
        return build(name, num_classes=124 if num_classes is None else num_classes, **overrides)
    num_classes, overrides = _with_spec(name, weights, num_classes, overrides)
    model = build(name, num_classes=num_classes, **overrides)
    state = strip_prefix(read_state_dict(weights))
    if entry.converter is not None and not set(model.state_dict()) <= set(state):
        try:
            state = resolve(entry.converter)(state)
        except DataError as err:  # a converter does not know the file: name it here
            raise DataError(weights, err.problem) from None
    report = load_state_dict(model, state, source=weights)
    if strict and (report.missing or report.unexpected):
        raise DataError(weights, f"weights do not match model {name}: {report.summary()} (weights of another "
                                 "model? --partial-weights loads what matches, e.g. a backbone-only checkpoint)")
    if report.loaded == 0:
        raise DataError(weights, f"no tensor of the checkpoint matches model {name}: {report.summary()}")
    if report.missing or report.unexpected:
        warnings.warn(f"{weights}: partial weights for {name}: {report.summary()}", stacklevel=2)
    return model


def official_settings(name: str) -> Any:
    """The official test settings of a registered model (:class:`vidseg.inference.settings.InferenceSettings`)."""
    return resolve(get_entry(name).test)


def make_predictor(name: str, model: nn.Module, **options: Any) -> Any:
    """The streaming predictor of a registered model: the entry's ``predictor`` class with ``options``.

    Raises:
        ConfigError: ``name`` is a backbone (it has no segmentation head to predict with).
    """
    entry = get_entry(name)
    if entry.task == "backbone":
        raise ConfigError(f"model {name!r} is a backbone (no segmentation head); choose a semantic, panoptic or "
                          "object model from 'vidseg models'")
    return resolve(entry.predictor)(model, **options)
