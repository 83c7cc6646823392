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

A run is trained by at most one process at a time: `RunDir.lease()` creates `lease.json`
exclusively (O_EXCL works on NFS ≥ 3 and Lustre, unlike flock), a thread refreshes it every
`HEARTBEAT_S`, and a lease not refreshed for `STALE_AFTER_S` belongs to a dead trainer and may be
taken over. A holder that finds its lease gone or taken stops at the next step boundary.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

RESULTS_ENV = "SEQBENCH_RESULTS"
FINISHED = ("completed", "diverged")  # a re-launched sweep skips these; failed runs are retried
STATES = ("pending", "running", "preempted", "completed", "diverged", "failed", "cancelled")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
HEARTBEAT_S = float(os.environ.get("SEQBENCH_LEASE_HEARTBEAT_S", 10))
STALE_AFTER_S = float(os.environ.get("SEQBENCH_LEASE_STALE_S", 60))
TMP_STALE_AFTER_S = 3600  # a temporary older than this belongs to a writer that died


class StoreError(ValueError):
    """A bad name, id or path: the message names it and what is valid."""


def check_sweep_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise StoreError(f"invalid sweep name {name!r}: use letters, digits, '.', '_' or '-' "
                         "(it names a folder under the results root; no '/', no '..')")
    return name


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise StoreError(f"invalid run id {run_id!r}: a run id is 16 lowercase hex digits")
    return run_id


def results_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get(RESULTS_ENV) or "runs").expanduser()


# --- writing and reading files --------------------------------------------------------------------
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


def atomic_write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(row) + "\n" for row in rows).encode())


def quarantine(path: Path, reason: str = "") -> Path:
    """Move a bad file aside, keeping it for inspection, and say so once."""
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    warnings.warn(f"{path}: {reason or 'unreadable'}; moved aside to {target.name}", stacklevel=3)
    return target


