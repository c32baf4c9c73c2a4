"""The common shape of every evaluator: ``reset / process / evaluate`` plus a mergeable state.

An evaluator accumulates a few small tables (confusion matrices, per-window accuracies, per-object
scores). Its state is a plain picklable dict of numpy arrays and Python containers, so it can be sent
between processes: folder scoring runs one evaluator per worker and merges the states in a fixed
order (results never depend on the number of workers), and training under DDP gathers the states of
all ranks with :meth:`Evaluator.sync_distributed`.
"""

from __future__ import annotations

import abc
import copy
from typing import Any

from vidseg.errors import ConfigError

PROTOCOLS = ("official", "strict")


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` if it is ``official`` or ``strict``, else raise ConfigError."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol


class Evaluator(abc.ABC):
    """Base class: subclasses implement the five methods below.

    Contract:
        * ``reset()`` empties the state.
        * ``process(...)`` adds one unit of input (a frame, a video) to the state.
        * ``evaluate()`` returns a dict of final numbers (fractions in [0, 1]) without changing the state.
        * ``state_dict()`` returns the state as a picklable dict (small: tables, not images).
        * ``merge(state)`` adds another evaluator's ``state_dict()`` to this one. Merging is associative;
          states merged in the same order give bit-identical results.
    """

    @abc.abstractmethod
    def reset(self) -> None:
        """Empty the accumulated state."""

    @abc.abstractmethod
    def process(self, *args: Any, **kwargs: Any) -> None:
        """Accumulate one unit of input."""

    @abc.abstractmethod
    def evaluate(self) -> dict[str, Any]:
        """Final metrics from the accumulated state."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """A picklable copy of the accumulated state."""

    @abc.abstractmethod
    def merge(self, other_state: dict[str, Any]) -> None:
        """Add the state of another evaluator of the same configuration."""

    def clone_empty(self) -> Evaluator:
        """A new evaluator with the same configuration and an empty state."""
        other = copy.deepcopy(self)
        other.reset()
        return other

    def sync_distributed(self) -> None:
        """Under ``torch.distributed``, replace the state by the merge of all ranks' states (rank order).

        A no-op when torch.distributed is not initialised. Every rank ends with the same state.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, self.state_dict())
        self.reset()
        for state in states:
            self.merge(state)
