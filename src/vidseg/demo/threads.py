"""One torch thread for the demo parts' tiny networks (on a shared CPU more threads only add contention)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from vidseg.inference.runtime import torch_threads

F = TypeVar("F", bound=Callable[..., Any])


def single_threaded(fn: F) -> F:
    """Decorator: run ``fn`` with ``torch.set_num_threads(1)``, restoring the previous thread count afterwards."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch_threads(1):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
