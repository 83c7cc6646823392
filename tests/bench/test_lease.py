"""One trainer per run (bench/lease.py). Liveness is judged by watching the holder's heartbeat move,
on the watcher's own clock: a holder whose clock is a day ahead neither blocks a dead run for a day
nor, a day behind, has its live run stolen."""
import json
import os
import threading
import time

import pytest

from seqbench.bench import lease as lease_module
from seqbench.bench.lease import Lease, LeaseHeld, describe_holder, read_lease

pytestmark = pytest.mark.faults
DAY = 86_400


def foreign_lease(path, *, beat=0, clock_offset_s=0.0):
    """A lease as a trainer on another host writes it (atomically, as Lease.refresh does), its
    timestamps from a clock `clock_offset_s` off."""
    record = {"host": "node-elsewhere", "pid": 4242, "token": "theirs", "beat": beat, "written": time.time() + clock_offset_s}
    temporary = path.with_name(f".{path.name}.{beat}.tmp")
    temporary.write_text(json.dumps(record))
    os.utime(temporary, (time.time() + clock_offset_s, time.time() + clock_offset_s))
    os.replace(temporary, path)


def test_a_dead_holder_whose_clock_ran_a_day_ahead_is_taken_over_after_the_stale_window(tmp_path, monkeypatch):
    monkeypatch.setattr(lease_module, "STALE_AFTER_S", 0.5)
    path = tmp_path / "lease.json"
    foreign_lease(path, clock_offset_s=DAY)  # mtime and heartbeat a day in the future, never refreshed
    assert "clock is ahead" in describe_holder(read_lease(path))
    started = time.monotonic()
    with Lease(path, {"job_id": "mine"}).acquire(wait_s=0, poll_s=0.05) as mine:
        assert time.monotonic() - started < 5 and read_lease(path)["token"] == mine.token


def test_a_live_holder_whose_clock_runs_a_day_behind_keeps_its_run(tmp_path, monkeypatch):
    monkeypatch.setattr(lease_module, "STALE_AFTER_S", 1.0)
    path = tmp_path / "lease.json"
    stop = threading.Event()

    def beat():
        count = 0
        while not stop.wait(0.1):
            count += 1
            foreign_lease(path, beat=count, clock_offset_s=-DAY)  # alive, but its times are a day old

    foreign_lease(path, clock_offset_s=-DAY)
    beating = threading.Thread(target=beat)
    beating.start()
    try:
        with pytest.raises(LeaseHeld, match="node-elsewhere:4242"):
            Lease(path, {}).acquire(wait_s=2.0, poll_s=0.05)
        assert read_lease(path)["token"] == "theirs"
    finally:
        stop.set()
        beating.join()


def test_a_foreign_holder_is_watched_before_it_is_judged_even_without_waiting(tmp_path, monkeypatch):
    """wait_s=0 means 'do not wait for a live holder', not 'judge from one look'."""
    monkeypatch.setattr(lease_module, "STALE_AFTER_S", 0.3)
    path = tmp_path / "lease.json"
    foreign_lease(path)
    mine = Lease(path, {}).acquire(wait_s=0, poll_s=0.05)
    assert read_lease(path)["token"] == mine.token
    mine.release()
    assert read_lease(path) is None


def test_the_heartbeat_counter_moves_with_every_refresh(tmp_path):
    held = Lease(tmp_path / "lease.json", {}).acquire()
    try:
        first = read_lease(held.path)
        assert held.refresh() and read_lease(held.path)["beat"] == first["beat"] + 1
        assert read_lease(held.path)["alive_here"] and not read_lease(held.path)["stale"]
    finally:
        held.release()


def test_a_live_unrelated_pid_whose_heartbeat_stopped_is_not_a_trainer(tmp_path):
    """A lease naming this host and a running process (here: the test itself, as a reused pid would)
    whose heartbeat, stamped by this host's clock, is older than the stale window: taken over at
    once; the same lease with a fresh heartbeat is a live trainer and refused."""
    import socket

    path = tmp_path / "lease.json"
    record = {"host": socket.gethostname(), "pid": os.getpid(), "token": "old", "beat": 3}
    path.write_text(json.dumps({**record, "written": time.time() - 2 * lease_module.STALE_AFTER_S}))
    started = time.monotonic()
    with Lease(path, {"job_id": "mine"}).acquire(wait_s=0, poll_s=0.05) as mine:
        assert time.monotonic() - started < 5 and read_lease(path)["token"] == mine.token
    path.write_text(json.dumps({**record, "written": time.time()}))
    with pytest.raises(LeaseHeld, match="is being trained by"):
        Lease(path, {"job_id": "mine"}).acquire(wait_s=0, poll_s=0.05)
