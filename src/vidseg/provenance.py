"""What produced an output folder: a small record that makes resuming safe.

A command that resumes into an existing output folder (``vidseg segment``, ``vidseg predict``) first calls
:func:`prepare_output_folder` with a :func:`make_record` of the current run. The record
(``<folder>/.vidseg-provenance.json``) states the command, the model, the weights' SHA-256, the options that change
the outputs and the vidseg version. Resuming into a folder made by the same run is allowed; a folder made by
another model, other weights or other options is refused with a message naming the differences and how to
overwrite, so old outputs are never silently kept as if they were the new ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vidseg import __version__
from vidseg.errors import DataError
from vidseg.fileio import write_text_atomic

RECORD_NAME = ".vidseg-provenance.json"
FORMAT = "vidseg-provenance-v1"
_CHUNK = 1 << 20


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file, or of a folder's files (relative names and contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        try:
            with file.open("rb") as f:
                for block in iter(lambda f=f: f.read(_CHUNK), b""):
                    digest.update(block)
        except OSError as exc:
            raise DataError(file, f"cannot read weights ({exc.strerror or exc})") from None
    return digest.hexdigest()


def make_record(command: str, model: str, weights: str | os.PathLike | None,
                options: Mapping[str, Any], source: str | os.PathLike | None = None) -> dict[str, Any]:
    """The provenance record of a run.

    Args:
        command: the producing command, e.g. ``"segment"``.
        model: registered model name.
        weights: the weights file/folder (hashed), or None for random weights.
        options: everything else that changes the outputs (test settings, TTA, class count, ...); JSON values.
        source: the input video file or frame folder (its absolute path is recorded, so a folder is never
            resumed from the frames of another video that happens to have the same name).

    Returns:
        ``{"format", "command", "model", "weights": {"path", "sha256"} | None, "options", "vidseg"}`` and
        ``"source"`` when given.
    """

    entry = None if weights is None else {"path": os.fspath(weights), "sha256": weights_sha256(weights)}
    options = json.loads(json.dumps(dict(options), sort_keys=True, default=str))  # plain JSON, as read back
    record = {"format": FORMAT, "command": command, "model": model, "weights": entry, "options": options,
              "vidseg": __version__}
    if source is not None:
        record["source"] = os.fspath(Path(source).resolve())
    return record


def read_record(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The record of ``folder`` (None when there is none)."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable provenance record ({exc}); use --overwrite to start afresh") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(path, f"not a vidseg provenance record (format {FORMAT!r} expected)")
    return record


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two records (the weights compare by hash, not by path)."""
    found = []
    for key in ("command", "model", "vidseg", "source"):
        if old.get(key) != new.get(key):
            found.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    old_w, new_w = old.get("weights"), new.get("weights")
    if (old_w or {}).get("sha256") != (new_w or {}).get("sha256"):
        describe = lambda w: "random weights" if not w else f"{w.get('path')} (sha256 {w.get('sha256', '')[:12]})"  # noqa: E731
        found.append(f"weights {describe(old_w)} -> {describe(new_w)}")
    old_o, new_o = old.get("options") or {}, new.get("options") or {}
    for key in sorted(set(old_o) | set(new_o)):
        if old_o.get(key) != new_o.get(key):
            found.append(f"option {key} {old_o.get(key)!r} -> {new_o.get(key)!r}")
    return found


def _existing_outputs(folder: Path, outputs: Iterable[str]) -> list[Path]:
    return sorted({p for pattern in outputs for p in folder.glob(pattern) if p.is_file()})


def prepare_output_folder(folder: str | os.PathLike, record: Mapping[str, Any], *, outputs: Iterable[str] = ("*",),
                          overwrite: bool = False, flag: str = "--overwrite") -> int:
    """Make ``folder`` ready for a run described by ``record``; returns how many old outputs it removed.

    - no folder, or no outputs in it: the record is written, the run starts;
    - a record equal to ``record`` (:func:`differences` empty): resume, outputs are kept;
    - another record, or outputs without a record: :class:`DataError` naming the differences and ``flag``;
      with ``overwrite`` the old outputs (files matching ``outputs``) are deleted and the new record written.

    Args:
        folder: the output folder.
        record: :func:`make_record` of the current run.
        outputs: glob patterns (relative to ``folder``) of the files the command writes there.
        overwrite: delete old outputs made differently instead of refusing.
        flag: the option that sets ``overwrite``, named in the error.

    Raises:
        DataError: the folder was made differently (or by an unknown producer) and ``overwrite`` is False.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(folder, "is a file; expected an output folder")
    old = read_record(folder) if folder.is_dir() else None
    existing = _existing_outputs(folder, outputs) if folder.is_dir() else []
    if old is not None and not differences(old, record):
        return 0
    if existing and not overwrite:
        if old is None:
            problem = (f"holds {len(existing)} outputs without a provenance record (made by another tool or an "
                       "older vidseg)")
        else:
            problem = "was written by a different run: " + "; ".join(differences(old, record))
        raise DataError(folder, f"{problem}; refusing to resume into it. Use {flag} to replace its outputs, "
                                "or choose another output folder")
    for path in existing:
        path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / RECORD_NAME, json.dumps(dict(record), indent=2, sort_keys=True) + "\n")
    return len(existing)
