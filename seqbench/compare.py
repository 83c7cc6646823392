"""`seqbench compare MIXER`: a mixer (built-in, or any `package.module:Class`) against the built-in
baselines through the standard suites, with the fair protocol — every model at one parameter count
(±2%), each arm's lr chosen on validation (analysis/protocol.py), paired seeds — and one report.

    mqar    Zoology's MQAR at two (length, pairs) cells and two widths: accuracy against state size
    mad     MAD's six tasks at their baseline settings, lr × weight decay: accuracy per task, MAD score
    lm      a byte corpus (GCIDE by default, any file with --corpus): bits per byte over seeds
    speed   forward+backward time and memory of each mixer's default mode against length
    state   state tracking with length generalisation: parity, a running sum mod 5, the word problem of
            A5 — trained on words of 3–40, the final state's accuracy at every test length up to 256
    length  length generalisation beyond the training length: MQAR trained at one length and tested
            at up to 8× it; bytes trained on short windows, bits per byte per position of 8× longer ones

Each suite is a sweep under the results root (`compare-<mixer>-<suite>`), resumable like every
sweep: run again, it skips what finished. Budgets: `quick` (minutes, to see it work), `cpu` (a
2-core machine's evening), `cluster` (the suites' published scale, for --executor slurm).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from seqbench import models, tasks
from seqbench.analysis.collect import collect, collect_rows
from seqbench.analysis.length_plots import plot_length_generalisation
from seqbench.analysis.mad import calibration, chosen_settings, mad_scores
from seqbench.analysis.plots import (
    final_table,
    plot_accuracy_against_state_size,
    plot_final,
    plot_mad_scores,
)
from seqbench.analysis.protocol import CHANCE_MARGIN, at_chance
from seqbench.analysis.report import results_table, speed_report
from seqbench.analysis.style import length_slices
from seqbench.bench.estimate import estimate, format_duration
from seqbench.bench.protocols import MAD_ORDER, MAD_SCALES, MAD_TASKS, mad_sweep, mqar_sweep
from seqbench.bench.store import FINISHED, Store
from seqbench.bench.sweep import expand
from seqbench.campaign import submit_unless_cancelled
from seqbench.core import atomic_write_csv, atomic_write_text
from seqbench.slurm.parameters import executor_parameters

SUITES = ("mqar", "mad", "lm", "speed", "state", "length")
# the state suite's tasks: abelian (Z_2, Z_5) and the smallest non-solvable group (A_5, tasks/groups.py)
STATE_TASKS = (("parity", {}), ("modular_arithmetic", {"modulus": 5}), ("word_problem", {"group": "A5"}))
# The lm, speed and state suites' settings per budget; mqar and mad are the published protocols
# (bench/protocols.py), at their sources' scale on `cluster` and at seqbench's named reductions on
# `cpu` and `quick` (the report says which).
BUDGETS = {
    "quick": {"steps": 30, "lrs": [3e-3, 1e-2], "seeds": [0], "parameters": 20_000, "speed_lengths": [64, 256],
              "state": {"steps": 30, "lrs": [3e-3, 1e-2], "seeds": [0], "parameters": 20_000, "max_length": 16, "test_lengths": [16, 32]},
              "length": {"steps": 30, "lrs": [3e-3, 1e-2], "seeds": [0], "parameters": 20_000, "mqar": (32, 4, [32, 64, 128], 256),
                         "bytes": (32, 128)}},
    "cpu": {"steps": 1500, "lrs": [1e-3, 3e-3, 1e-2], "seeds": [0, 1, 2], "parameters": 120_000,
            "speed_lengths": [256, 1024, 4096],
            "state": {"steps": 2000, "lrs": [1e-3, 3e-3, 1e-2], "seeds": [0], "parameters": 30_000, "max_length": 40,
                      "test_lengths": [40, 80, 160, 256]},
            "length": {"steps": 1000, "lrs": [1e-3, 3e-3, 1e-2], "seeds": [0], "parameters": 60_000,
                       "mqar": (64, 4, [64, 128, 256, 512], 1024), "bytes": (128, 1024)}},
    "cluster": {"steps": 20_000, "lrs": [1e-4, 4.6e-4, 2.2e-3, 1e-2], "seeds": [0, 1, 2], "parameters": 1_000_000,
                "speed_lengths": [1024, 4096, 16384],
                "state": {"steps": 20_000, "lrs": [1e-4, 4.6e-4, 2.2e-3, 1e-2], "seeds": [0, 1, 2], "parameters": 1_000_000,
                          "max_length": 40, "test_lengths": [40, 80, 160, 256, 512]},
                "length": {"steps": 20_000, "lrs": [1e-4, 4.6e-4, 2.2e-3, 1e-2], "seeds": [0, 1, 2], "parameters": 1_000_000,
                           "mqar": (256, 16, [256, 512, 1024, 2048], 4096), "bytes": (512, 4096)}},
}
# each budget's scale of the published protocols
PROTOCOL_SCALE = {"quick": {"mad": "quick", "mqar": "quick"}, "cpu": {"mad": "cpu", "mqar": "cpu"},
                  "cluster": {"mad": "mad", "mqar": "zoology"}}


# `quick` is for seeing it work in minutes on a laptop: two baselines, a 2017 one and a 2024 one, unless
# named; `cpu` and `cluster` compare with every registered mixer
QUICK_BASELINES = ("softmax_attention", "gla")


def default_baselines(mixer: str, budget: str, baselines: list[str] | None) -> list[str]:
    chosen = baselines or (list(QUICK_BASELINES) if budget == "quick" else models.available())
    return [name for name in chosen if name != mixer]


def sweep_name(mixer: str, suite: str) -> str:
    return f"compare-{re.sub(r'[^A-Za-z0-9_.-]', '-', mixer)[:80]}-{suite}"


def suite_specs(mixer: str, suite: str, budget: str, *, baselines: list[str], corpus: str | None) -> list[dict[str, Any]]:
    """The sweep specs (as data) of one suite for `mixer` and the baselines."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; valid: {', '.join(SUITES)}, all")
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; valid: {', '.join(BUDGETS)}")
    b, names = BUDGETS[budget], list(dict.fromkeys([mixer, *baselines]))

    def training(steps: int, batch_size: int) -> dict[str, Any]:
        every = max(steps // 5, 10)
        return {"steps": steps, "eval_every": every, "checkpoint_every": every, "batch_size": batch_size, "threads": 1}

    if suite == "mqar":
        return [mqar_sweep(PROTOCOL_SCALE[budget]["mqar"], mixers=names, name=sweep_name(mixer, suite))]
    if suite == "mad":
        return [mad_sweep(task, PROTOCOL_SCALE[budget]["mad"], mixers=names, name=f"{sweep_name(mixer, suite)}-{task.replace('_', '-')}")
                for task in MAD_ORDER]
    if suite == "state":
        t = b["state"]
        return [{"name": f"{sweep_name(mixer, suite)}-{task.replace('_', '-')}", "seeds": t["seeds"],
                 "grid": {"model.name": names, "optimizer.lr": t["lrs"]},
                 "base": {**training(t["steps"], 32), "model": {"n_layers": 2, "mlp_ratio": 2, "target_parameters": t["parameters"]},
                          "task": {"name": task, "options": {**options, "min_length": 3, "max_length": t["max_length"],
                                                             "test_lengths": t["test_lengths"], "validation_examples": 256,
                                                             "test_examples": 64 if budget == "quick" else 512}}}}
                for task, options in STATE_TASKS]
    if suite == "length":
        t = b["length"]
        (length, pairs, test_lengths, vocab), (window, test_window) = t["mqar"], t["bytes"]
        common = {"seeds": t["seeds"], "grid": {"model.name": names, "optimizer.lr": t["lrs"]}}
        model = {"n_layers": 2, "mlp_ratio": 2, "target_parameters": t["parameters"]}
        return [{"name": f"{sweep_name(mixer, suite)}-mqar", **common,
                 "base": {**training(t["steps"], 32), "model": model,
                          "task": {"name": "mqar", "options": {"vocab_size": vocab, "seq_len": length, "num_pairs": pairs,
                                                               "test_configs": [[n, pairs] for n in test_lengths],
                                                               "validation_examples": 256, "test_examples": 256}}}},
                {"name": f"{sweep_name(mixer, suite)}-bytes", **common,
                 "base": {**training(t["steps"], 16), "model": model,
                          "task": {"name": "bytes", "options": {"path": corpus or "gcide.dict.dz", "seq_len": window,
                                                                "test_seq_len": test_window,
                                                                "eval_bytes": 20_000 if budget == "quick" else 200_000}}}}]
    grid = {"model.name": names, "optimizer.lr": b["lrs"]}
    if suite == "lm":
        return [{"name": sweep_name(mixer, suite), "seeds": b["seeds"], "grid": grid,
                 "base": {**training(b["steps"], 16), "model": {"n_layers": 2, "mlp_ratio": 2, "target_parameters": b["parameters"]},
                          "task": {"name": "bytes", "options": {"path": corpus or "gcide.dict.dz", "seq_len": 128,
                                                                "eval_bytes": 20_000 if budget == "quick" else 200_000}}}}]
    return [{"name": sweep_name(mixer, suite), "grid": {"model.name": names},
             "base": {"kind": "speed", "model": {"d_model": 128},
                      "speed": {"lengths": b["speed_lengths"], "batch_size": 4, "repeats": 3, "threads": 1,
                                "measures": ["forward_backward"], "memory_budget_gb": 6.0, "time_budget_s": 30.0}}}]


def compare(mixer: str, *, suites: list[str], budget: str = "cpu", executor: str = "local", root=None,
            out: str | Path | None = None, baselines: list[str] | None = None, corpus: str | None = None,
            echo=print, run: bool = True, accept_changed_code: bool = False, overrides: dict | None = None,
            parallel: int | None = None) -> Path | None:
    """Run (or resume) every suite's sweeps and write the report; returns README.md's path, or None
    when `seqbench cancel` stopped one of its sweeps (nothing more is submitted; run again to resume).
    `run=False` writes the report from what has finished and submits nothing. `overrides` are the
    executor's parameters (Slurm's included), checked before anything is submitted."""
    models.registry.get_class(mixer)  # a bad mixer name or path fails here, before anything runs
    baselines = default_baselines(mixer, budget, baselines)
    plans = {suite: suite_specs(mixer, suite, budget, baselines=baselines, corpus=corpus) for suite in suites}
    for specs in plans.values():  # every sweep expands and every executor parameter is checked before the first run
        for spec in specs:
            executor_parameters(expand(spec).executor, overrides or {})
    out = Path(out or Path("results") / "compare" / sweep_name(mixer, "report"))
    sections = [f"# {mixer} against {', '.join(baselines)}", "",
                f"`seqbench compare {mixer} --suite {','.join(suites)} --budget {budget}`. Every model of a suite at one "
                "parameter count (±2%) or width, each arm's lr chosen on mean validation over seeds, test reported.", ""]
    for suite, specs in plans.items():
        for spec in specs if run else ():
            _, cancelled = submit_unless_cancelled(expand(spec), executor=executor, root=root, echo=echo, overrides=overrides,
                                                   parallel=1 if suite == "speed" else parallel, accept_changed_code=accept_changed_code)
            if cancelled:
                return None
        if run and executor == "slurm":
            continue  # the jobs run later: `seqbench compare` again writes the report from what finished
        sections += _section(suite, specs, root, out / suite, budget)
    atomic_write_text(out / "README.md", "\n".join(sections))
    return out / "README.md"


def plan(mixer: str, *, suites: list[str], budget: str = "cpu", root=None, baselines: list[str] | None = None,
         corpus: str | None = None, parallel: int | None = None, echo=print) -> float:
    """`compare --dry-run`: each suite's sweeps, their runs (finished and to run) and the machine time
    the rest will take here (bench/estimate.py: measured step costs); submits nothing. Returns the
    estimated seconds in all."""
    models.registry.get_class(mixer)
    baselines = default_baselines(mixer, budget, baselines)
    at_once = parallel or 1
    total = 0.0
    for suite in suites:
        for spec in suite_specs(mixer, suite, budget, baselines=baselines, corpus=corpus):
            sweep = expand(spec)
            if suite == "speed":
                budget_s = spec["base"]["speed"]["time_budget_s"] * len(spec["grid"]["model.name"])
                echo(f"{suite:6} {sweep.name}: {len(sweep.runs)} measurements, at most ≈ {format_duration(budget_s)} (their time budget)")
                total += budget_s
                continue
            found = estimate(sweep, root)
            echo(f"{suite:6} {sweep.name}: {found.describe(at_once)}")
            total += found.seconds / at_once
    echo(f"in all: ≈ {format_duration(total)} of machine time here for what is left (training steps; evaluations add to it)")
    return total


def _section(suite: str, specs: list[dict], root, folder: Path, budget: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    if suite == "speed":
        if not Store(root).sweep(specs[0]["name"]).exists() or collect_rows(specs[0]["name"], root).empty:
            return ["## speed", "", "missing: no measurement has finished yet", ""]
        summary, written = speed_report(specs[0]["name"], root, folder)
        return ["## speed", "", _markdown(summary), "", *[f"![{p.name}]({folder.name}/{p.name})" for p in written if p.suffix == ".png"], ""]
    expected = {spec["name"]: {run.run_id() for run in expand(spec).runs} for spec in specs}
    tables = [collect(name, root)[0] for name in expected if Store(root).sweep(name).exists()]
    runs = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["run_id", "status"])
    runs = runs[runs["run_id"].isin(set().union(*expected.values()))]  # a run of an earlier grid is not this suite's
    done = set(runs.loc[runs["status"].isin(FINISHED), "run_id"])
    labels = {spec["name"]: spec["base"]["task"]["name"].removeprefix("mad_") if suite in ("mad", "state", "length") else suite
              for spec in specs}
    progress = ", ".join(f"{labels[name]} {len(ids & done)} of {len(ids)}" for name, ids in expected.items())
    if runs.empty or not done:
        return [f"## {suite}", "", f"no finished runs yet (finished: {progress})", ""]
    atomic_write_csv(folder / "runs.csv", results_table(runs))
    commits = ", ".join(sorted(set(runs["provenance.commit"].dropna()))) if "provenance.commit" in runs.columns else "not recorded"
    dirty = "provenance.dirty" in runs.columns and runs.loc[runs["run_id"].isin(done), "provenance.dirty"].fillna(True).astype(bool).any()
    total = sum(map(len, expected.values()))
    finished = (f"{len(done)} of {total} runs finished ({progress}; [runs.csv]({folder.name}/runs.csv));"
                f" code: {commits}{' — some runs from a dirty tree' if dirty else ' (clean tree)'}")
    if suite == "mad":
        return _mad_lines(runs, budget, finished, folder)
    if suite == "state":
        return ["## state tracking and length generalisation (final state's test accuracy by word length; lr chosen on "
                "validation)", "", finished, "", *_length_lines(runs, folder)]
    if suite == "length":
        return ["## length generalisation (MQAR's test accuracy by sequence length; bits per byte by position in test windows "
                "longer than training; lr chosen on validation at the training length)", "", finished, "", *_length_lines(runs, folder)]
    lines = [f"## {suite}", "", finished, ""]
    if suite == "mqar":
        lines.append(f"![accuracy against state size]({folder.name}/{plot_accuracy_against_state_size(runs, folder / 'state_size.png').name})")
    table, metric, _, protocol = final_table(runs)
    means = table.groupby("model.name")[metric].agg(["mean", "count"]).reset_index()
    chance = tasks.TASKS.get_class("mqar").chance_accuracy(specs[0]["base"]["task"]["options"]) if suite == "mqar" else None
    if chance is not None and len(means) and all(at_chance(value, chance) for value in means["mean"]):
        lines += ["", f"**Below the budget where this suite separates mixers:** every arm is within {CHANCE_MARGIN} of chance "
                  "(no ranking is read from it; run a larger budget)."]
    lines += ["", f"{metric} ({protocol}):", "", _markdown(means), "", *_edge_lines(table),
              f"![final]({folder.name}/{plot_final(runs, folder / 'final.png').name})", ""]
    return lines


def _edge_lines(table: pd.DataFrame) -> list[str]:
    """The configurations whose chosen lr sits at an edge of the grid tried (the optimum may lie beyond)."""
    if "lr_at_edge" not in table.columns or not table["lr_at_edge"].any():
        return ["Every chosen lr is inside its grid.", ""]
    flagged = table[table["lr_at_edge"].astype(bool)]
    axes = [c for c in table.columns if (c.startswith("task.options.") or c == "model.d_model") and table[c].astype(str).nunique() > 1]
    def name(row) -> str:
        settings = [f"{axis.split('.')[-1]}={row[axis]:g}" for axis in axes]
        return f"{row['model.name']} ({', '.join([*settings, f'lr {row.chosen_lr:g}'])})"

    names = sorted({name(row) for _, row in flagged.iterrows()})
    return [f"**lr at edge of the grid** (the optimum may lie beyond it): {'; '.join(names)}.", ""]


def _mad_lines(runs: pd.DataFrame, budget: str, finished: str, folder: Path) -> list[str]:
    """MAD's scores, each choice's lr (flagged at an edge) and the scores against the published
    values — unless every arm is at chance, when the budget cannot separate mixers."""
    scale = PROTOCOL_SCALE[budget]["mad"]
    s = MAD_SCALES[scale]
    protocol = ("MAD's own protocol" if scale == "mad" else
                f"seqbench's {scale} reduction of MAD: width {s['d_model']}, batch {s['batch_size']}, {s['steps']} steps, lr "
                f"{', '.join(f'{lr:g}' for lr in s['lrs'])}, weight decay {', '.join(f'{w:g}' for w in s['weight_decays'])}, "
                "baseline settings only (MAD: width 128, batch 128, 200 epochs, lr 1e-4, 5e-4, 1e-3 × weight decay 0, 0.1, "
                "every difficulty setting)")
    scores = mad_scores(runs, tasks=MAD_ORDER)
    chance = {task: 1 / MAD_TASKS[task]["baseline"]["vocab_size"] for task in MAD_TASKS}
    measured = scores.set_index("model")[list(MAD_ORDER)] if len(scores) else pd.DataFrame()
    below = len(measured) and all(at_chance(measured.at[m, t], chance[t]) for m in measured.index for t in MAD_ORDER
                                  if pd.notna(measured.at[m, t]))
    choices = chosen_settings(runs)
    plot = plot_mad_scores(scores, folder / "mad_scores.png") if len(scores) else None
    lines = ["## MAD (baseline settings; macro accuracy, lr and weight decay chosen on validation)", "", finished, "",
             f"Protocol: {protocol}.", "", _markdown(scores), "", "— : a run of that task's grid has not finished (a MAD score needs all six).", "",
             *([f"![MAD scores]({folder.name}/{plot.name})", ""] if plot else [])]
    edge = choices[choices["lr at edge"]] if len(choices) else choices
    lines += (["**lr at edge of the grid** (the optimum may lie beyond it): "
               + "; ".join(f"{r.model} on {r.task} (lr {r.lr:g})" for r in edge.itertuples()) + ".", ""]
              if len(edge) else ["Every chosen lr is inside its grid.", ""] if len(choices) else [])
    if below:
        return lines + [f"**Below the budget where this suite separates mixers:** every arm is within {CHANCE_MARGIN} of chance "
                        "on every task; published values are not compared.", ""]
    return lines + ["Against published MAD results (min–max over sources at MAD's own protocol, docs/sources.md; "
                    f"\"at chance\": within {CHANCE_MARGIN} of guessing, not compared):", "",
                    _markdown(calibration(scores, chance)), ""]


def _length_lines(runs: pd.DataFrame, folder: Path) -> list[str]:
    """Per task: each mixer's mean at every length it was tested at (each at its chosen lr; a mixer
    whose grid is unfinished is left out), the chosen lrs at an edge, and the length plot."""
    lines = []
    for task, of_task in runs.groupby("task.name"):
        table, _, _, _ = final_table(of_task)
        columns, _ = length_slices(table.columns)
        ordered = sorted(columns, key=columns.get)
        means = table.groupby("model.name")[ordered].mean().rename(columns=lambda c: f"L={columns[c]}")
        plot = plot_length_generalisation(of_task, folder / f"{task}.png")
        lines += [f"### {task}", "", _markdown(means.reset_index()), "", *_edge_lines(table), f"![{task}]({folder.name}/{plot.name})", ""]
    return lines


def _markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "(none)"
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rows = ["| " + " | ".join(("—" if v != v else f"{v:.4g}") if isinstance(v, float) else str(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, "|" + "---|" * len(table.columns), *rows])