def _finite_json(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_json(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_json(v) for v in value)
    return True


def read_json(path: Path, required: dict[str, type | tuple[type, ...]] | None = None) -> dict | None:
    """A JSON object whose `required` keys have the given types; None if absent; anything else is
    quarantined → None."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, found {type(value).__name__}")
        for key, kind in (required or {}).items():
            if not isinstance(value.get(key), kind):
                raise ValueError(f"field {key!r} missing or not {kind}")
    except (ValueError, UnicodeDecodeError) as error:
        quarantine(path, str(error))
        return None
    return value


def remove_stale_temporaries(folder: Path, older_than_s: float = TMP_STALE_AFTER_S) -> int:
    """Temporaries left by a writer that was killed between write and rename."""
    removed = 0
    for path in folder.glob(".*.tmp") if folder.is_dir() else []:
        try:
            if time.time() - path.stat().st_mtime > older_than_s:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


# --- the lease ------------------------------------------------------------------------------------
class LeaseHeld(RuntimeError):
    """Another live trainer holds the run."""


class Lease:
    """Exclusive ownership of one run directory while a trainer works on it (see module docstring)."""

    def __init__(self, path: Path, holder: dict[str, Any]):
        self.path, self.token = path, uuid.uuid4().hex
        self.record = {**holder, "token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                       "acquired": time.time()}
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _create(self) -> bool:
        try:
            handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "w") as out:
            json.dump({**self.record, "heartbeat": time.time()}, out)
            out.flush()
            os.fsync(out.fileno())
        return True

    def acquire(self, *, wait_s: float = 0.0, poll_s: float = 1.0) -> Lease:
        deadline = time.monotonic() + wait_s
        while True:
            if self._create():
                self._thread = threading.Thread(target=self._beat, name=f"lease-{self.path.parent.name}", daemon=True)
                self._thread.start()
                return self
            holder = read_lease(self.path)
            if holder is None or holder["stale"]:
                self._take_over(holder)
                continue
            if time.monotonic() >= deadline:
                raise LeaseHeld(f"run {self.path.parent.name} is being trained by {describe_holder(holder)}; "
                                "not starting a second trainer")
            time.sleep(poll_s)

    def _take_over(self, seen: dict | None) -> None:
        """Set a dead trainer's lease aside; if the file moved was not the stale one we saw (someone
        took over first), put it back — os.link fails if a third process already made a new one."""
        aside = self.path.with_name(f"{self.path.name}.stale-{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = read_lease(aside)
        if seen is not None and moved is not None and moved.get("token") != seen.get("token"):
            with contextlib.suppress(FileExistsError):  # a third trainer made a new lease: it stands
                os.link(aside, self.path)
        aside.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if not self.refresh():
                self.lost.set()
                return

    def refresh(self) -> bool:
        """Renew the heartbeat; False if the lease is no longer ours."""
        current = read_lease(self.path)
        if current is None or current.get("token") != self.token:
            return False
        atomic_write_json(self.path, {**self.record, "heartbeat": time.time()})
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        current = read_lease(self.path)
        if current is not None and current.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_lease(path: Path) -> dict | None:
    """The holder's record with `stale` (no heartbeat for STALE_AFTER_S, judged by the file's
    modification time, which the file system sets) — or None when nobody holds the run."""
    try:
        modified = path.stat().st_mtime
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError, OSError):
        value = {}
        modified = 0.0
    if not isinstance(value, dict):
        value = {}
    age = time.time() - modified
    return {**value, "age_s": age, "stale": age > STALE_AFTER_S or _dead_here(value)}


def _dead_here(holder: dict) -> bool:
    """A holder on this host whose process is gone is stale at once, heartbeat or not."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def describe_holder(holder: dict) -> str:
    job = f", job {holder['job_id']}" if holder.get("job_id") else ""
    return (f"{holder.get('host', '?')}:{holder.get('pid', '?')}{job} "
            f"(heartbeat {holder.get('age_s', float('nan')):.0f} s ago)")


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
        if summary.get("status") == "completed" and not _finite_json(summary):
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
        self.jobs_path = self.path / "jobs.json"
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
        valid = [run_id for run_id in listing["run_ids"] if isinstance(run_id, str) and RUN_ID_PATTERN.match(run_id)]
        if len(valid) != len(listing["run_ids"]):
            bad = [run_id for run_id in listing["run_ids"] if run_id not in valid]
            warnings.warn(f"{self.listing_path}: ignored invalid run id(s) {bad[:5]!r}", stacklevel=2)
        return {**listing, "run_ids": valid}

    def write_listing(self, run_ids: list[str], executor: dict) -> None:
        """The union of every launch's runs, so an earlier launch's runs stay listed."""
        known = (self.read_listing() or {}).get("run_ids", [])
        merged = list(dict.fromkeys([*known, *map(check_run_id, run_ids)]))
        atomic_write_json(self.listing_path, {"name": self.name, "run_ids": merged, "executor": executor})

    def run_ids(self) -> list[str]:
        self.require()
        ids = {p.name for p in self.path.iterdir() if p.is_dir() and RUN_ID_PATTERN.match(p.name)}
        ids.update((self.read_listing() or {}).get("run_ids", []))
        return sorted(ids)

    def read_jobs(self) -> dict[str, list[dict]]:
        """run id → every job submitted for it, oldest first (malformed entries dropped)."""
        jobs = read_json(self.jobs_path) or {}
        clean = {}
        for run_id, entries in jobs.items():
            if not RUN_ID_PATTERN.match(str(run_id)):
                continue
            entries = entries if isinstance(entries, list) else [entries]
            clean[run_id] = [e for e in entries if isinstance(e, dict) and isinstance(e.get("job_id"), str)
                             and isinstance(e.get("executor"), str)]
        return clean

    def record_jobs(self, executor: str, jobs: dict[str, str]) -> None:
        known = self.read_jobs()
        for run_id, job_id in jobs.items():
            known.setdefault(check_run_id(run_id), []).append(
                {"executor": executor, "job_id": str(job_id), "submitted": time.time()})
        atomic_write_json(self.jobs_path, known)

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
