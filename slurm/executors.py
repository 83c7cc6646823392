"""Submit a sweep's unfinished runs through submitit: a Slurm job array, local processes, or in-process.

  slurm: one job array (`executor.batch()`); returns at once; runs requeue and resume on preemption.
  local: submitit's local processes, at most `parallel` at a time; waits and shows progress.
  debug: in this process, one after another (for pdb).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from seqbench.bench.runner import Run
from seqbench.bench.stop import LAUNCHER_ENV
from seqbench.bench.store import Store, SweepDir
from seqbench.bench.sweep import Sweep
from seqbench.slurm.parameters import EXECUTORS, GENERIC, executor_parameters, submitit_names

SLURM_ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
               "PREEMPTED", "REVOKED")
UNKNOWN_FOR_S = 3600  # sacct may not know a job submitted a moment ago: until then UNKNOWN means queued


def slurm_job_state(sweep_dir: SweepDir, job_id: str) -> str | None:
    """Slurm's state of a job (through submitit, i.e. sacct); None where no Slurm answers."""
    try:
        return submitit.SlurmJob(folder=sweep_dir.submitit_folder, job_id=job_id).state
    except Exception:  # noqa: BLE001 — no Slurm reachable: the store's word stands
        return None


def active_elsewhere(sweep_dir: SweepDir, run_id: str, jobs: dict[str, list[dict]]) -> str | None:
    """Why a run must not be submitted again: a live trainer holds its lease, or one of its Slurm
    jobs is still queued or running. None when it is free."""
    holder = sweep_dir.run(run_id).lease_holder()
    if holder is not None and not holder["stale"]:
        return f"running (lease held by {holder.get('host')}:{holder.get('pid')})"
    for job in jobs.get(run_id, []):
        if job["executor"] == "slurm" and slurm_job_active(sweep_dir, job):
            return f"queued or running as Slurm job {job['job_id']}"
    return None


def slurm_job_active(sweep_dir: SweepDir, job: dict) -> bool:
    state = slurm_job_state(sweep_dir, job["job_id"])
    if state is None or state.split()[0] in SLURM_ENDED:
        return False
    if state.startswith("UNKNOWN"):
        return time.time() - float(job.get("submitted", 0)) < UNKNOWN_FOR_S
    return True


@dataclass
class Submission:
    sweep: str
    root: Path
    finished: list[str]
    submitted: dict[str, str]  # run id → job id
    failed: dict[str, str]  # local/debug: run id → last error line
    busy: dict[str, str] = field(default_factory=dict)  # run id → why it was not submitted again
    cancelled: list[str] = field(default_factory=list)  # local: runs not started because `seqbench cancel` ran


