"""The store: the one module that knows every file seqbench writes, like submitit's `JobPaths`.

    <root>/<sweep>/sweep.json          the sweep's run listing (names every run id it launched)
    <root>/<sweep>/jobs.json           run id → every job ever submitted for it (cancel reaches all)
    <root>/<sweep>/.submitit/%j/       submitit's own folders
    <root>/<sweep>/{runs,curves,rows}.parquet, plots/    what `collect` and `plot` make
    <root>/<sweep>/<run id>/{config.json, status.json, metrics.jsonl, summary.json, checkpoint.pt,
                             rows.jsonl, error.txt, lease.json}

Writes go to a temporary name and are renamed, so a reader never sees half a file; stale
temporaries of a killed writer are removed. Reads are defensive: a file that does not parse, has
the wrong shape or names another run is moved aside to `<name>.corrupt-<time>` (never deleted),
reported once, and treated as absent, so one bad file never stops a collect or a resume. Every
sweep name and run id — from the command line or from a file — is validated before it becomes a
path, so nothing outside the root is ever touched.

A run is trained by at most one process at a time: `RunDir.lease()` takes its lease (lease.py).
"""
from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

from seqbench.bench.files import finite_json, quarantine, read_json
from seqbench.bench.lease import Lease, read_lease
from seqbench.core import atomic_write_bytes, atomic_write_json, atomic_write_jsonl, remove_stale_temporaries

RESULTS_ENV = "SEQBENCH_RESULTS"
FINISHED = ("completed", "diverged")  # a re-launched sweep skips these; failed runs are retried
STATES = ("pending", "running", "preempted", "completed", "diverged", "failed", "cancelled")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # used with fullmatch: `$` would accept a trailing newline
RUN_ID_PATTERN = re.compile(r"[0-9a-f]{16}")


class StoreError(ValueError):
    """A bad name, id or path: the message names it and what is valid."""


def check_sweep_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise StoreError(f"invalid sweep name {name!r}: use letters, digits, '.', '_' or '-' "
                         "(it names a folder under the results root; no '/', no '..')")
    return name


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise StoreError(f"invalid run id {run_id!r}: a run id is 16 lowercase hex digits")
    return run_id


def results_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get(RESULTS_ENV) or "runs").expanduser()


# --- a run ----------------------------------------------------------------------------------------
METRIC_ROW_FIELDS = {"step": int, "split": str}


