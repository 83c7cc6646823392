"""What a finding record is: the claim, its source, the runs that decide it at each scale, and the
decision rules — all written before any run (the records themselves: analysis/findings/records.py).

A record's arms are overrides of its scale's base config; every arm is solved to the same parameter
count (±2%, models/fair.py), seeds are paired (the batch stream depends only on the seed), and
where `select_lr` is set each arm runs on the scale's lr grid and is judged at its best lr on
validation (mean over seeds). All findings of a scale share one store folder (`findings-cpu`,
`findings-cluster`), so an arm two findings share (the default GateLoop, attention) runs once.

The scales and their base configs: analysis/findings/scales.py.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from seqbench.analysis.findings.planning import GRID_STEP, MAX_EXTENSIONS, GridPlan, extended_grid
from seqbench.analysis.findings.scales import LM_BASE, LR_GRID, SCALES, SEEDS, STORE_FOLDER
from seqbench.analysis.findings.verdicts import Rule
from seqbench.analysis.protocol import choose_lr, validation_metric
from seqbench.bench.sweep import Sweep, expand, set_path


@dataclass(frozen=True)
class Arm:
    label: str
    overrides: dict[str, Any]  # dotted field → value; a dict {"cpu": …, "cluster": …} for values that differ by scale


@dataclass(frozen=True)
class Probe:
    """One sweep of a finding: a base config and arms; LM probes follow the scale's base."""

    name: str
    base: dict[str, Any] | None  # None: the scale's LM base
    arms: tuple[Arm, ...]
    select_lr: bool = False
    changes: dict[str, Any] = field(default_factory=dict)  # dotted field → value (or per scale) for every arm
    lr_from: str | None = None  # another probe of the finding: each arm runs at the lr that probe chose for it

    @property
    def is_speed(self) -> bool:
        """A measurement probe (time, memory): one run per arm, no seeds, no lr."""
        return self.base is not None and self.base.get("kind") == "speed"

    def config_data(self, arm: Arm, scale: str, lr: float | None, seed: int, corpus: str | None = None) -> dict[str, Any]:
        """One run's config; `corpus` replaces the scale's corpus in a language-modelling probe."""
        data = copy.deepcopy(LM_BASE[scale] if self.base is None else self.base)
        if corpus is not None and self.base is None:
            if data["task"]["name"] != "bytes":
                raise ValueError(f"the {scale} scale models {data['task']['name']}, a fixed corpus; --corpus applies to the cpu scale")
            data["task"]["options"]["path"] = str(corpus)
        for dotted, value in [*arm.overrides.items(), *self.changes.items()]:  # a change holds for every arm
            set_path(data, dotted, value[scale] if isinstance(value, dict) and set(value) == set(SCALES) else value)
        if lr is not None:
            set_path(data, "optimizer.lr", lr)
        if data.get("kind") != "speed":
            data["seed"] = seed
        return data

    def lrs(self, scale: str) -> list[float | None]:
        return list(LR_GRID[scale]) if self.select_lr and not self.is_speed else [None]