def submit(sweep: Sweep, *, executor: str = "local", root=None, dry_run: bool = False,
           overrides: dict[str, Any] | None = None, parallel: int | None = None,
           echo: Callable[[str], None] = print, command: str | None = None, accept_changed_code: bool = False) -> Submission:
    """Launch the sweep's unfinished runs; `command` is the command line that launched it, recorded
    with the sweep so its report can name how to reproduce it. A finished run trained on a mixer or
    task (named by import path) whose source has changed since is not silently counted: the launch
    refuses, naming it, unless `accept_changed_code`."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if parallel is not None and (not isinstance(parallel, int) or parallel < 1):
        raise ValueError(f"parallel must be a positive integer (runs at once), got {parallel!r}")
    store = Store(root)
    sweep_dir = store.sweep(sweep.name)
    parameters = executor_parameters(sweep.executor, overrides or {})
    jobs = sweep_dir.read_jobs()
    submission = Submission(sweep.name, store.root, [], {}, {})
    todo, changed = [], []
    for run in sweep.runs:
        run_id = run.run_id()
        if sweep_dir.run(run_id).is_finished():
            submission.finished.append(run_id)
            changed += changed_code(sweep_dir.run(run_id), run)
        elif reason := active_elsewhere(sweep_dir, run_id, jobs):
            submission.busy[run_id] = reason
        else:
            todo.append(run)
    if changed and not accept_changed_code:
        raise ValueError(f"{len(changed)} finished run(s) were trained on code that has changed since: {'; '.join(changed[:3])}"
                         f"{' …' if len(changed) > 3 else ''}. Pass --accept-changed-code to count them as finished as they are, "
                         "or launch the sweep under a new name to train them on the code as it is now")
    echo(f"sweep {sweep.name}: {len(sweep.runs)} runs, {len(submission.finished)} finished, "
         f"{len(submission.busy)} queued or running, {len(todo)} to run ({executor})")
    for run in sweep.runs:
        run_id = run.run_id()
        state = ("finished, skipped" if run_id in submission.finished else
                 f"{submission.busy[run_id]}, skipped" if run_id in submission.busy else
                 "would submit" if dry_run else "submit")
        echo(f"  {run_id}  {describe_run(run, sweep.axes.get(run_id, {}))}  [{state}]")
    if dry_run:
        return submission
    sweep_dir.write_listing([run.run_id() for run in sweep.runs], sweep.executor, command)  # also re-lists a quarantined one
    if not todo:
        return submission
    if executor == "slurm":
        submission.submitted = _submit_slurm(sweep, todo, sweep_dir, parameters)
        echo(f"submitted {len(todo)} runs as a Slurm job array; follow with: seqbench status {sweep.name}")
    else:
        _run_here(sweep, todo, sweep_dir, parameters, executor, parallel, submission, echo)
    return submission


def changed_code(run_dir, config) -> list[str]:
    """What differs between the code a finished run recorded (provenance `code`) and the code now."""
    from seqbench.bench.provenance import code_identity

    recorded = ((run_dir.read_config() or {}).get("provenance") or {}).get("code") or {}
    now = code_identity(config)
    return [f"run {run_dir.run_id}: {name} (sha256 {str(recorded.get(name))[:12]}… then, {str(now.get(name))[:12]}… now)"
            for name in sorted(set(recorded) | set(now)) if recorded.get(name) != now.get(name) and name in recorded]


def describe_run(run, axes: dict[str, Any]) -> str:
    """One line per run: what always matters, then the values of the sweep's own axes."""
    swept = "".join(f" {path.rsplit('.', 1)[-1]}={value}" for path, value in axes.items()
                    if path not in ("model.name", "model.d_model", "task.name", "optimizer.lr"))
    if run.kind == "gateloop_op":
        return f"gateloop op  L={run.lengths[0]}…{run.lengths[-1]} B={run.batch_size} channels={run.channels}{swept}"
    model = run.model.name if isinstance(run.model.name, str) else "+".join(run.model.name)
    if run.kind == "throughput":
        return (f"{model:<18} d={run.model.d_model:<4} LM step L={run.lengths[0]}…{run.lengths[-1]} "
                f"tokens/step={run.tokens_per_step}{swept}")
    if run.kind == "speed":
        return (f"{model:<18} d={run.model.d_model:<4} speed L={run.speed.lengths[0]}…{run.speed.lengths[-1]} "
                f"B={run.speed.batch_size}{swept}")
    size = run.size()
    return (f"{model:<18} d={run.model.d_model:<4} {run.task.name:<14} lr={run.optimizer.lr:<8g} seed={run.seed} "
            f"params={size['parameters']:,} state={size['state_size']:,}{swept}")


def _auto_executor(sweep_dir: SweepDir, cluster: str, parameters: dict[str, Any]):
    executor = submitit.AutoExecutor(folder=sweep_dir.submitit_folder, cluster=cluster)
    if cluster != "slurm":  # local processes: only the parameters submitit shares between its executors
        parameters = {key: value for key, value in parameters.items() if key in GENERIC}
    executor.update_parameters(**submitit_names(parameters), name=f"seqbench-{sweep_dir.name}")
    return executor


