"""Length generalisation, one plot for every task that measures it: the metric against the length
it was measured at — the final state's accuracy per test word length (state tracking), MQAR's
accuracy per test sequence length, bits per byte per position bucket of a longer test window — a
line per mixer (each configuration at its chosen lr), seeds as dots, the training length marked."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from seqbench.analysis.plots import chance_level, final_table
from seqbench.analysis.protocol import MIN_SEEDS_FOR_INTERVAL, clipped_interval
from seqbench.analysis.style import atomic_save_figure, draw_chance, length_slices, mixer_colours


def plot_length_generalisation(runs: pd.DataFrame, path: Path) -> Path:
    figure = length_generalisation_figure(runs)
    atomic_save_figure(figure, path, dpi=120)
    plt.close(figure)
    return path


def length_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict, str]:
    """(one row per run, mixer and length with its value; the slice kind; the protocol) at each
    configuration's chosen lr."""
    table, _, _, protocol = final_table(runs)
    columns, kind = length_slices(table.columns)
    long = table.melt(id_vars=["model.name", "seed"], value_vars=list(columns), var_name="slice", value_name="value").dropna()
    long["length"] = long["slice"].map(columns)
    return long, kind, protocol


def length_generalisation_figure(runs: pd.DataFrame):
    long, kind, protocol = length_table(runs)
    seeds = int(long.groupby(["model.name", "length"])["seed"].nunique().min()) if len(long) else 0
    colours = mixer_colours(long["model.name"].unique())
    figure, axis = plt.subplots(figsize=(7.5, 4.4))
    interval = clipped_interval(kind["metric"]) if seeds >= MIN_SEEDS_FOR_INTERVAL else None
    sns.lineplot(data=long, x="length", y="value", hue="model.name", palette=colours, marker="o", ax=axis, errorbar=interval)
    sns.scatterplot(data=long, x="length", y="value", hue="model.name", palette=colours, s=12, alpha=0.5, legend=False, ax=axis)
    trained = runs[kind["trained"]].dropna().max() if kind["trained"] in runs.columns else None
    if trained is not None and pd.notna(trained):
        axis.axvline(trained, color="0.3", linestyle="--", linewidth=1)
        axis.annotate(kind["trained_label"], (trained, 0.98), xycoords=("data", "axes fraction"), fontsize=7, color="0.3",
                      ha="right", va="top", rotation=90)
    if kind["metric"].endswith("accuracy"):
        draw_chance(axis, chance_level(runs, "final_accuracy"))
        axis.set_ylim(0, 1.02)
    task = ", ".join(sorted(set(runs["task.name"].dropna())))
    shown = f"mean and 95% t-interval over {seeds} seeds" if seeds >= MIN_SEEDS_FOR_INTERVAL else f"{seeds} seed(s): no interval"
    better = "higher" if kind["metric"].endswith("accuracy") else "lower"
    axis.set(xscale="log", xlabel=kind["x"], ylabel=f"{kind['y']} ({better} is better)")
    lengths = sorted(set(long["length"]))
    axis.set_xticks(lengths, [str(n) for n in lengths])
    axis.minorticks_off()
    axis.set_title(textwrap.fill(f"Length generalisation on {task} — {protocol}; {shown}; dots: seeds", 90), fontsize=9)
    axis.legend(title="mixer", fontsize=7)
    figure.tight_layout()
    return figure
