"""Reading what the store wrote, defensively: a file that does not parse, is not UTF-8, has the wrong
shape or a non-finite number is moved aside to `<name>.corrupt-<time>` (never deleted), reported
once, and read as absent — so one damaged file never stops a collect, a resume or a status.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any


def quarantine(path: Path, reason: str = "") -> Path | None:
    """Move a bad file aside, keeping it for inspection, and say so once. A file another reader
    moved first is not an error; where the folder cannot be written (a read-only copy of the
    results), the file stays, is reported, and is read as absent all the same."""
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None  # a concurrent reader quarantined it already
    except OSError as error:
        warnings.warn(f"{path}: {reason or 'unreadable'}; could not move it aside ({error.strerror}): treated as absent",
                      stacklevel=3)
        return None
    warnings.warn(f"{path}: {reason or 'unreadable'}; moved aside to {target.name}", stacklevel=3)
    return target


def finite_json(value: Any) -> bool:
    """Whether every number in a parsed JSON value is finite (a completed summary must be)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_json(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_json(v) for v in value)
    return True


def read_json(path: Path, required: dict[str, type | tuple[type, ...]] | None = None) -> dict | None:
    """A JSON object whose `required` keys have the given types; None if absent; anything else is
    quarantined → None."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        value = json.loads(raw.decode("utf-8"))  # a non-UTF-8 byte is a damaged file like any other
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, found {type(value).__name__}")
        for key, kind in (required or {}).items():
            if not isinstance(value.get(key), kind):
                raise ValueError(f"field {key!r} missing or not {kind}")
    except UnicodeDecodeError as error:
        quarantine(path, f"not UTF-8 text (byte {error.start})")
        return None
    except ValueError as error:
        quarantine(path, str(error))
        return None
    return value
