"""Submit a sweep's unfinished runs through submitit: a Slurm job array, local processes, or in-process.

  slurm: one job array (`executor.batch()`); returns at once; runs requeue and resume on preemption.
  local: submitit's local processes, at most `parallel` at a time; waits and shows progress.
  debug: in this process, one after another (for pdb).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import submitit

from bench.runner import Run
from bench.store import RunDir, atomic_write_json, read_json, results_root
from slurm.sweep import Sweep

EXECUTORS = ("local", "slurm", "debug")
# names in sweep files and on the command line → submitit's AutoExecutor parameters
PARAMETERS = {
    "partition": "slurm_partition",
    "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task",
    "mem_gb": "mem_gb",
    "timeout_min": "timeout_min",
    "array_parallelism": "slurm_array_parallelism",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
    "max_num_timeout": "slurm_max_num_timeout",
}
DEFAULTS = {"timeout_min": 60, "cpus_per_task": 1, "gpus_per_node": 0}


def executor_parameters(from_file: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**DEFAULTS, **from_file, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(merged) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown executor parameter(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(PARAMETERS))}")
    if merged.get("gpus_per_node") == 0:
        merged.pop("gpus_per_node")
    return merged


def sweep_folder(root: Path, sweep_name: str) -> Path:
    return root / sweep_name


def submitit_folder(root: Path, sweep_name: str) -> Path:
    return sweep_folder(root, sweep_name) / ".submitit" / "%j"


def record_jobs(root: Path, sweep_name: str, executor: str, jobs: dict[str, str]) -> None:
    """jobs.json: run id → the latest (executor, job id) it was submitted as."""
    path = sweep_folder(root, sweep_name) / "jobs.json"
    known = read_json(path) or {}
    known.update({run_id: {"executor": executor, "job_id": job_id, "submitted": time.time()} for run_id, job_id in jobs.items()})
    atomic_write_json(path, known)


def record_sweep(root: Path, sweep: Sweep) -> None:
    atomic_write_json(sweep_folder(root, sweep.name) / "sweep.json",
                      {"name": sweep.name, "run_ids": [run.run_id() for run in sweep.runs], "executor": sweep.executor})


@dataclass
class Submission:
    sweep: str
    root: Path
    finished: list[str]
    submitted: dict[str, str]  # run id → job id
    failed: dict[str, str]  # local/debug: run id → last error line


def submit(sweep: Sweep, *, executor: str = "local", root=None, dry_run: bool = False,
           overrides: dict[str, Any] | None = None, parallel: int | None = None,
           echo: Callable[[str], None] = print) -> Submission:
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    root = results_root(root)
    parameters = executor_parameters(sweep.executor, overrides or {})
    finished = [run.run_id() for run in sweep.runs if RunDir(root, sweep.name, run.run_id()).is_finished()]
    todo = [run for run in sweep.runs if run.run_id() not in finished]
    echo(f"sweep {sweep.name}: {len(sweep.runs)} runs, {len(finished)} finished, {len(todo)} to run ({executor})")
    for run in sweep.runs:
        state = "finished, skipped" if run.run_id() in finished else ("would submit" if dry_run else "submit")
        echo(f"  {run.run_id()}  {describe_run(run, sweep.axes.get(run.run_id(), {}))}  [{state}]")
    submission = Submission(sweep.name, root, finished, {}, {})
    if dry_run or not todo:
        return submission
    record_sweep(root, sweep)
    if executor == "slurm":
        submission.submitted = _submit_slurm(sweep, todo, root, parameters)
        echo(f"submitted {len(todo)} runs as a Slurm job array; follow with: seqbench status {sweep.name}")
    else:
        _run_here(sweep, todo, root, parameters, executor, parallel, submission, echo)
    return submission


def describe_run(run, axes: dict[str, Any]) -> str:
    """One line per run: what always matters, then the values of the sweep's own axes."""
    model = run.model.name if isinstance(run.model.name, str) else "+".join(run.model.name)
    swept = "".join(f" {path.rsplit('.', 1)[-1]}={value}" for path, value in axes.items()
                    if path not in ("model.name", "model.d_model", "task.name", "optimizer.lr"))
    if run.kind == "speed":
        return (f"{model:<18} d={run.model.d_model:<4} speed L={run.speed.lengths[0]}…{run.speed.lengths[-1]} "
                f"B={run.speed.batch_size}{swept}")
    return f"{model:<18} d={run.model.d_model:<4} {run.task.name:<14} lr={run.optimizer.lr:<8g} seed={run.seed}{swept}"


def _auto_executor(root: Path, sweep_name: str, cluster: str, parameters: dict[str, Any]):
    executor = submitit.AutoExecutor(folder=submitit_folder(root, sweep_name), cluster=cluster)
    executor.update_parameters(**{PARAMETERS[key]: value for key, value in parameters.items()},
                               name=f"seqbench-{sweep_name}")
    return executor


def _submit_slurm(sweep, todo, root, parameters) -> dict[str, str]:
    executor = _auto_executor(root, sweep.name, "slurm", parameters)
    with executor.batch():
        pending = [(run, executor.submit(Run(run, root, sweep.name))) for run in todo]
    jobs = {run.run_id(): job.job_id for run, job in pending}
    for run, _ in pending:
        RunDir(root, sweep.name, run.run_id()).write_status("pending", job_id=jobs[run.run_id()])
    record_jobs(root, sweep.name, "slurm", jobs)
    return jobs


def _run_here(sweep, todo, root, parameters, executor, parallel, submission, echo) -> None:
    """Local processes (at most `parallel` at once) or the debug executor; waits, reporting each end."""
    from tqdm import tqdm

    cpus = os.cpu_count() or 1
    parallel = parallel or max(1, cpus // parameters.get("cpus_per_task", 1))
    queue = list(todo)
    running: dict[str, Any] = {}
    submitter = _auto_executor(root, sweep.name, executor, parameters)
    with tqdm(total=len(todo), desc=f"sweep {sweep.name}", unit="run") as bar:
        while queue or running:
            while queue and len(running) < parallel:
                run = queue.pop(0)
                # each local process gets its share of the cores
                run = run.model_copy(update={"threads": run.threads or max(1, cpus // parallel)})
                job = submitter.submit(Run(run, root, sweep.name))
                running[run.run_id()] = job
                submission.submitted[run.run_id()] = str(job.job_id)
                record_jobs(root, sweep.name, executor, {run.run_id(): str(job.job_id)})
            for run_id, job in list(running.items()):
                if executor != "debug" and not job.done():
                    continue
                del running[run_id]
                bar.update(1)
                try:
                    job.result()
                except Exception as error:  # noqa: BLE001 — one failed run never stops the sweep
                    submission.failed[run_id] = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                    bar.write(f"run {run_id} failed: {submission.failed[run_id]}")
            if running:
                time.sleep(0.5)
