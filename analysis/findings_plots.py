"""The plot of one finding (analysis/findings_report.py writes it beside its table): per probe, the
arms' values at their chosen lrs with intervals, validation curves for a crossover, accuracy per
distance for the memory-horizon probes, cost against length for the measurements."""
from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

from seqbench.analysis.findings import Finding
from seqbench.analysis.protocol import MIN_SEEDS_FOR_INTERVAL, higher_is_better, t_interval, value_at_step
from seqbench.analysis.verdicts import Crossover, Outcome, Ratio, Similar, at_chosen_lr
from seqbench.core import atomic_save_figure


def plot_finding(finding: Finding, outcomes: list[Outcome], table, curves, rows, path: Path, scale: str = "cpu") -> Path:
    import matplotlib.pyplot as plt
    import seaborn as sns

    probes = list(finding.probes)
    figure, axes = plt.subplots(1, len(probes), figsize=(6.2 * len(probes), 4.2), squeeze=False)
    for axis, probe in zip(axes[0], probes):
        rule = next((r for r in finding.rules if (r.probe or probes[0].name) == probe.name), finding.rules[0])
        done = table[(table["probe"] == probe.name) & (table["status"] == "completed")]
        if probe.is_speed:
            _plot_speed(axis, rows[rows["probe"] == probe.name] if len(rows) else rows, rule, sns)
        elif isinstance(rule, Crossover):
            _plot_curves(axis, done, curves, rule, sns)
        elif any(c.startswith("final_accuracy/") for c in done.columns) and probe.name.startswith("memory_horizon"):
            _plot_buckets(axis, done, sns)
        else:
            shown, column = value_at_step(done, curves, rule.metric, rule.step(scale) if isinstance(rule, Similar) else None)
            _plot_arms(axis, shown, column, rule, [arm.label for arm in probe.arms], sns)
        axis.set_title(probe.name, fontsize=10)
    verdict = outcomes[0].verdict if outcomes else "no rule"
    claim = textwrap.fill(f"{finding.id}: {finding.claim}", width=75 * len(probes))
    figure.suptitle(f"{claim}\nverdict at this scale: {verdict}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_figure(figure, path, dpi=110)
    plt.close(figure)
    return path


def _plot_arms(axis, done, metric, rule, order, sns):
    if done.empty or metric not in done.columns:
        axis.text(0.5, 0.5, "no completed runs yet", ha="center", transform=axis.transAxes)
        return
    chosen = at_chosen_lr(done, metric.split(" at step ")[0])
    order = [arm for arm in order if arm in set(chosen["arm"])]
    sns.stripplot(data=chosen, x="arm", y=metric, order=order, ax=axis, color="0.4", size=5, jitter=0.1)
    for position, arm in enumerate(order):
        values = chosen.loc[chosen["arm"] == arm, metric].dropna().to_numpy()
        low, high = t_interval(values) if len(values) >= MIN_SEEDS_FOR_INTERVAL else (math.nan, math.nan)
        axis.errorbar(position + 0.25, values.mean(), yerr=[[values.mean() - low], [high - values.mean()]] if math.isfinite(low) else None,
                      fmt="o", color="C3", capsize=4)
    axis.set_xlabel("")
    axis.set_ylabel(f"{metric} ({'higher' if higher_is_better(metric.split(' at step ')[0]) else 'lower'} is better)")
    axis.tick_params(axis="x", rotation=20, labelsize=8)


def _plot_curves(axis, done, curves, rule: Crossover, sns):
    name = rule.metric.removeprefix("validation_")
    chosen = at_chosen_lr(done, rule.metric)
    valid = curves[curves["split"] == "validation"].merge(chosen[["run_id", "arm", "seed"]], on="run_id") if len(curves) else curves
    if valid.empty or name not in valid.columns:
        axis.text(0.5, 0.5, "no curves yet", ha="center", transform=axis.transAxes)
        return
    sns.lineplot(data=valid, x="step", y=name, hue="arm", errorbar=("ci", 95), ax=axis)
    sns.lineplot(data=valid, x="step", y=name, hue="arm", units="seed", estimator=None, alpha=0.25, lw=0.7, legend=False, ax=axis)
    axis.set_ylabel(f"validation {name}")


def _plot_buckets(axis, done, sns):
    columns = [c for c in done.columns if c.startswith("final_accuracy/")]
    if done.empty or not columns:
        axis.text(0.5, 0.5, "no completed runs yet", ha="center", transform=axis.transAxes)
        return
    long = done.melt(id_vars=["arm", "seed"], value_vars=columns, var_name="horizon", value_name="accuracy")
    long["horizon"] = long["horizon"].str.removeprefix("final_accuracy/")
    order = sorted(long["horizon"].unique(), key=lambda name: int(re.match(r"h(\d+)", name).group(1)) if re.match(r"h\d+", name) else 0)
    sns.pointplot(data=long, x="horizon", y="accuracy", hue="arm", order=order, errorbar=("ci", 95), dodge=0.3 if done["arm"].nunique() > 1 else False, ax=axis)
    axis.set_ylabel("test accuracy per distance from RESET")


def _plot_speed(axis, rows, rule, sns):
    quantity = rule.quantity if isinstance(rule, Ratio) else "median_ms"
    measure = rule.measure if isinstance(rule, Ratio) else "forward_backward"
    shown = rows[(rows["measure"] == measure) & (rows["status"] == "ok")] if len(rows) else rows
    if shown.empty:
        axis.text(0.5, 0.5, "no measurements yet", ha="center", transform=axis.transAxes)
        return
    shown = shown.assign(value=shown[quantity] / (2**20 if quantity.endswith("bytes") else 1))
    sns.lineplot(data=shown, x="length", y="value", hue="arm", marker="o", ax=axis)
    axis.set(xscale="log", yscale="log", xlabel="sequence length",
             ylabel=f"{quantity.replace('_bytes', ' (MiB)').replace('median_ms', 'median ms')}, {measure}")
