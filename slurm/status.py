"""What a sweep is doing: each run's state from its directory, cross-checked with Slurm's accounting.

A run's own status.json says pending / running / preempted / completed / diverged / failed. A job
that Slurm cancelled or killed cannot write that, so for unfinished Slurm runs the scheduler's state
(through submitit, i.e. sacct) decides: CANCELLED → cancelled; FAILED, TIMEOUT, OUT_OF_MEMORY,
NODE_FAIL → failed. A live lease names the process training the run. No pandas here: `seqbench
status` stays quick on a login node.
"""
from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import submitit

from seqbench.bench.lease import describe_holder
from seqbench.bench.store import FINISHED, Store
from seqbench.slurm.executors import slurm_job_active, slurm_job_state

SLURM_FAILED = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE")


def sweep_status(sweep: str, root=None) -> list[dict]:
    sweep_dir = Store(root).sweep(sweep)
    jobs = sweep_dir.read_jobs()
    rows = []
    for run_id in sweep_dir.run_ids():
        run_dir = sweep_dir.run(run_id)
        state, error = run_dir.state()
        summary, status = run_dir.read_summary(), run_dir.read_status()
        step = (summary or {}).get("steps", (status or {}).get("step"))
        latest = (jobs.get(run_id) or [{}])[-1]
        row = {"run_id": run_id, "state": state, "step": step, "error": error,
               "job_id": latest.get("job_id"), "jobs": [job["job_id"] for job in jobs.get(run_id, [])], "lease": None,
               "backend": run_dir.backends()}
        holder = run_dir.lease_holder()
        if holder is not None and not holder["stale"] and state not in FINISHED:
            row["lease"] = describe_holder(holder)
        if state not in FINISHED and state != "failed" and latest.get("executor") == "slurm" and row["lease"] is None:
            slurm_state = slurm_job_state(sweep_dir, latest["job_id"])
            row["slurm_state"] = slurm_state
            if slurm_state and slurm_state.startswith("CANCELLED"):
                row["state"] = "cancelled"
            elif slurm_state in SLURM_FAILED:
                row["state"], row["error"] = "failed", f"Slurm state {slurm_state}"
        if row["state"] == "failed" and not row["error"]:
            row["error"] = run_dir.read_error()
        rows.append(row)
    return rows


def format_status(sweep: str, rows: list[dict]) -> str:
    counts = Counter(row["state"] for row in rows)
    lines = [f"sweep {sweep}: {len(rows)} runs — " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))]
    backends = Counter(row["backend"] for row in rows if row.get("backend"))
    lines += [f"  backend: {backend} ({n} run{'s' if n > 1 else ''})" for backend, n in sorted(backends.items())]
    for row in rows:
        if row["state"] in ("failed", "cancelled", "running", "preempted") or row["lease"]:
            detail = f": {row['error']}" if row.get("error") else ""
            held = f", held by {row['lease']}" if row["lease"] else ""
            lines.append(f"  {row['run_id']} {row['state']} at step {row['step']} (job {row['job_id']}{held}){detail}")
    return "\n".join(lines)


def cancel(sweep: str, root=None) -> list[str]:
    """Stop every still-active job ever submitted for the sweep's runs — scancel for Slurm jobs,
    SIGTERM for local ones running here — and return their ids. A stopped run keeps its last
    checkpoint: running the sweep again resumes it."""
    sweep_dir = Store(root).sweep(sweep).require()
    sweep_dir.request_cancel()  # first, so a local launcher starts nothing in place of what is stopped below
    cancelled = []
    for entries in sweep_dir.read_jobs().values():
        for job in entries:
            if job["executor"] == "slurm" and slurm_job_active(sweep_dir, job):
                submitit.SlurmJob(folder=sweep_dir.submitit_folder, job_id=job["job_id"]).cancel(check=False)
                cancelled.append(job["job_id"])
            elif job["executor"] == "local" and (pid := local_job_process(sweep_dir.path, job)) is not None:
                os.kill(pid, signal.SIGTERM)  # submitit's controller forwards it; the run stops at a step boundary
                cancelled.append(job["job_id"])
    return cancelled


def local_job_process(sweep_path: Path, job: dict) -> int | None:
    """The pid of a local job's submitit controller while it runs on this machine. Its command line
    must name this sweep's submitit folder, so a pid the system has since given to another process is
    never signalled (read from /proc: elsewhere nothing is found, and nothing is signalled)."""
    try:
        pid = int(job["job_id"])
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (ValueError, OSError):
        return None
    folder = str(sweep_path / ".submitit")
    if "submitit.local._local" in arguments and any(argument.startswith(folder) for argument in arguments):
        return pid
    return None