class RunDir:
    """Every file of one run."""

    def __init__(self, sweep_path: Path, run_id: str):
        self.run_id = check_run_id(run_id)
        self.path = sweep_path / run_id
        self.config_path = self.path / "config.json"
        self.status_path = self.path / "status.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.summary_path = self.path / "summary.json"
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.rows_path = self.path / "rows.jsonl"
        self.error_path = self.path / "error.txt"
        self.lease_path = self.path / "lease.json"

    # --- reading, with corruption detection -------------------------------------------------------
    def _read_json(self, path: Path, required: dict[str, type | tuple[type, ...]]) -> dict | None:
        """read_json, plus: a file naming another run is as corrupt as a torn one."""
        value = read_json(path, {"run_id": str, **required})
        if value is not None and value["run_id"] != self.run_id:
            quarantine(path, f"names run {value['run_id']!r}, not {self.run_id!r}")
            return None
        return value

    def read_summary(self) -> dict | None:
        summary = self._read_json(self.summary_path, {"status": str})
        if summary is not None and summary["status"] not in STATES:
            quarantine(self.summary_path, f"unknown status {summary['status']!r}")
            return None
        return summary

    def read_status(self) -> dict | None:
        return self._read_json(self.status_path, {"state": str})

    def read_config(self) -> dict | None:
        stored = self._read_json(self.config_path, {"config": dict})
        if stored is not None and not isinstance(stored.get("provenance", {}), dict):
            quarantine(self.config_path, "provenance is not an object")
            return None
        return stored

    def state(self) -> tuple[str, str | None]:
        """(state, why) as a reader should see it: the summary's, else the status's, else pending —
        except that a run whose status says running while no trainer holds it (its lease released, or
        naming a process gone from this host) was killed without a word (SIGKILL, the OOM killer) and
        is preempted: the next launch resumes it from its checkpoint. Read twice before saying so: a
        trainer may finish or start between the reads."""
        for _ in range(2):
            summary, status = self.read_summary(), self.read_status()
            state = (summary or {}).get("status") or (status or {}).get("state") or "pending"
            if state != "running":
                return state, (status or {}).get("error")
            holder = self.lease_holder()
            if holder is not None and not holder["dead_here"]:
                return state, None
        where = f" ({holder.get('host')}:{holder.get('pid')})" if holder else ""
        return "preempted", f"its trainer{where} died without a word (killed?); the next launch takes it up again"

    def backends(self) -> str | None:
        """What ran each layer, from the run's provenance: "mixer/mode: backend" per distinct layer
        kind (e.g. "mamba/recurrent: cpp"), with why a kernel fell back where it did; None before
        the run has started."""
        stored = self.read_config() or {}
        provenance = stored.get("provenance") or {}
        layers = provenance.get("layers")
        if not isinstance(layers, list):
            return None
        kinds = dict.fromkeys(f"{layer.get('mixer')}/{layer.get('mode')}: {layer.get('backend')}" for layer in layers
                              if isinstance(layer, dict))
        fallbacks = [reason for reason in (provenance.get("kernels") or {}).values() if reason != "built"]
        return ", ".join(kinds) + (f" ({'; '.join(fallbacks)})" if fallbacks else "")

    def is_finished(self) -> bool:
        summary = self.read_summary()
        return summary is not None and summary["status"] in FINISHED

    def _read_rows(self, path: Path, required: dict[str, type]) -> list[dict]:
        """Rows of a JSON-lines file; a malformed line is reported and skipped, the rest kept."""
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        except UnicodeDecodeError:
            quarantine(path, "not UTF-8 text")
            return []
        rows, bad = [], []
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or any(not isinstance(row.get(k), t) or isinstance(row.get(k), bool)
                                                    for k, t in required.items()):
                    raise ValueError
                rows.append(row)
            except ValueError:
                bad.append(number)
        if bad:
            warnings.warn(f"{path}: skipped malformed line(s) {bad[:10]}{' …' if len(bad) > 10 else ''}", stacklevel=3)
        return rows

    def read_metrics(self) -> list[dict]:
        return self._read_rows(self.metrics_path, METRIC_ROW_FIELDS)

    def read_rows(self) -> list[dict]:
        """Measurement rows of speed and op runs."""
        return self._read_rows(self.rows_path, {})

    def read_error(self) -> str | None:
        try:
            lines = self.error_path.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return None
        return lines[-1] if lines else None

    def lease_holder(self) -> dict | None:
        return read_lease(self.lease_path)

    # --- writing ------------------------------------------------------------------------------------
    def write_config(self, canonical: dict, provenance: dict) -> None:
        atomic_write_json(self.config_path, {"run_id": self.run_id, "config": canonical, "provenance": provenance})

    def write_status(self, state: str, **extra: Any) -> None:
        atomic_write_json(self.status_path, {"run_id": self.run_id, "state": state, "updated": time.time(), **extra})

    def write_metrics(self, rows: list[dict]) -> None:
        atomic_write_jsonl(self.metrics_path, rows)

    def write_rows(self, rows: list[dict]) -> None:
        atomic_write_jsonl(self.rows_path, rows)

    def write_summary(self, summary: dict) -> None:
        if summary.get("status") == "completed" and not finite_json(summary):
            raise ValueError("a completed run's summary must hold finite numbers only (diverged runs say 'diverged')")
        atomic_write_json(self.summary_path, {"run_id": self.run_id, **summary})

    def write_checkpoint(self, data: bytes) -> None:
        atomic_write_bytes(self.checkpoint_path, data)

    def write_error(self, text: str) -> None:
        atomic_write_bytes(self.error_path, text.encode())

    def lease(self, holder: dict[str, Any], *, wait_s: float = 0.0) -> Lease:
        self.path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)
        return Lease(self.lease_path, holder).acquire(wait_s=wait_s)