def _submit_slurm(sweep, todo, sweep_dir: SweepDir, parameters) -> dict[str, str]:
    executor = _auto_executor(sweep_dir, "slurm", parameters)
    with executor.batch():
        pending = [(run, executor.submit(Run(run, sweep_dir.root, sweep.name))) for run in todo]
    jobs = {run.run_id(): job.job_id for run, job in pending}
    for run, _ in pending:
        sweep_dir.run(run.run_id()).write_status("pending", job_id=jobs[run.run_id()])
    sweep_dir.record_jobs("slurm", jobs)
    return jobs


def _run_here(sweep, todo, sweep_dir: SweepDir, parameters, executor, parallel, submission, echo) -> None:
    """Local processes (at most `parallel` at once) or the debug executor; waits, reporting each
    end. Interrupted (Ctrl-C), it stops its workers — each checkpoints at its next step boundary —
    and waits for them before it returns."""
    from tqdm import tqdm

    cpus = os.cpu_count() or 1
    parallel = parallel or max(1, cpus // parameters.get("cpus_per_task", 1))
    queue = list(todo)
    running: dict[str, Any] = {}
    submitter = _auto_executor(sweep_dir, executor, parameters)
    started = time.time()
    os.environ[LAUNCHER_ENV] = str(os.getpid())  # workers watch it: a SIGKILLed launcher leaves no orphan
    previous = _sigterm_as_exit()  # SIGTERM stops the workers as Ctrl-C does
    try:
        with tqdm(total=len(todo), desc=f"sweep {sweep.name}", unit="run") as bar:
            while queue or running:
                if queue and sweep_dir.cancelled_since(started):  # `seqbench cancel` stopped the running ones
                    bar.write(f"cancelled: {len(queue)} run(s) not started: {', '.join(run.run_id() for run in queue)}")
                    submission.cancelled += [run.run_id() for run in queue]
                    queue.clear()
                while queue and len(running) < parallel:
                    run = queue.pop(0)
                    if run.kind == "train":  # each local process gets its share of the cores
                        run = run.model_copy(update={"threads": run.threads or max(1, cpus // parallel)})
                    job = submitter.submit(Run(run, sweep_dir.root, sweep.name))
                    running[run.run_id()] = job
                    submission.submitted[run.run_id()] = str(job.job_id)
                    sweep_dir.record_jobs(executor, {run.run_id(): str(job.job_id)})
                for run_id, job in list(running.items()):
                    if executor != "debug" and not job.done():
                        continue
                    del running[run_id]
                    bar.update(1)
                    try:
                        result = job.result()
                    except Exception as error:  # noqa: BLE001 — one failed run never stops the sweep
                        if sweep_dir.cancelled_since(started) and not sweep_dir.run(run_id).is_finished():
                            submission.cancelled.append(run_id)  # stopped by `seqbench cancel`, not broken
                            bar.write(f"run {run_id} cancelled at step {(sweep_dir.run(run_id).read_status() or {}).get('step')}: "
                                      "the next launch resumes it from its checkpoint")
                            continue
                        submission.failed[run_id] = _last_line(error, sweep_dir.run(run_id).read_error())
                        bar.write(f"run {run_id} failed: {submission.failed[run_id]}")
                        continue
                    if isinstance(result, dict) and result.get("skipped"):
                        submission.busy[run_id] = result["skipped"]
                        bar.write(f"run {run_id} skipped: {result['skipped']}")
                if running:
                    time.sleep(0.5)
    except BaseException:
        _stop(running.values())
        raise
    finally:
        os.environ.pop(LAUNCHER_ENV, None)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_exit():
    """In the main thread: SIGTERM raises SystemExit(143) (so the launcher stops its workers on the way
    out, as on Ctrl-C); returns the handler it replaced, or None where none can be installed."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def leave(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, leave)


def _last_line(error: BaseException, stored: str | None) -> str:
    """The run's own error (error.txt), not submitit's wrapper pointing at a log file."""
    if stored:
        return stored
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _stop(jobs, grace_s: float = 60.0) -> None:
    """SIGTERM each local worker (it checkpoints at its next step boundary and exits), then wait."""
    for job in jobs:
        process = getattr(job, "_process", None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for job in jobs:
        process = getattr(job, "_process", None)
        while process is not None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if process is not None and process.poll() is None:
            process.kill()
