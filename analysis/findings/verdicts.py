"""Decision rules for findings, fixed before the runs: each turns a results table into an effect, its
interval and a verdict — reproduced, contradicted or inconclusive.

Effects are oriented so that positive favours the claim's first arm. Intervals are 95% Student-t
intervals over paired seeds (the same seed gives every arm the same batches); fewer than 3 paired
seeds is always inconclusive. Where a probe selects the lr, each arm is judged at its best lr on
validation (mean over seeds), chosen before the test metric is looked at.

  Better(a, b)         a beats b: reproduced when the interval of (a − b) lies above 0, contradicted
                       when it lies below 0, else inconclusive.
  Similar(a, b, m)     no difference: reproduced when the interval lies inside ±m, contradicted when
                       it lies entirely outside ±m, else inconclusive.
  Crossover(late, early)  late overtakes early on the validation curves: reproduced when early leads
                       (mean over seeds) at some evaluation and late leads from some step to the end
                       with the final paired interval above 0; contradicted when early still leads at
                       the end (interval below 0) or late leads at every evaluation; else inconclusive.
  Monotone(levels)     each level improves on the one before (means) and the last beats the first
                       (paired interval above 0); contradicted when the last is worse than the first or
                       a step between neighbours is significantly worse; else inconclusive.
  Ratio(a, b, q)       a measured quantity (time, memory) of a over b at a length against a threshold
                       (at least / at most); a case a could not run (over its memory or time budget)
                       counts as an infinite ratio. One measurement (median over repeats): no interval.
"""
from __future__ import annotations

import abc
import math
from dataclasses import KW_ONLY, dataclass, field

import numpy as np
import pandas as pd

from seqbench.analysis.findings.planning import PILOT_SEEDS
from seqbench.analysis.protocol import (
    MIN_SEEDS_FOR_INTERVAL,
    choose_lr,
    higher_is_better,
    interval,
    paired_differences,
    value_at_step,
)


@dataclass(frozen=True)
class Outcome:
    rule: str
    verdict: str
    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    seeds: int = 0
    detail: str = ""
    per_arm: dict = field(default_factory=dict)  # arm → mean value (or the measurement)


def _inconclusive(rule: str, why: str) -> Outcome:
    return Outcome(rule, "inconclusive", detail=why)