# --- a sweep --------------------------------------------------------------------------------------
class SweepDir:
    """Every file of one sweep."""

    TABLES = ("runs", "curves", "rows")

    def __init__(self, root: Path, name: str):
        self.name = check_sweep_name(name)
        self.root = root
        self.path = root / name
        self.listing_path = self.path / "sweep.json"
        self.jobs_path = self.path / "jobs.json"  # written by earlier versions: still read
        self.jobs_folder = self.path / "jobs"  # one file per submitted job: launches never overwrite each other
        self.cancel_path = self.path / "cancelled.json"
        self.submitit_folder = self.path / ".submitit" / "%j"
        self.plots_path = self.path / "plots"

    def run(self, run_id: str) -> RunDir:
        return RunDir(self.path, run_id)

    def table_path(self, table: str) -> Path:
        if table not in self.TABLES:
            raise StoreError(f"unknown table {table!r}; tables: {', '.join(self.TABLES)}")
        return self.path / f"{table}.parquet"

    def exists(self) -> bool:
        return self.path.is_dir()

    def require(self) -> SweepDir:
        if not self.exists():
            known = sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
            raise StoreError(f"no sweep {self.name!r} under {self.root}; sweeps there: {', '.join(known) or '(none)'}")
        return self

    def read_listing(self) -> dict | None:
        listing = read_json(self.listing_path, {"run_ids": list})
        if listing is None:
            return None
        valid = [run_id for run_id in listing["run_ids"] if isinstance(run_id, str) and RUN_ID_PATTERN.fullmatch(run_id)]
        if len(valid) != len(listing["run_ids"]):
            bad = [run_id for run_id in listing["run_ids"] if run_id not in valid]
            warnings.warn(f"{self.listing_path}: ignored invalid run id(s) {bad[:5]!r}", stacklevel=2)
        return {**listing, "run_ids": valid}

    def write_listing(self, run_ids: list[str], executor: dict, command: str | None = None) -> None:
        """The union of every launch's runs, so an earlier launch's runs stay listed, and every
        command that launched them (what a report names as the way to reproduce it)."""
        listing = self.read_listing() or {}
        merged = list(dict.fromkeys([*listing.get("run_ids", []), *map(check_run_id, run_ids)]))
        commands = [c for c in listing.get("commands", []) if isinstance(c, str)]
        commands = list(dict.fromkeys([*commands, *([command] if command else [])]))
        atomic_write_json(self.listing_path, {"name": self.name, "run_ids": merged, "executor": executor, "commands": commands})

    def commands(self) -> list[str]:
        """The commands that launched this sweep's runs, first launch first."""
        return [c for c in (self.read_listing() or {}).get("commands", []) if isinstance(c, str)]

    def run_ids(self) -> list[str]:
        self.require()
        ids = {p.name for p in self.path.iterdir() if p.is_dir() and RUN_ID_PATTERN.fullmatch(p.name)}
        ids.update((self.read_listing() or {}).get("run_ids", []))
        return sorted(ids)

    def read_jobs(self) -> dict[str, list[dict]]:
        """run id → every job submitted for it, oldest first (malformed entries dropped)."""
        entries: list[tuple[str, Any]] = []
        for run_id, recorded in (read_json(self.jobs_path) or {}).items():
            entries += [(run_id, entry) for entry in (recorded if isinstance(recorded, list) else [recorded])]
        if self.jobs_folder.is_dir():
            for path in sorted(self.jobs_folder.glob("*.json")):
                record = read_json(path) or {}
                entries.append((record.get("run_id"), {k: v for k, v in record.items() if k != "run_id"}))
        clean: dict[str, list[dict]] = {}
        for run_id, entry in entries:
            if not RUN_ID_PATTERN.fullmatch(str(run_id)):
                continue
            if isinstance(entry, dict) and isinstance(entry.get("job_id"), str) and isinstance(entry.get("executor"), str):
                clean.setdefault(run_id, []).append(entry)
        for known in clean.values():
            known.sort(key=lambda entry: entry.get("submitted") if isinstance(entry.get("submitted"), int | float) else 0.0)
        return clean

    def record_jobs(self, executor: str, jobs: dict[str, str]) -> None:
        """Each job in a file of its own, created atomically: two launchers of one sweep (two
        `findings run` sharing a store folder) both keep every record, with no lock to hold."""
        for run_id, job_id in jobs.items():
            record = {"run_id": check_run_id(run_id), "executor": executor, "job_id": str(job_id), "submitted": time.time()}
            name = f"{run_id}-{re.sub(r'[^A-Za-z0-9_.-]', '_', str(job_id))[:64]}-{os.getpid()}-{time.time_ns()}.json"
            atomic_write_json(self.jobs_folder / name, record)

    def request_cancel(self) -> None:
        """Record that `seqbench cancel` ran: a local launcher running since before it starts no more runs."""
        atomic_write_json(self.cancel_path, {"requested": time.time()})

    def cancelled_since(self, started: float) -> bool:
        """Whether a cancel was requested after `started` (a launch's start, on this clock)."""
        record = read_json(self.cancel_path) or {}
        requested = record.get("requested")
        return isinstance(requested, int | float) and not isinstance(requested, bool) and requested >= started

    def write_table(self, table: str, frame) -> Path:
        import io

        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        path = self.table_path(table)
        atomic_write_bytes(path, buffer.getvalue())
        return path


class Store:
    """The results root."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = results_root(root)

    def sweep(self, name: str) -> SweepDir:
        return SweepDir(self.root, name)

    def run(self, sweep: str, run_id: str) -> RunDir:
        return self.sweep(sweep).run(run_id)
