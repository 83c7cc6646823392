"""Run directories on disk: <root>/<sweep>/<run id>/{config.json, status.json, metrics.jsonl,
summary.json, checkpoint.pt, error.txt}.

Every file is written to a temporary name and renamed, so a reader never sees half a file. A file
that fails to parse or whose identity disagrees with its directory is moved aside to
`<name>.corrupt-<time>` (never deleted) and the run counts as not finished, so it is redone.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS_ENV = "SEQBENCH_RESULTS"
FINISHED = ("completed", "diverged")  # a re-launched sweep skips these; failed runs are retried
STATES = ("pending", "running", "preempted", "completed", "diverged", "failed", "cancelled")


def results_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get(RESULTS_ENV) or "runs").expanduser()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; results are meant to be read by others
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=1, sort_keys=True, default=str) + "\n").encode())


def quarantine(path: Path) -> Path:
    """Move a bad file aside, keeping it for inspection."""
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    return target


def read_json(path: Path, required: tuple[str, ...] = ()) -> dict | None:
    """A JSON object with the `required` keys, None if absent; anything else is quarantined → None."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
        if not isinstance(value, dict) or any(key not in value for key in required):
            raise ValueError(f"missing one of {required}")
    except (ValueError, UnicodeDecodeError):
        quarantine(path)
        return None
    return value


class RunDir:
    def __init__(self, root: Path, sweep: str, run_id: str):
        self.run_id = run_id
        self.path = Path(root) / sweep / run_id
        self.config_path = self.path / "config.json"
        self.status_path = self.path / "status.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.summary_path = self.path / "summary.json"
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.error_path = self.path / "error.txt"

    # --- reading, with corruption detection -------------------------------------------------------
    def _read_json(self, path: Path, required: tuple[str, ...]) -> dict | None:
        """read_json, plus: a file naming another run is as corrupt as a torn one."""
        value = read_json(path, required)
        if value is not None and value["run_id"] != self.run_id:
            quarantine(path)
            return None
        return value

    def read_summary(self) -> dict | None:
        return self._read_json(self.summary_path, ("run_id", "status"))

    def read_status(self) -> dict | None:
        return self._read_json(self.status_path, ("run_id", "state"))

    def read_config(self) -> dict | None:
        return self._read_json(self.config_path, ("run_id", "config"))

    def is_finished(self) -> bool:
        summary = self.read_summary()
        return summary is not None and summary["status"] in FINISHED

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        rows = []
        try:
            for line in self.metrics_path.read_text().splitlines():
                rows.append(json.loads(line))
        except (ValueError, UnicodeDecodeError):
            quarantine(self.metrics_path)
            return []
        return rows

    # --- writing ------------------------------------------------------------------------------------
    def write_config(self, canonical: dict, provenance: dict) -> None:
        atomic_write_json(self.config_path, {"run_id": self.run_id, "config": canonical, "provenance": provenance})

    def write_status(self, state: str, **extra: Any) -> None:
        atomic_write_json(self.status_path, {"run_id": self.run_id, "state": state, "updated": time.time(), **extra})

    def write_metrics(self, rows: list[dict]) -> None:
        atomic_write_bytes(self.metrics_path, "".join(json.dumps(row) + "\n" for row in rows).encode())

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.summary_path, {"run_id": self.run_id, **summary})

    def write_error(self, text: str) -> None:
        atomic_write_bytes(self.error_path, text.encode())
