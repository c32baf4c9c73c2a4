"""Adversarial-training helpers: the margin rule that pauses D or G, autocast-safe BCE, frozen-weight calls.

The margin rule is the balancing logic of STCNN's ``train_FramePred.py`` / ``train_JointModel.py`` (spec
models.md §5.3): after each iteration, with the discriminator losses ``err_real = BCE(D(x), 1)`` and
``err_fake = BCE(D(G(z)), 0)`` measured *before* that iteration's updates,

* if either loss is below ``margin`` (D is winning), stop updating D;
* if either loss is above ``1 - margin`` (D is losing), stop updating G;
* if both are stopped, re-enable both.

Example::

    rule = MarginRule(margin=0.3, update_d=True, update_g=False)   # joint training starts without G
    for batch in data:
        ...  # step D only if rule.update_d, G only if rule.update_g
        rule.observe(err_real, err_fake)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


@dataclass
class MarginRule:
    """The state machine of the official margin rule.

    Attributes:
        margin: 0.3 in both official scripts.
        update_d: whether D is updated in the coming iteration.
        update_g: whether G is updated in the coming iteration.
    """

    margin: float = 0.3
    update_d: bool = True
    update_g: bool = True

    def observe(self, err_real: float, err_fake: float) -> tuple[bool, bool]:
        """Apply the rule to this iteration's discriminator losses; returns the new (update_d, update_g)."""
        if err_fake < self.margin or err_real < self.margin:
            self.update_d = False
        if err_fake > 1.0 - self.margin or err_real > 1.0 - self.margin:
            self.update_g = False
        if not self.update_d and not self.update_g:
            self.update_d = self.update_g = True
        return self.update_d, self.update_g

    def state_dict(self) -> dict[str, float | bool]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, float | bool]) -> None:
        self.margin = float(state["margin"])
        self.update_d = bool(state["update_d"])
        self.update_g = bool(state["update_g"])


def bce_on_probabilities(prob: torch.Tensor, target: float) -> torch.Tensor:
    """``nn.BCELoss()(prob, full_like(prob, target))`` in float32, outside autocast (BCE on probabilities is
    not autocast-safe). prob: any shape, values in [0, 1]. Returns a scalar."""
    with torch.autocast(device_type=prob.device.type, enabled=False):
        p = prob.float()
        return F.binary_cross_entropy(p, torch.full_like(p, float(target)))


def call_with_frozen_weights(module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """``module(*inputs)`` with its parameters detached: gradients reach the inputs, never the module.

    Used for the generator's adversarial term so that one backward pass of (G loss + D loss) gives D only
    the gradient of its own loss (the official code runs two backward passes; DDP allows one per forward).
    Buffers (BatchNorm statistics) are the module's own and update as in a normal call.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, inputs, strict=False)
