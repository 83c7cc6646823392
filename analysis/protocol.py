"""The comparison protocol, written down once: every report, verdict and plot calls these.

- Each arm (a configuration of a sweep, an arm of a finding) gets the learning rate whose **mean
  validation metric over seeds** is best (`choose_lr`, the one lr rule: sweep reports, plots, MAD,
  the findings' verdicts, grid extensions, seed plans, replications and long runs all call it); its
  test metric is reported at that lr. An arm has a chosen lr only once every seed of every lr in its
  grid has finished.
  Why: a single lr ranks models by their sensitivity to it (on the demo, softmax attention goes from
  0.04 to 1.00 accuracy across lr 1e-4 … 1e-2 while RetNet peaks at 0.27); choosing on validation,
  never on test, keeps the test number honest (Zoology, arXiv 2312.04927); one lr per arm, not one
  per seed, keeps the seeds of an arm one configuration, so their spread is the seed noise alone.
  An lr at the edge of the grid tried is flagged: the optimum may lie beyond it.
- Intervals are Student-t over seeds; fewer than `MIN_SEEDS_FOR_INTERVAL` seeds show none.
- Two arms are compared through their per-seed differences at each arm's chosen lr: seeds fix the
  data stream and the initialisation for every arm alike, so the same seed pairs them.
- An accuracy within `CHANCE_MARGIN` of its task's chance level is "at chance": a suite where every
  arm is at chance is below the budget where it separates mixers, and is reported as that — never
  ranked, never compared with published numbers.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from seqbench.analysis.collect import varying_columns
from seqbench.bench.store import FINISHED  # a diverged run has finished: its lr was too high, a result in itself

LR = "optimizer.lr"
MIN_SEEDS_FOR_INTERVAL = 3
CHANCE_MARGIN = 0.05  # absolute accuracy: five points above guessing is not yet a mixer that learned the task
LOWER_IS_BETTER = ("bpc", "loss")


def higher_is_better(metric: str) -> bool:
    return not any(metric.endswith(stem) for stem in LOWER_IS_BETTER)


def validation_metric(metric: str) -> str:
    """final_accuracy (reported on test), validation_accuracy or accuracy → validation_accuracy (what
    the lr is chosen on). A slice of the test split (a length, a horizon bucket: final_accuracy/end/L160)
    is chosen on its whole metric (validation_accuracy): the validation split is the training distribution."""
    return "validation_" + metric.split("/")[0].removeprefix("final_").removeprefix("validation_")


def configuration_columns(runs: pd.DataFrame) -> list[str]:
    """The sweep's axes that define a configuration: every varying axis but lr (chosen) and seed (repeats)."""
    return [c for c in varying_columns(runs) if c != LR]


def finished(runs: pd.DataFrame, selector: str) -> pd.Series:
    """Which runs have finished: by their status where the table has one, else by a value of `selector`."""
    if "status" in runs.columns:
        return runs["status"].isin(FINISHED)
    return runs[selector].notna() if selector in runs.columns else pd.Series(False, index=runs.index)


def choose_lr(runs: pd.DataFrame, *, metric: str, groups: list[str], lr: str = LR, warn: bool = False,
              also: tuple[str, ...] = ()) -> pd.DataFrame:
    """The one lr rule: per group (an arm), every run at the lr whose **mean validation metric over
    seeds** is best, with `chosen_lr` and `lr_at_edge` (the chosen lr is the smallest or largest of
    that group's grid). A group is chosen for only once every run it holds — every seed of every lr of
    its grid, so pass the unfinished runs too — has finished; until then it has no choice and none of
    its runs come back (a caller reports it missing, never the best of what happened to finish). A
    diverged run counts as the worst value, so an lr that diverges on any seed loses.
    `also` names further hyperparameters chosen jointly with the lr (MAD's weight decay): the best
    (lr, …) combination wins. Runs without an lr to choose (the column absent or empty) come back as
    they are."""
    if also:
        combined = runs.assign(**{"__lr": list(zip(*(runs[c] for c in (lr, *also))))})
        chosen = choose_lr(combined, metric=metric, groups=groups, lr="__lr", warn=False)
        if "chosen_lr" not in chosen.columns:
            return chosen
        span = runs.groupby(list(groups), dropna=False)[lr].agg(["min", "max", "nunique"]).reset_index() if groups else \
            pd.DataFrame([{"min": runs[lr].min(), "max": runs[lr].max(), "nunique": runs[lr].nunique()}])
        chosen = chosen.drop(columns=["__lr", "lr_at_edge", "chosen_lr"]).assign(chosen_lr=chosen[lr])
        chosen = chosen.merge(span, on=list(groups), how="left") if groups else chosen.assign(**span.iloc[0].to_dict())
        at_edge = (chosen["nunique"] > 1) & ((chosen[lr] == chosen["min"]) | (chosen[lr] == chosen["max"]))
        return chosen.drop(columns=["min", "max", "nunique"]).assign(lr_at_edge=at_edge.astype(bool))
    if lr not in runs.columns or runs[lr].isna().all():
        return runs
    selector, keys = validation_metric(metric), list(groups)
    worst = -math.inf if higher_is_better(metric) else math.inf
    values = runs[selector].astype(float) if selector in runs.columns else pd.Series(math.nan, index=runs.index)
    scored = runs.assign(__finished=finished(runs, selector).to_numpy(), __value=values.fillna(worst).to_numpy())
    complete = scored.groupby(keys, dropna=False)["__finished"].transform("all") if keys else \
        pd.Series(bool(scored["__finished"].all()), index=scored.index)
    ready = scored[complete.astype(bool) & scored[lr].notna()]
    if ready.empty:
        return runs.iloc[:0].assign(lr_at_edge=pd.Series(dtype=bool), chosen_lr=pd.Series(dtype=float))
    by = [*keys, lr]
    means = ready.groupby(by, dropna=False)["__value"].mean().reset_index()
    means = means.sort_values("__value", ascending=not higher_is_better(metric), kind="stable")
    best = means.groupby(keys, dropna=False).head(1) if keys else means.head(1)
    grid = ready.groupby(keys, dropna=False)[lr].agg(["min", "max", "nunique"]).reset_index() if keys else \
        pd.DataFrame([{"min": ready[lr].min(), "max": ready[lr].max(), "nunique": ready[lr].nunique()}])
    best = best.merge(grid, on=keys) if keys else best.assign(**grid.iloc[0].to_dict())
    best["lr_at_edge"] = (best["nunique"] > 1) & ((best[lr] == best["min"]) | (best[lr] == best["max"]))
    best = best[[*keys, lr, "lr_at_edge"]].assign(chosen_lr=best[lr])
    chosen = ready.merge(best, on=by) if keys else ready[ready[lr] == best[lr].iloc[0]].assign(
        lr_at_edge=bool(best["lr_at_edge"].iloc[0]), chosen_lr=best[lr].iloc[0])
    chosen = chosen.drop(columns=["__finished", "__value"])
    if warn and chosen["lr_at_edge"].any():
        edge = chosen[chosen["lr_at_edge"]].drop_duplicates(keys) if keys else chosen.head(1)
        where = ", ".join(sorted(" ".join(f"{g}={row[g]}" for g in keys) or "all" for _, row in edge.iterrows()))
        warnings.warn(f"the best lr is at the edge of the grid for: {where}; widen the grid", stacklevel=2)
    return chosen.reset_index(drop=True)


