"""Training logs: a JSON-lines file (always), TensorBoard (when installed) and a tqdm progress bar.

Only the main process writes. ``metrics.jsonl`` has one object per logged step, e.g.
``{"iter": 20, "loss": 1.23, "lr": 5.9e-05, "loss/target": 0.8, "time/iter": 0.41}``, and one per evaluation
(``{"iter": 2000, "eval/mIoU": ...}``); the demo draws its training curves from it.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from vidseg.errors import DataError, DiskFullError
from vidseg.fileio import write_text_atomic


class MetricLogger:
    """Scalar logging for the main process (no-op elsewhere).

    Args:
        out_dir: run folder; ``metrics.jsonl`` and ``tb/`` go there.
        enabled: False on non-main ranks.
        tensorboard: write TensorBoard event files if ``torch.utils.tensorboard`` imports.
    """

    def __init__(self, out_dir: str | os.PathLike, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard is an optional extra
                    SummaryWriter = None  # noqa: N806
                if SummaryWriter is not None:
                    self._tb = SummaryWriter(log_dir=str(Path(out_dir) / "tb"))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Append ``scalars`` at ``step`` to the JSON-lines file and TensorBoard."""
        if not self.enabled:
            return
        record: dict[str, Any] = {"iter": int(step), **{k: float(v) for k, v in scalars.items()}}
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:  # a full disk names the log, like every other writer
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(self.path) from exc
            raise DataError(self.path, f"cannot append to the training log ({exc.strerror or exc})") from exc
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def read_metrics(path: str | os.PathLike) -> list[dict[str, float]]:
    """Records of a ``metrics.jsonl`` file (empty list if absent)."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def truncate_metrics(path: str | os.PathLike, step: int) -> int:
    """Drop the records of ``metrics.jsonl`` after ``step`` (a resumed run logs those steps again).

    A torn last line (a killed write) is dropped too. Returns the number of records removed.
    """

    p = Path(path)
    if not p.is_file():
        return 0
    kept, removed = [], 0
    for line in p.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            removed += bool(line.strip())
            continue
        if isinstance(record, dict) and int(record.get("iter", 0)) <= step:
            kept.append(line)
        else:
            removed += 1
    if removed:
        write_text_atomic(p, "".join(f"{line}\n" for line in kept))
    return removed


def progress_bar(total: int, initial: int, enabled: bool, desc: str = "train") -> Any:
    """A tqdm bar over iterations (shows it/s and ETA; loss and lr go in the postfix)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True,
                smoothing=0.1, unit="it")
