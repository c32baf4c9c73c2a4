"""Optimizers and the papers' parameter groups.

``cffm`` (CFFM / SegFormer recipes, mmcv ``paramwise_cfg.custom_keys = {pos_block: decay 0, norm: decay 0,
head: lr x10}``): mmcv sorts the keys alphabetically, then by length (descending), i.e. ``pos_block, head, norm``,
and the FIRST key contained in a parameter's name wins. Hence every decode-head parameter, including its
LayerNorms and BatchNorms, gets lr x10 and keeps weight decay 0.01; only backbone norms get weight decay 0;
``pos_block`` matches nothing in MiT (spec models.md §2.5). We reproduce that outcome by module membership
(``backbone`` vs the rest) and normalisation layers, so it does not depend on how a head names its modules.

``tcb`` (TCB recipes): encoder lr x0.1, no weight decay on biases (BatchNorm weights keep it). The official
code builds its groups by iterating ``named_modules()`` and then ``named_parameters()`` recursively, which lists
each parameter once per ancestor module (2-5 times) and multiplies the effective lr/wd by that count under
torch 1.3 (spec models.md §1.6). We build clean groups, each parameter exactly once: a documented deviation.

``detectron2`` (Clip-PanoFCN, detectron2 ``build_optimizer`` defaults ``WEIGHT_DECAY_NORM 0``,
``BIAS_LR_FACTOR 1``, ``WEIGHT_DECAY_BIAS = WEIGHT_DECAY``): parameters of normalisation layers (GroupNorm here;
FrozenBN has none) get no weight decay, everything else the base lr and decay.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from vidseg.config import OptimConfig
from vidseg.errors import ConfigError

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_BACKBONE_NAMES = ("backbone", "encoder")


def _backbone_prefix(model: nn.Module) -> str:
    """Name of the model's backbone child module (``backbone`` or ``encoder``)."""
    children = dict(model.named_children())
    for name in _BACKBONE_NAMES:
        if name in children:
            return name + "."
    raise ConfigError(
        f"{type(model).__name__} has no 'backbone' or 'encoder' sub-module; the cffm/tcb parameter groups "
        "need one (use optim.param_groups=none)"
    )


def _named_params_with_module(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, nn.Module]]:
    """Each trainable parameter once, with its owning module."""
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            yield (f"{mod_name}.{p_name}" if mod_name else p_name), p, module


def _multipliers(recipe: str, name: str, module: nn.Module, backbone: str,
                 cfg: OptimConfig) -> tuple[float, float]:
    """(lr multiplier, weight-decay multiplier) of one parameter under ``recipe``."""
    if recipe == "cffm":
        if not name.startswith(backbone):
            return cfg.head_lr_mult, 1.0
        is_norm = isinstance(module, _NORM_TYPES) or "norm" in name
        return 1.0, 0.0 if is_norm else 1.0
    if recipe == "tcb":
        lr_mult = cfg.encoder_lr_mult if name.startswith(backbone) else 1.0
        return lr_mult, 0.0 if name.endswith("bias") else 1.0
    if recipe == "detectron2":
        return 1.0, 0.0 if isinstance(module, _NORM_TYPES) else 1.0
    return 1.0, 1.0


def build_param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Parameter groups for ``cfg.param_groups`` (``none``, ``cffm``, ``tcb``, ``detectron2``).

    Returns:
        a list of dicts with ``params``, ``lr``, ``weight_decay``, ``lr_mult``, ``decay_mult`` and ``names``,
        one per distinct (lr_mult, decay_mult); every trainable parameter appears exactly once.
    """
    recipe = cfg.param_groups
    backbone = _backbone_prefix(model) if recipe in ("cffm", "tcb") else ""
    groups: dict[tuple[float, float], dict] = {}
    for name, p, module in _named_params_with_module(model):
        lr_mult, decay_mult = _multipliers(recipe, name, module, backbone, cfg)
        g = groups.setdefault((lr_mult, decay_mult), {
            "params": [], "names": [], "lr": cfg.lr * lr_mult, "weight_decay": cfg.weight_decay * decay_mult,
            "lr_mult": lr_mult, "decay_mult": decay_mult,
        })
        g["params"].append(p)
        g["names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW over :func:`build_param_groups` (the ``names`` lists stay in the groups)."""
    groups = build_param_groups(model, cfg)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    raise ConfigError(f"optim.name: unknown optimizer {cfg.name!r} (use adamw or sgd)")