def at_chance(value: float, chance: float | None) -> bool:
    """Whether an accuracy is within CHANCE_MARGIN of its task's chance level (False without one)."""
    return chance is not None and not math.isnan(value) and value <= chance + CHANCE_MARGIN


def best_over_lr(runs: pd.DataFrame, *, metric: str) -> pd.DataFrame:
    """A sweep's runs at each configuration's chosen lr (choose_lr over the sweep's axes), its test
    metric reported; a configuration with a run still outstanding has no choice yet and is left out;
    warns where a chosen lr sits at the edge of the grid."""
    if validation_metric(metric) not in runs.columns:
        raise ValueError(f"best-over-lr needs {validation_metric(metric)!r} (the validation metric of each run); "
                         "the runs hold no such column")
    chosen = choose_lr(runs, metric=metric, groups=configuration_columns(runs), warn=True)
    chosen = chosen.drop(columns=[LR]) if LR in chosen.columns else chosen
    chosen["protocol"] = f"best lr on mean validation over seeds ({validation_metric(metric)}), {metric} reported"
    return chosen


def value_at_step(runs: pd.DataFrame, curves: pd.DataFrame, metric: str, step: int | None) -> tuple[pd.DataFrame, str]:
    """The runs with a column holding `metric`: the metric itself, or (with `step`) the validation
    curve's value at that step (NaN where a run has none)."""
    if step is None:
        return runs, metric
    column = f"{metric} at step {step}"
    name = metric.removeprefix("validation_")
    if curves.empty or name not in curves.columns:
        return runs.assign(**{column: math.nan}), column
    at = curves[(curves["split"] == "validation") & (curves["step"] == step)][["run_id", name]]
    return runs.merge(at.rename(columns={name: column}), on="run_id", how="left"), column


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean ± Student-t half-width over independent seeds; (nan, nan) with fewer than 2 values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return (math.nan, math.nan)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return (values.mean() - half, values.mean() + half)


METRIC_RANGE = {"accuracy": (0.0, 1.0), "bpc": (0.0, None), "loss": (0.0, None)}


def clipped_interval(metric: str):
    """The interval every plot draws over seeds: t_interval, clipped to the range the metric can take
    (no accuracy above 1), a function of the values as seaborn's `errorbar` takes one."""
    stem = metric.split(" at step ")[0].split("/")[0].removeprefix("final_").removeprefix("validation_")
    low_bound, high_bound = METRIC_RANGE.get(stem.removeprefix("macro_"), (None, None))

    def interval(values):
        low, high = t_interval(values)
        return (low if low_bound is None else max(low, low_bound), high if high_bound is None else min(high, high_bound))

    return interval


def paired_differences(table: pd.DataFrame, *, arm: str, a, b, value: str, metric: str | None = None,
                       pair: str = "seed") -> pd.Series:
    """Per seed both arms have: value(a) − value(b), signed (by `metric`, default `value`) so that
    positive favours a. Empty when either arm is missing."""
    if value not in table.columns:
        return pd.Series(dtype=float)
    wide = table[table[arm].isin([a, b])].pivot_table(index=pair, columns=arm, values=value, aggfunc="first")
    if a not in wide.columns or b not in wide.columns:
        return pd.Series(dtype=float)
    sign = 1.0 if higher_is_better(metric or value) else -1.0
    return (sign * (wide[a] - wide[b])).dropna()


def interval(differences) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed differences, the t-interval at 95%."""
    values = np.asarray(differences, dtype=float)
    low, high = t_interval(values)
    return float(values.mean()) if len(values) else math.nan, low, high
