"""The plot of one finding (analysis/findings/report.py writes it beside its table): per probe, the
arms' values at their chosen lrs with intervals, validation curves for a crossover, accuracy per
distance for the memory-horizon probes, cost against length for the measurements."""
from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pandas as pd

from seqbench.analysis.findings.finding import Finding
from seqbench.analysis.findings.verdicts import Crossover, Ratio, Similar, at_chosen_lr
from seqbench.analysis.protocol import MIN_SEEDS_FOR_INTERVAL, clipped_interval, higher_is_better, value_at_step
from seqbench.analysis.style import atomic_save_figure, mixer_colours
from seqbench.bench.store import FINISHED


def plot_finding(finding: Finding, verdict: str, table, curves, rows, path: Path, scale: str = "cpu") -> Path:
    """`verdict` is the report's own text for the finding ("not run (k of n)" included): a plot never
    states what its table does not. Each arm is drawn at its chosen lr (an arm whose grid is
    unfinished is not drawn), its interval the protocol's (protocol.clipped_interval)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    probes = list(finding.probes)
    figure, axes = plt.subplots(1, len(probes), figsize=(6.2 * len(probes), 4.2), squeeze=False)
    for axis, probe in zip(axes[0], probes):
        rule = next((r for r in finding.rules if (r.probe or probes[0].name) == probe.name), finding.rules[0])
        of_probe = table[table["probe"] == probe.name]
        if probe.is_speed:
            _plot_speed(axis, rows[rows["probe"] == probe.name] if len(rows) else rows, rule, sns)
            axis.set_title(probe.name, fontsize=10)
            continue
        metric = getattr(rule, "metric", "final_accuracy")
        chosen = at_chosen_lr(of_probe, metric)
        chosen = chosen[chosen["status"].isin(FINISHED)] if "status" in chosen.columns else chosen
        if isinstance(rule, Crossover):
            _plot_curves(axis, chosen, curves, rule, sns)
        elif any(c.startswith("final_accuracy/") for c in chosen.columns) and probe.name.startswith("memory_horizon"):
            _plot_buckets(axis, chosen, sns)
        else:
            shown, column = value_at_step(chosen, curves, metric, rule.step(scale) if isinstance(rule, Similar) else None)
            _plot_arms(axis, shown, column, [arm.label for arm in probe.arms], sns)
        axis.set_title(probe.name, fontsize=10)
    claim = textwrap.fill(f"{finding.id}: {finding.claim}", width=75 * len(probes))
    figure.suptitle(f"{claim}\nverdict at this scale: {verdict}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_figure(figure, path, dpi=110)
    plt.close(figure)
    return path


def _enough_seeds(done, by: list[str]) -> bool:
    """Whether every group has the seeds an interval needs (protocol.MIN_SEEDS_FOR_INTERVAL)."""
    return len(done) > 0 and int(done.groupby(by)["seed"].nunique().min()) >= MIN_SEEDS_FOR_INTERVAL


def _plot_arms(axis, chosen, metric, order, sns):
    if chosen.empty or metric not in chosen.columns or chosen[metric].isna().all():
        axis.text(0.5, 0.5, "no arm has its whole lr grid finished yet", ha="center", transform=axis.transAxes)
        return
    order = [arm for arm in order if arm in set(chosen["arm"])]
    sns.stripplot(data=chosen, x="arm", y=metric, order=order, ax=axis, color="0.4", size=5, jitter=0.1)
    colours = mixer_colours(order)  # an arm named after a mixer has that mixer's colour in every plot
    interval = clipped_interval(metric)
    for position, arm in enumerate(order):
        values = chosen.loc[chosen["arm"] == arm, metric].dropna().to_numpy()
        low, high = interval(values) if len(values) >= MIN_SEEDS_FOR_INTERVAL else (math.nan, math.nan)
        axis.errorbar(position + 0.25, values.mean(), yerr=[[values.mean() - low], [high - values.mean()]] if math.isfinite(low) else None,
                      fmt="o", color=colours[arm], capsize=4)
    axis.set_xlabel("")
    axis.set_ylabel(f"{metric} ({'higher' if higher_is_better(metric.split(' at step ')[0]) else 'lower'} is better)")
    lrs = chosen.groupby("arm")["lr"].first() if "lr" in chosen.columns else {}
    axis.set_xticks(range(len(order)), [f"{arm}\nlr {lrs[arm]:g}" if arm in lrs and pd.notna(lrs[arm]) else arm for arm in order])
    axis.tick_params(axis="x", rotation=20, labelsize=8)


def _plot_curves(axis, chosen, curves, rule: Crossover, sns):
    name = rule.metric.removeprefix("validation_")
    valid = curves[curves["split"] == "validation"].merge(chosen[["run_id", "arm", "seed"]], on="run_id") if len(curves) else curves
    if valid.empty or name not in valid.columns:
        axis.text(0.5, 0.5, "no curves yet", ha="center", transform=axis.transAxes)
        return
    interval = clipped_interval(rule.metric) if _enough_seeds(valid, ["arm", "step"]) else None
    colours = mixer_colours(valid["arm"].unique())
    sns.lineplot(data=valid, x="step", y=name, hue="arm", palette=colours, errorbar=interval, ax=axis)
    sns.lineplot(data=valid, x="step", y=name, hue="arm", palette=colours, units="seed", estimator=None, alpha=0.25, lw=0.7,
                 legend=False, ax=axis)
    axis.set_ylabel(f"validation {name}, mean" + (" and 95% t-interval" if interval else "") + " over seeds")


def _plot_buckets(axis, chosen, sns):
    columns = [c for c in chosen.columns if c.startswith("final_accuracy/")]
    if chosen.empty or not columns:
        axis.text(0.5, 0.5, "no completed runs yet", ha="center", transform=axis.transAxes)
        return
    long = chosen.melt(id_vars=["arm", "seed"], value_vars=columns, var_name="horizon", value_name="accuracy")
    long["horizon"] = long["horizon"].str.removeprefix("final_accuracy/")
    order = sorted(long["horizon"].unique(), key=lambda name: int(re.match(r"h(\d+)", name).group(1)) if re.match(r"h\d+", name) else 0)
    interval = clipped_interval("accuracy") if _enough_seeds(long, ["arm", "horizon"]) else None
    sns.pointplot(data=long, x="horizon", y="accuracy", hue="arm", palette=mixer_colours(long["arm"].unique()), order=order,
                  errorbar=interval, capsize=0.1,
                  dodge=0.3 if chosen["arm"].nunique() > 1 else False, ax=axis)
    axis.set(ylim=(0, 1.02), ylabel="test accuracy per distance from RESET" + (" (95% t-interval)" if interval else ""))


def _plot_speed(axis, rows, rule, sns):
    quantity = rule.quantity if isinstance(rule, Ratio) else "median_ms"
    measure = rule.measure if isinstance(rule, Ratio) else "forward_backward"
    shown = rows[(rows["measure"] == measure) & (rows["status"] == "ok")] if len(rows) else rows
    if shown.empty:
        axis.text(0.5, 0.5, "no measurements yet", ha="center", transform=axis.transAxes)
        return
    shown = shown.assign(value=shown[quantity] / (2**20 if quantity.endswith("bytes") else 1))
    sns.lineplot(data=shown, x="length", y="value", hue="arm", palette=mixer_colours(shown["arm"].unique()), marker="o", ax=axis)
    axis.set(xscale="log", yscale="log", xlabel="sequence length",
             ylabel=f"{quantity.replace('_bytes', ' (MiB)').replace('median_ms', 'median ms')}, {measure}")
