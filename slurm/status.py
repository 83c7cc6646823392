"""What a sweep is doing: each run's state from its directory, cross-checked with Slurm's accounting.

A run's own status.json says pending / running / preempted / completed / diverged / failed. A job
that Slurm cancelled or killed cannot write that, so for unfinished Slurm runs the scheduler's state
(through submitit, i.e. sacct) decides: CANCELLED → cancelled; FAILED, TIMEOUT, OUT_OF_MEMORY,
NODE_FAIL → failed.
"""
from __future__ import annotations

from collections import Counter

import submitit

from analysis.collect import run_ids
from bench.store import FINISHED, RunDir, read_json, results_root
from slurm.executors import submitit_folder

SLURM_FAILED = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE")


def _slurm_state(root, sweep, job_id) -> str | None:
    try:
        return submitit.SlurmJob(folder=submitit_folder(root, sweep), job_id=job_id).state
    except Exception:  # noqa: BLE001 — no Slurm reachable: the store's word stands
        return None


def sweep_status(sweep: str, root=None) -> list[dict]:
    root = results_root(root)
    jobs = read_json(root / sweep / "jobs.json") or {}
    rows = []
    for run_id in run_ids(root, sweep):
        run_dir = RunDir(root, sweep, run_id)
        summary, status = run_dir.read_summary(), run_dir.read_status()
        state = (summary or {}).get("status") or (status or {}).get("state") or "pending"
        row = {"run_id": run_id, "state": state, "step": (summary or status or {}).get("step", (summary or {}).get("steps")),
               "error": (status or {}).get("error"), "job_id": jobs.get(run_id, {}).get("job_id")}
        job = jobs.get(run_id, {})
        if state not in FINISHED and state != "failed" and job.get("executor") == "slurm":
            slurm_state = _slurm_state(root, sweep, job["job_id"])
            row["slurm_state"] = slurm_state
            if slurm_state and slurm_state.startswith("CANCELLED"):
                row["state"] = "cancelled"
            elif slurm_state in SLURM_FAILED:
                row["state"], row["error"] = "failed", f"Slurm state {slurm_state}"
        if row["state"] == "failed" and not row["error"] and run_dir.error_path.exists():
            row["error"] = run_dir.error_path.read_text().strip().splitlines()[-1]
        rows.append(row)
    return rows


def format_status(sweep: str, rows: list[dict]) -> str:
    counts = Counter(row["state"] for row in rows)
    lines = [f"sweep {sweep}: {len(rows)} runs — " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))]
    for row in rows:
        if row["state"] in ("failed", "cancelled", "running", "preempted"):
            detail = f": {row['error']}" if row.get("error") else ""
            lines.append(f"  {row['run_id']} {row['state']} at step {row['step']} (job {row['job_id']}){detail}")
    return "\n".join(lines)


def cancel(sweep: str, root=None) -> list[str]:
    """scancel every unfinished Slurm job of the sweep; returns the job ids."""
    root = results_root(root)
    cancelled = []
    for row in sweep_status(sweep, root):
        if row["state"] not in (*FINISHED, "failed", "cancelled") and row["job_id"] and row.get("slurm_state") is not None:
            submitit.SlurmJob(folder=submitit_folder(root, sweep), job_id=row["job_id"]).cancel(check=False)
            cancelled.append(row["job_id"])
    return cancelled
