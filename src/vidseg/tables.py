"""Result output shared by the library and the CLI: aligned text tables, JSON files, ``HxW`` sizes."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from vidseg.errors import ConfigError
from vidseg.fileio import write_text_atomic


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Render rows as a plain aligned text table; floats print with 2 decimals."""

    def cell(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))) for r in cells]
    return "\n".join([line, sep, *body])


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN -> None, mapping keys as strings, tuples as lists and numpy/torch scalars as numbers."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return jsonable(obj.item())
    return obj


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def parse_size(text: str, what: str = "size", example: str = "480x853", minimum: int = 1) -> tuple[int, int]:
    """``"480x853"`` -> (480, 853): two integers >= ``minimum`` joined by ``x``, in the order written.

    Raises:
        ConfigError: naming ``what`` (the option) and ``example`` when ``text`` does not parse.
    """
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{what} must look like {example}, got {text!r}") from None
    if a < minimum or b < minimum:
        raise ConfigError(f"{what} must be at least {minimum}x{minimum}, got {text!r}")
    return a, b
