"""Helpers shared by CLI commands: result tables and JSON output."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

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


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