def at_chosen_lr(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each (probe, arm) at its chosen lr (protocol.choose_lr: the best mean validation metric over
    seeds), chosen on the pilot seeds alone, so that seeds a plan adds at that lr later
    (analysis/findings/planning.py) can never move the choice; every seed at the chosen lr comes back. Pass
    every run of the probe, unfinished ones included: an arm whose grid has a run outstanding has no
    chosen lr, and none of its runs come back."""
    pilot = runs[runs["seed"] < PILOT_SEEDS] if "seed" in runs.columns else runs
    chosen = choose_lr(pilot, metric=metric, groups=["probe", "arm"], lr="lr")
    if "chosen_lr" not in chosen.columns:  # no lr recorded to choose from: the runs as they are
        return runs
    picked = chosen[["probe", "arm", "lr", "lr_at_edge", "chosen_lr"]].drop_duplicates(["probe", "arm"])
    return runs.merge(picked, on=["probe", "arm", "lr"])


def paired(runs: pd.DataFrame, a: str, b: str, value: str, metric: str | None = None) -> pd.Series:
    return paired_differences(runs, arm="arm", a=a, b=b, value=value, metric=metric)


def _arm_means(runs: pd.DataFrame, value: str, arms: list[str]) -> dict:
    if value not in runs.columns:
        return {arm: math.nan for arm in arms}
    return runs.groupby("arm")[value].mean().reindex(arms).to_dict()


class Rule(abc.ABC):
    """A decision rule; `probe` names the finding's probe it reads (None: the first)."""

    probe: str | None

    @abc.abstractmethod
    def describe(self) -> str:
        """The rule in one line, as `seqbench findings list` shows it."""

    @abc.abstractmethod
    def evaluate(self, runs: pd.DataFrame, curves: pd.DataFrame, rows: pd.DataFrame, scale: str) -> Outcome:
        """The verdict from the finished runs of the rule's probe (and their curves or measured rows)."""


@dataclass(frozen=True)
class Better(Rule):
    a: str
    b: str
    _: KW_ONLY
    metric: str
    probe: str | None = None

    def describe(self) -> str:
        return f"better: {self.a} beats {self.b} on {self.metric} (paired 95% interval of the difference excludes 0)"

    def evaluate(self, runs, curves, rows, scale) -> Outcome:
        at_lr = at_chosen_lr(runs, self.metric)
        differences = paired(at_lr, self.a, self.b, self.metric)
        per_arm = _arm_means(at_lr, self.metric, [self.a, self.b])
        if len(differences) < MIN_SEEDS_FOR_INTERVAL:
            return Outcome(self.describe(), "inconclusive", seeds=len(differences), per_arm=per_arm,
                           detail=f"{len(differences)} paired seed(s); {MIN_SEEDS_FOR_INTERVAL} needed")
        effect, low, high = interval(differences)
        verdict = "reproduced" if low > 0 else "contradicted" if high < 0 else "inconclusive"
        return Outcome(self.describe(), verdict, effect, low, high, len(differences), per_arm=per_arm)


@dataclass(frozen=True)
class Similar(Rule):
    a: str
    b: str
    _: KW_ONLY
    metric: str
    margin: float
    at_step: dict | int | None = None  # a step of the validation curve ({scale: step} where scales differ)
    probe: str | None = None

    def step(self, scale: str) -> int | None:
        return self.at_step.get(scale) if isinstance(self.at_step, dict) else self.at_step

    def describe(self) -> str:
        when = f" at step {self.at_step}" if self.at_step is not None else ""
        return f"similar: {self.a} and {self.b} within ±{self.margin:g} on {self.metric}{when} (whole 95% interval inside the margin)"

    def values(self, runs, curves, scale) -> tuple[pd.DataFrame, str]:
        """The runs at each arm's chosen lr, with the column the rule judges."""
        return value_at_step(at_chosen_lr(runs, self.metric), curves, self.metric, self.step(scale))

    def differences(self, runs, curves, scale) -> pd.Series:
        """Per seed: a − b (signed so that positive favours a), what the interval and a seed plan read."""
        table, column = self.values(runs, curves, scale)
        return paired(table, self.a, self.b, column, self.metric)

    def evaluate(self, runs, curves, rows, scale) -> Outcome:
        table, column = self.values(runs, curves, scale)
        differences = paired(table, self.a, self.b, column, self.metric)
        per_arm = _arm_means(table, column, [self.a, self.b])
        if len(differences) < MIN_SEEDS_FOR_INTERVAL:
            return Outcome(self.describe(), "inconclusive", seeds=len(differences), per_arm=per_arm,
                           detail=f"{len(differences)} paired seed(s); {MIN_SEEDS_FOR_INTERVAL} needed")
        effect, low, high = interval(differences)
        if -self.margin <= low and high <= self.margin:
            verdict = "reproduced"
        elif low > self.margin or high < -self.margin:
            verdict = "contradicted"
        else:
            verdict = "inconclusive"
        return Outcome(self.describe(), verdict, effect, low, high, len(differences), per_arm=per_arm)


@dataclass(frozen=True)
class Crossover(Rule):
    late: str
    early: str
    _: KW_ONLY
    metric: str
    probe: str | None = None

    def describe(self) -> str:
        return f"crossover: {self.late} overtakes {self.early} on the {self.metric} curves and stays ahead to the end"

    def advantage(self, runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
        """Per evaluation step and seed: late's advantage over early (positive: late ahead)."""
        at_lr = at_chosen_lr(runs, self.metric)
        name = self.metric.removeprefix("validation_")
        if name not in curves.columns or at_lr.empty:
            return pd.DataFrame(columns=["step", "seed", "advantage"])
        valid = curves[curves["split"] == "validation"].merge(at_lr[["run_id", "arm", "seed"]], on="run_id")
        wide = valid.pivot_table(index=["step", "seed"], columns="arm", values=name, aggfunc="first")
        if self.late not in wide.columns or self.early not in wide.columns:
            return pd.DataFrame(columns=["step", "seed", "advantage"])
        sign = 1.0 if higher_is_better(name) else -1.0
        advantage = (sign * (wide[self.late] - wide[self.early])).dropna().rename("advantage")
        return advantage.reset_index()

    def evaluate(self, runs, curves, rows, scale) -> Outcome:
        advantage = self.advantage(runs, curves)
        if advantage.empty:
            return _inconclusive(self.describe(), "no validation curves for both arms")
        mean = advantage.groupby("step")["advantage"].mean().sort_index()
        last = mean.index[-1]
        final = advantage[advantage["step"] == last].set_index("seed")["advantage"]
        if len(final) < MIN_SEEDS_FOR_INTERVAL:
            return _inconclusive(self.describe(), f"{len(final)} paired seed(s) at the last step; {MIN_SEEDS_FOR_INTERVAL} needed")
        effect, low, high = interval(final)
        ahead_from = crossover_step(mean)
        detail = (f"{self.late} ahead from step {ahead_from} to the end" if ahead_from is not None
                  else f"{self.late} never stays ahead to the end")
        if high < 0:
            verdict = "contradicted"
        elif (mean > 0).all():
            verdict, detail = "contradicted", f"{self.late} leads at every evaluation: nothing to overtake"
        elif ahead_from is not None and low > 0:
            verdict = "reproduced"
        else:
            verdict = "inconclusive"
        return Outcome(self.describe(), verdict, effect, low, high, len(final), detail=detail,
                       per_arm={"crossover_step": ahead_from, "last_step": int(last)})


def crossover_step(mean_advantage: pd.Series) -> int | None:
    """The first step from which the mean advantage stays positive to the end, if it was ever ≤ 0 before."""
    positive = (mean_advantage > 0).to_numpy()
    if not positive[-1] or positive.all():
        return None
    last_non_positive = int(np.flatnonzero(~positive)[-1])
    return int(mean_advantage.index[last_non_positive + 1])


@dataclass(frozen=True)
class Monotone(Rule):
    levels: tuple[str, ...]
    _: KW_ONLY
    metric: str
    probe: str | None = None

    def describe(self) -> str:
        return f"monotone: {self.metric} improves along {' → '.join(self.levels)} (last vs first interval above 0)"

    def evaluate(self, runs, curves, rows, scale) -> Outcome:
        at_lr = at_chosen_lr(runs, self.metric)
        means = pd.Series(_arm_means(at_lr, self.metric, list(self.levels)))
        per_arm = means.to_dict()
        overall = paired(at_lr, self.levels[-1], self.levels[0], self.metric)
        if len(overall) < MIN_SEEDS_FOR_INTERVAL or means.isna().any():
            return Outcome(self.describe(), "inconclusive", seeds=len(overall), per_arm=per_arm,
                           detail=f"{len(overall)} paired seed(s) or a level without runs")
        effect, low, high = interval(overall)
        sign = 1.0 if higher_is_better(self.metric) else -1.0
        steps_improve = bool((sign * means.diff().dropna() > 0).all())
        reversals = [f"{a} → {b}" for a, b in zip(self.levels, self.levels[1:])
                     if len(d := paired(at_lr, b, a, self.metric)) >= MIN_SEEDS_FOR_INTERVAL and interval(d)[2] < 0]
        best = (means.idxmax() if higher_is_better(self.metric) else means.idxmin())
        detail = f"best level: {best}" + (f"; significant reversals: {', '.join(reversals)}" if reversals else "")
        if high < 0 or reversals:
            verdict = "contradicted"
        elif steps_improve and low > 0:
            verdict = "reproduced"
        else:
            verdict = "inconclusive"
        return Outcome(self.describe(), verdict, effect, low, high, len(overall), detail=detail, per_arm=per_arm)


@dataclass(frozen=True)
class Ratio(Rule):
    a: str
    b: str
    _: KW_ONLY
    quantity: str
    length: int
    at_least: float | None = None
    at_most: float | None = None
    measure: str = "forward_backward"
    probe: str | None = None

    def __post_init__(self):
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("Ratio needs exactly one of at_least and at_most")

    def describe(self) -> str:
        bound = f"≥ {self.at_least:g}" if self.at_least is not None else f"≤ {self.at_most:g}"
        return f"ratio: {self.quantity} of {self.a} / {self.b} at L={self.length} ({self.measure}) {bound}"

    def evaluate(self, runs, curves, rows, scale) -> Outcome:
        if rows.empty:
            return _inconclusive(self.describe(), "no measurements")
        at = rows[(rows["length"] == self.length) & (rows["measure"] == self.measure)]
        values = {}
        for arm in (self.a, self.b):
            found = at[at["arm"] == arm]
            if found.empty:
                return _inconclusive(self.describe(), f"no measurement of {arm} at L={self.length}")
            row = found.iloc[0]
            values[arm] = float(row[self.quantity]) if row["status"] == "ok" and pd.notna(row[self.quantity]) else math.inf
        if math.isinf(values[self.b]):
            return _inconclusive(self.describe(), f"{self.b} did not run at L={self.length}")
        ratio = values[self.a] / values[self.b]
        holds = ratio >= self.at_least if self.at_least is not None else ratio <= self.at_most
        detail = "" if math.isfinite(values[self.a]) else f"{self.a} over its budget at L={self.length} (ratio taken as infinite)"
        return Outcome(self.describe(), "reproduced" if holds else "contradicted", ratio, detail=detail, per_arm=values)
