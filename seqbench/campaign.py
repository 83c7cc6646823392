"""Launching work, on the top floor with compare: a sweep, a speed sweep and the findings campaign
(plan → submit → re-plan) are each one call here, so the CLI only parses arguments. Every launch
goes through `submit_unless_cancelled`, the one place that notices `seqbench cancel`.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from seqbench.analysis.collect import collect
from seqbench.bench.store import Store
from seqbench.bench.sweep import Sweep, load_sweep
from seqbench.core import atomic_write_json
from seqbench.slurm.executors import Submission, submit


def submit_unless_cancelled(sweep: Sweep, *, root=None, echo: Callable[[str], None] = print, **options) -> tuple[Submission, bool]:
    """Submit `sweep` (slurm/executors.submit's options); also whether `seqbench cancel` stopped it
    while it ran — then the caller plans and submits nothing more."""
    started = time.time()
    submission = submit(sweep, root=root, echo=echo, **options)
    cancelled = Store(root).sweep(sweep.name).cancelled_since(started)
    if cancelled:
        echo(f"cancelled: {sweep.name} was cancelled; nothing more is submitted (run the command again to resume)")
    return submission, cancelled


def run_sweep(file: str, settings: list[str], *, max_runs: int, root=None, **options) -> tuple[Sweep, Submission]:
    """A sweep file with `settings` (`--set FIELD=VALUE`) expanded and submitted; what is finished is skipped."""
    sweep = load_sweep(file, settings, max_runs=max_runs)
    submission, _ = submit_unless_cancelled(sweep, root=root, **options)
    return sweep, submission


def run_speed(files: list[str], settings: list[str], *, max_runs: int, root=None, **options) -> str:
    """Speed / op sweep files that share one results folder, one run at a time (concurrent runs would
    share the cores being timed); returns the sweep's name."""
    sweeps = [load_sweep(path, settings, max_runs=max_runs) for path in files]
    names = {sweep.name for sweep in sweeps}
    if len(names) != 1:
        raise ValueError(f"speed sweep files given together must share one name (their results folder), got {sorted(names)}")
    for sweep in sweeps:
        _, cancelled = submit_unless_cancelled(sweep, root=root, parallel=1, **options)
        if cancelled:
            break
    return names.pop()


def run_findings(chosen: list, *, scale: str, corpora: list[str | None], root=None, executor: str = "local",
                 parallel: int | None = None, dry_run: bool = False, echo: Callable[[str], None] = print, **options) -> None:
    """Each finding's sweep in turn (so each finishes, and can be committed, before the next), on each
    corpus: the first tunes every arm's lr, each further one replicates at those lrs. A local launch
    re-plans after every round — a finished grid at an edge extends it, a finished pilot plans seeds
    (analysis/findings/planning.py) — until a round submits nothing new; on Slurm nothing has finished
    yet, so the extensions come with a later `findings run`."""
    from seqbench.analysis.findings import STORE_FOLDER

    folder = STORE_FOLDER[scale]
    for finding in chosen:
        for number, corpus in enumerate(corpora):
            replication_of = corpora[0] if number > 0 else None
            submitted = None
            while True:
                store = Store(root).sweep(folder)
                results, curves = collect(store.name, root, save=False) if store.exists() else (None, None)
                plans = {} if results is None else record_seed_plans(finding, scale, corpus, results, curves, root,
                                                                     write=not dry_run, replication_of=replication_of)
                sweep, rows = finding.sweep(scale, corpus, results, plans, replication_of)
                run_ids = {run.run_id() for run in sweep.runs}
                if run_ids == submitted or dry_run and submitted is not None:
                    break
                measures = any(run.kind != "train" for run in sweep.runs)  # timings need the machine to themselves
                undecided = sum(row["run_id"] is None for row in rows)
                echo(f"finding {finding.id} ({scale}{f', {corpus}' if corpus else ''}):"
                     + (f" {undecided} run(s) wait for an lr not decided yet" if undecided else ""))
                _, cancelled = submit_unless_cancelled(sweep, root=root, echo=echo, executor=executor, dry_run=dry_run,
                                                       parallel=1 if measures else parallel, **options)
                if cancelled:
                    return
                if executor == "slurm":
                    break
                submitted = run_ids



def record_seed_plans(finding, scale: str, corpus: str | None, results, curves, root, *, write: bool = True,
                      replication_of: str | None = None) -> dict[int, dict]:
    """Rule index → seed plan: the recorded ones, and — with `write` — each new one a completed pilot
    allows, recorded in the store once before any of its seeds is submitted (analysis/findings/report.py
    computes them; this, the campaign, is what writes)."""
    from seqbench.analysis.findings.report import pilot_seed_plans, plan_path, recorded_seed_plans

    plans = recorded_seed_plans(finding, scale, corpus, root)
    if write:
        for index, plan in pilot_seed_plans(finding, scale, corpus, results, curves, root, replication_of).items():
            atomic_write_json(plan_path(finding, index, scale, corpus, root), plan)
            plans[index] = plan
    return plans
