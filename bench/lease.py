"""One trainer per run: a lease file created exclusively, kept alive by a heartbeat.

`Lease.acquire` creates `lease.json` with O_EXCL (atomic on NFS ≥ 3 and Lustre, unlike flock); a
thread rewrites it every `HEARTBEAT_S` with its heartbeat counter one higher. Whether a holder is
alive is judged by the one who wants the run, on its own monotonic clock: a lease whose content does
not change for `STALE_AFTER_S` of watching belongs to a dead trainer and may be taken over. No
timestamp written by another host is ever compared with this host's clock, so a node whose clock
runs ahead (or behind) can neither block a run for the skew nor have its live run stolen. A holder
on this host whose process is gone is dead at once, and so is one whose process runs but whose
heartbeat (stamped by this host's clock) stopped for the stale window (a reused pid). A holder that finds its lease gone or taken
stops at the next step boundary (the runner checks `lost`).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from seqbench.core import RunStopped, atomic_write_json, process_here

HEARTBEAT_S = float(os.environ.get("SEQBENCH_LEASE_HEARTBEAT_S", 10))
STALE_AFTER_S = float(os.environ.get("SEQBENCH_LEASE_STALE_S", 60))


class LeaseHeld(RunStopped):
    """Another live trainer holds the run."""


class Lease:
    """Exclusive ownership of one run directory while a trainer works on it (see module docstring)."""

    def __init__(self, path: Path, holder: dict[str, Any]):
        self.path, self.token = path, uuid.uuid4().hex
        self.record = {**holder, "token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                       "acquired": time.time()}
        self.beat = 0
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _content(self) -> dict[str, Any]:
        return {**self.record, "beat": self.beat, "written": time.time()}

    def _create(self) -> bool:
        try:
            handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "w") as out:
            json.dump(self._content(), out)
            out.flush()
            os.fsync(out.fileno())
        return True

    def acquire(self, *, wait_s: float = 0.0, poll_s: float = 1.0) -> Lease:
        """Take the lease; a live holder is waited for up to `wait_s`. A holder on another host is
        watched until its heartbeat moves (alive: LeaseHeld once `wait_s` is over) or has not moved
        for STALE_AFTER_S (dead: taken over), whatever `wait_s` says — one look cannot tell."""
        deadline = time.monotonic() + wait_s
        watched, since, alive = None, 0.0, False
        while True:
            if self._create():
                self._thread = threading.Thread(target=self._beat, name=f"lease-{self.path.parent.name}", daemon=True)
                self._thread.start()
                return self
            holder = read_lease(self.path)
            if holder is None:
                continue  # released between our create and our read
            if holder["dead_here"] or silent_here(holder):
                self._take_over(holder)
                continue
            now = time.monotonic()
            if holder["observed"] != watched:
                alive = watched is not None  # it changed while we watched: someone is beating
                watched, since = holder["observed"], now
            elif now - since > STALE_AFTER_S:
                self._take_over(holder)
                watched, alive = None, False
                continue
            if (alive or holder["alive_here"]) and now >= deadline:
                raise LeaseHeld(f"run {self.path.parent.name} is being trained by {describe_holder(holder)}; "
                                "not starting a second trainer")
            time.sleep(poll_s)

    def _take_over(self, seen: dict) -> None:
        """Set a dead trainer's lease aside; if the file moved was not the one we judged dead
        (someone took over first, or it beat meanwhile), put it back — os.link fails if a third
        process already made a new one."""
        aside = self.path.with_name(f"{self.path.name}.stale-{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = read_lease(aside)
        if moved is not None and moved["observed"] != seen["observed"]:
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
        self.beat += 1
        atomic_write_json(self.path, self._content())
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
    """The holder's record, or None when nobody holds the run. Beside it: `observed` (the file's
    content, what a watcher compares), `dead_here` / `alive_here` (a holder on this host, its process
    gone / running), `stale` (= dead_here: one read can judge no other holder) and `age_s` (the
    file's age by this host's clock, for display only: another host's clock may differ)."""
    try:
        text = path.read_text()
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, OSError):
        text, modified = "", math.nan
    try:
        value = json.loads(text)
    except ValueError:
        value = {}
    value = value if isinstance(value, dict) else {}
    here = process_here(value.get("host"), value.get("pid"))
    return {**value, "observed": text, "dead_here": here is False, "alive_here": here is True, "stale": here is False,
            "age_s": time.time() - modified}


def silent_here(holder: dict) -> bool:
    """A holder on this host whose process runs but whose last heartbeat — stamped by this host's own
    clock, so comparable here — is older than the stale window: a reused pid or a hung trainer, not a
    trainer, and its run may be taken over at once."""
    written = holder.get("written")
    return holder["alive_here"] and isinstance(written, (int, float)) and time.time() - written > STALE_AFTER_S


def describe_holder(holder: dict) -> str:
    job = f", job {holder['job_id']}" if holder.get("job_id") else ""
    age = holder.get("age_s", math.nan)
    when = (f"last written {age:.0f} s ago by this host's clock" if age >= 0 else
            "written by a host whose clock is ahead of this one's") if math.isfinite(age) else "unreadable"
    return f"{holder.get('host', '?')}:{holder.get('pid', '?')}{job} (heartbeat {holder.get('beat', '?')}, {when})"
