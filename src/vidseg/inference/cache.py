"""A bounded per-frame cache (ring buffer keyed by frame index) for streaming inference.

Entries are added as frames arrive and dropped once no later target can need them; the predictor calls
:meth:`FrameCache.evict_before` with the oldest index a future clip may still use. ``peak`` records the
largest number of entries held at once, so tests and benchmarks can check that memory stays bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class FrameCache:
    """Values keyed by increasing frame index, evicted from the oldest end.

    Args:
        capacity: hard upper bound on the entries; adding beyond it raises (a bug in the caller's
            eviction, never a silent growth of memory).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[int, Any] = OrderedDict()
        self.peak = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, index: int) -> bool:
        return index in self._items

    def __getitem__(self, index: int) -> Any:
        return self._items[index]

    def get(self, index: int, default: Any = None) -> Any:
        return self._items.get(index, default)

    def put(self, index: int, value: Any) -> None:
        """Store ``value`` for frame ``index`` (replacing an existing entry)."""
        if index not in self._items and len(self._items) >= self.capacity:
            raise RuntimeError(f"frame cache full ({self.capacity} entries) while adding frame {index}; "
                               f"held: {list(self._items)}")
        self._items[index] = value
        self.peak = max(self.peak, len(self._items))

    def evict_before(self, index: int) -> None:
        """Drop every entry of a frame before ``index``."""
        for key in [k for k in self._items if k < index]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()

    def keys(self) -> list[int]:
        return list(self._items)
