"""seaborn figures of a collected sweep: final metric per configuration with 95% CIs over seeds,
and learning curves (mean and CI over seeds)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from seqbench.analysis.collect import main_metric, varying_columns  # noqa: E402

CURVE_POINTS = 200  # per training curve; the 20-step running mean makes more points redundant


def _label(column: str) -> str:
    if column == "model.name":
        return "model"
    return column.removeprefix("model.options.").removeprefix("model.").removeprefix("optimizer.")


def _axes(runs: pd.DataFrame) -> tuple[str, str | None]:
    axes = varying_columns(runs) or ["model.name"]
    x = "model.name" if "model.name" in axes else axes[0]
    others = [a for a in axes if a != x]
    return x, (others[0] if others else None)


def plot_final(runs: pd.DataFrame, path: Path) -> Path:
    metric, higher = main_metric(runs)
    done = runs[runs[metric].notna()].copy()
    x, hue = _axes(done)
    for column in (x, hue):
        if column:
            done[column] = done[column].astype(str)
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * done[x].nunique() + 2), 4))
    sns.barplot(data=done, x=x, y=metric, hue=hue, errorbar=("ci", 95), ax=ax, capsize=0.1)
    points = {"palette": "dark:black", "dodge": True} if hue else {"color": "black"}
    sns.stripplot(data=done, x=x, y=metric, hue=hue, size=3, ax=ax, legend=False, **points)
    seeds = done.groupby([c for c in (x, hue) if c], dropna=False).size()
    seed_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    ax.set_title(f"{metric} ({'higher' if higher else 'lower'} is better)\nbars: mean and 95% CI over {seed_text} seeds; dots: runs")
    ax.set_xlabel(_label(x))
    if hue:
        ax.legend(title=_label(hue))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_curves(runs: pd.DataFrame, curves: pd.DataFrame, path: Path) -> Path:
    x, hue = _axes(runs)
    indexed = runs.set_index("run_id")
    named = lambda column: indexed[column].astype(str) if column == "model.name" else f"{_label(column)}=" + indexed[column].astype(str)  # noqa: E731
    label = named(x) + (", " + named(hue) if hue else "")
    table = curves.assign(configuration=curves["run_id"].map(label))
    validation = table[(table["split"] == "validation") & table["metric"].isin(["accuracy", "bpc"])]
    train = table[(table["split"] == "train") & (table["metric"] == "loss")].copy()
    train["value"] = train.groupby("run_id")["value"].transform(lambda s: s.rolling(20, min_periods=1).mean())
    stride = max(1, int(train["step"].max()) // CURVE_POINTS) if len(train) else 1
    train = train[train["step"] % stride == 0]  # seaborn bootstraps a CI at every x: thin the smoothed curve
    panels = [(train, "train loss (20-step mean)")] + ([(validation, validation["metric"].iloc[0])] if len(validation) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (data, title) in zip(axes[0], panels):
        sns.lineplot(data=data, x="step", y="value", hue="configuration", errorbar=("ci", 95), n_boot=200, ax=ax)
        ax.set_title(title)
        ax.set_ylabel(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_sweep(runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [plot_final(runs, out_dir / "final.png"), plot_curves(runs, curves, out_dir / "curves.png")]