@dataclass(frozen=True)
class Finding:
    id: str
    claim: str
    source: str
    probes: tuple[Probe, ...]
    rules: tuple[Rule, ...]  # the first decides the verdict; the others are reported beside it
    notes: str = ""
    scales: tuple[str, ...] = field(default=SCALES)

    def metric_of(self, probe: Probe) -> str | None:
        """The metric the probe's first rule judges (what its lr is chosen on)."""
        return next((getattr(r, "metric", None) for r in self.rules if (r.probe or self.probes[0].name) == probe.name), None)

    def arm_runs(self, probe: Probe, arm: Arm, scale: str, corpus: str | None, results, lrs) -> pd.DataFrame:
        """One row per pilot run of the arm at each of `lrs` — lr, seed, status (pending where it has
        not run) and the validation metric its lr is chosen on — read from `results` (the collected
        runs table; None: nothing has run): what protocol.choose_lr reads."""
        selector = validation_metric(self.metric_of(probe) or "loss")
        indexed = results.set_index("run_id") if results is not None and "run_id" in results.columns else None
        rows = []
        for lr in lrs:
            for seed in SEEDS:
                run_id = _run_id(probe.config_data(arm, scale, lr, seed, corpus))
                found = indexed.loc[run_id] if indexed is not None and run_id in indexed.index else None
                rows.append({"lr": lr, "seed": seed, "status": "pending" if found is None else found.get("status", "pending"),
                             selector: math.nan if found is None else found.get(selector, math.nan)})
        return pd.DataFrame(rows)

    def grid_plan(self, probe: Probe, arm: Arm, scale: str, corpus: str | None, results) -> GridPlan:
        """The arm's lrs: the scale's grid, extended by analysis/findings/planning.py's rule from the arm's
        finished runs in `results`."""
        return self._plan(probe, arm, scale, corpus, results)[0]

    def chosen_lr(self, probe: Probe, arm: Arm, scale: str, corpus: str | None, results) -> float | None:
        """The arm's lr (protocol.choose_lr over its pilot seeds) once every run of its — possibly
        extended — grid has finished; None while any is outstanding."""
        plan, runs = self._plan(probe, arm, scale, corpus, results)
        chosen = choose_lr(runs[runs["lr"].isin(plan.grid)], metric=self.metric_of(probe) or "loss", groups=[], lr="lr")
        return float(chosen["chosen_lr"].iloc[0]) if "chosen_lr" in chosen.columns and len(chosen) else None

    def _plan(self, probe: Probe, arm: Arm, scale: str, corpus: str | None, results) -> tuple[GridPlan, pd.DataFrame]:
        """The grid plan and the arm's runs at every lr a plan could reach (read once for both)."""
        base = list(LR_GRID[scale])
        candidates = sorted(float(f"{lr:.6g}") for lr in {*base, *(base[0] / GRID_STEP ** i for i in range(1, MAX_EXTENSIONS + 1)),
                                                             *(base[-1] * GRID_STEP ** i for i in range(1, MAX_EXTENSIONS + 1))})
        runs = self.arm_runs(probe, arm, scale, corpus, results, candidates)
        return extended_grid(base, runs, metric=self.metric_of(probe) or "loss"), runs

    def planned_seeds(self, probe: Probe, arm: Arm, seed_plans: dict | None) -> dict[float, list[int]]:
        """lr → the seeds beyond the pilot that a recorded seed plan asks for this arm (at its chosen lr)."""
        extra: dict[float, list[int]] = {}
        for index, plan in (seed_plans or {}).items():
            rule = self.rules[index]
            if (rule.probe or self.probes[0].name) == probe.name and arm.label in (rule.a, rule.b):
                lr = plan["lrs"].get(arm.label)
                extra.setdefault(lr, [])
                extra[lr] = sorted({*extra[lr], *range(len(SEEDS), plan["seeds"])})
        return extra

    def probe(self, name: str) -> Probe:
        return next(probe for probe in self.probes if probe.name == name)

    def runs(self, scale: str, corpus: str | None = None, results=None, seed_plans: dict | None = None,
             replication_of: str | None = None) -> list[dict[str, Any]]:
        """Every run: probe, arm, lr (None: the base's), seed and its config data; `corpus` (a path)
        for the language-modelling probes in place of the scale's own; `results` (the collected
        runs) extend an arm's lr grid where its best lr sits at an edge, and `seed_plans` (rule index →
        recorded plan) add the seeds an equivalence rule needs (analysis/findings/planning.py).

        `replication_of` (a corpus): this corpus replicates that one — every tuned arm runs at the lr
        chosen for it there, no grid. A probe with `lr_from` runs each arm at the lr its source probe
        chose (on the tuning corpus). An lr not yet decided gives the arm's rows with config None: they
        count as runs the finding needs, so its report says "not run" until they exist."""
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
        tuning = corpus if replication_of is None else replication_of
        rows = []
        for probe in self.probes:
            seeds = [0] if probe.is_speed else SEEDS
            for arm in probe.arms:
                if probe.lr_from is not None or (probe.select_lr and replication_of is not None):
                    source = self.probe(probe.lr_from) if probe.lr_from is not None else probe
                    lr = self.chosen_lr(source, arm, scale, tuning, results)
                    lrs = [lr] if lr is not None else []
                    if lr is None:
                        rows += [{"probe": probe.name, "arm": arm.label, "lr": None, "seed": seed, "config": None} for seed in seeds]
                elif probe.select_lr and not probe.is_speed:
                    lrs = list(self.grid_plan(probe, arm, scale, corpus, results).grid)
                else:
                    lrs = probe.lrs(scale)
                extra = self.planned_seeds(probe, arm, seed_plans)
                for lr in lrs:
                    for seed in [*seeds, *extra.get(lr, [])]:
                        rows.append({"probe": probe.name, "arm": arm.label, "lr": lr, "seed": seed,
                                     "config": probe.config_data(arm, scale, lr, seed, corpus)})
        return rows

    def sweep(self, scale: str, corpus: str | None = None, results=None, seed_plans: dict | None = None,
              replication_of: str | None = None) -> tuple[Sweep, list[dict[str, Any]]]:
        """The finding's runs as one sweep in the scale's store folder, and each run's labels with its
        id (None for a run whose lr is not decided yet). Runs on different corpora share the folder: a
        corpus's content is part of each run's id."""
        rows = self.runs(scale, corpus, results, seed_plans, replication_of)
        configs = []
        for row in rows:
            row["run_id"] = None
            if row["config"] is None:
                continue
            sweep = expand({"name": STORE_FOLDER[scale], "seeds": [row["seed"]], "base": row["config"]},
                           source=f"finding {self.id} ({scale}), {row['probe']}/{row['arm']}")
            row["run_id"] = sweep.runs[0].run_id()
            configs.append(sweep.runs[0])
        unique = list({run.run_id(): run for run in configs}.values())
        axes = {row["run_id"]: {"finding.arm": row["arm"], "finding.probe": row["probe"]} for row in rows if row["run_id"]}
        executor = {"cpu": {"timeout_min": 60},
                    "cluster": {"timeout_min": 1440, "gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 32}}[scale]
        return Sweep(name=STORE_FOLDER[scale], runs=unique, executor=executor, axes=axes), rows


def _run_id(config_data: dict[str, Any]) -> str:
    from seqbench.bench.config import parse_run_config

    return parse_run_config(config_data).run_id()


def missing_corpus(scale: str, corpus: str | None) -> str | None:
    """Why the scale's language-modelling corpus (or `corpus`) cannot be read here, or None."""
    from seqbench.tasks.enwik8 import DataError, find_corpus

    task = LM_BASE[scale]["task"]
    if task["name"] != "bytes":
        return None
    try:
        find_corpus(str(corpus or task["options"]["path"]), task["options"].get("data_dir"))
    except DataError as error:
        return str(error)
    return None
