"""seaborn figures of a collected sweep: the final metric per configuration (best-over-lr when the
lr is swept; t-intervals over seeds, none with fewer than 3) and learning curves. Every varying
axis is a visual channel; nothing is pooled."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from seqbench.analysis.collect import main_metric, varying_columns
from seqbench.analysis.protocol import (
    CHANCE_MARGIN,
    LR,
    MIN_SEEDS_FOR_INTERVAL,
    best_over_lr,
    choose_lr,
    clipped_interval,
    configuration_columns,
    validation_metric,
)
from seqbench.analysis.style import atomic_save_figure, draw_chance, length_slices, mixer_colours

CURVE_POINTS = 200  # per training curve; the 20-step running mean makes more points redundant


def field_label(column: str) -> str:
    """A config field as a reader names it: model, heads, lr, seq_len — not model.options.heads."""
    if column == "model.name":
        return "model"
    return column.removeprefix("model.options.").removeprefix("model.").removeprefix("optimizer.").removeprefix("task.options.")


def merge_linked_axes(table: pd.DataFrame, axes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Axes that only ever change together (a sweep's [zip]: each value of one names one value of the
    other) as one axis, "seq_len · max_horizon", so a zip of several fields takes one visual channel."""
    groups: list[list[str]] = []
    for axis in axes:
        for group in groups:
            first = group[0]
            together = table[[first, axis]].astype(str).drop_duplicates()
            if len(together) == table[first].astype(str).nunique() == table[axis].astype(str).nunique():
                group.append(axis)
                break
        else:
            groups.append([axis])
    merged = table.copy()
    names = []
    for group in groups:
        if len(group) == 1:
            names.append(group[0])
            continue
        name = " · ".join(field_label(column) for column in group)
        merged[name] = merged[group].astype(str).agg(" · ".join, axis=1)
        names.append(name)
    return merged, names


def _layout(axes: list[str]) -> dict[str, str | None]:
    """Every varying axis gets a visual channel — x, hue, column, row — so nothing is pooled silently."""
    if len(axes) > 4:
        raise ValueError(f"{len(axes)} sweep axes vary ({', '.join(axes)}); a plot shows at most 4 (x, hue, column, row): "
                         "filter the runs or aggregate an axis explicitly first")
    ordered = sorted(axes or ["model.name"], key=lambda column: column != "model.name")
    return dict(zip(("x", "hue", "col", "row"), ordered + [None] * (4 - len(ordered))))


def final_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, str, bool, str]:
    """(table, metric, higher is better, protocol): best-over-lr when the lr varies and validation
    numbers exist, else every finished run."""
    metric, higher = main_metric(runs)
    done = runs[runs[metric].notna()].copy()
    if LR in varying_columns(done):
        groups = configuration_columns(done)
        if groups and (done.groupby(groups)[LR].nunique() == 1).all():
            return done, metric, higher, "one lr per configuration, set in the sweep"
        if validation_metric(metric) in done.columns:
            return best_over_lr(runs, metric=metric), metric, higher, "best lr per configuration, chosen on mean validation over seeds"
    lrs = done[LR].dropna().unique() if LR in done.columns else []
    return done, metric, higher, f"one lr for all ({lrs[0]:g})" if len(lrs) == 1 else "as run"


METRIC_NAMES = {"accuracy": "accuracy", "bpc": "bits per byte", "loss": "loss"}


def metric_label(metric: str, runs: pd.DataFrame) -> str:
    """final_accuracy → 'test accuracy' (the split the runs report on), validation_bpc → 'validation bits per byte'."""
    stem = metric.removeprefix("final_").removeprefix("validation_")
    if metric.startswith("validation_"):
        split = "validation"
    else:
        splits = runs["final_split"].dropna().unique() if "final_split" in runs.columns else []
        split = splits[0] if len(splits) == 1 else "final"
    return f"{split} {METRIC_NAMES.get(stem, stem)}"


def chance_level(runs: pd.DataFrame, metric: str) -> float | None:
    """The task's chance accuracy when every run has one task and every setting of it has the same
    chance (MQAR's does not depend on its lengths: one line serves every cell); else None."""
    from seqbench import tasks

    if not metric.endswith("accuracy") or "task.name" not in runs.columns or runs["task.name"].nunique() != 1:
        return None
    runs = runs.dropna(subset=["task.name"])  # a listed run that never started has no config
    options_columns = [c for c in runs.columns if c.startswith("task.options.")]
    task = tasks.TASKS.get_class(runs["task.name"].iloc[0])
    levels = set()
    for _, row in runs[options_columns].astype(object).drop_duplicates().iterrows():
        # a column of a table turns an integer option into a float (5 → 5.0): back to what the task was given
        options = {c.removeprefix("task.options."): int(v) if isinstance(v, float) and v.is_integer() else v
                   for c, v in row.items() if not (isinstance(v, float) and pd.isna(v)) and v is not None}
        levels.add(task.chance_accuracy(options))
    return levels.pop() if len(levels) == 1 else None


def _save(grid: sns.FacetGrid, path: Path) -> Path:
    atomic_save_figure(grid.figure, path, dpi=120)
    plt.close(grid.figure)
    return path


def plot_final(runs: pd.DataFrame, path: Path) -> Path:
    return _save(final_grid(runs), path)


MAX_WIDTH_IN = 13.0  # ≈ 1,560 px at the 120 dpi figures are written at: wider grids wrap their columns


def final_grid(runs: pd.DataFrame) -> sns.FacetGrid:
    """Mean and t-interval per configuration, a colour per mixer (the same in every plot:
    `mixer_colours`), every seed a dot, the task's chance level as a line, each configuration's
    chosen lr said under the title. Axes that only change together (a [zip]) are one channel, so no
    facet is empty; facets are titled by their field's short name and wrap beyond ~1,560 px."""
    table, metric, higher, protocol = final_table(runs)
    per_configuration = "chosen_lr" in table.columns or protocol == "one lr per configuration, set in the sweep"
    axes = configuration_columns(table) if per_configuration else varying_columns(table)
    others = [axis for axis in axes if axis != "model.name"]
    table, others = merge_linked_axes(table, others)
    if "model.name" in axes and others:  # the mixer is the colour wherever it varies: one colour per mixer in every plot
        if len(others) > 3:
            raise ValueError(f"{len(others) + 1} sweep axes vary (model.name, {', '.join(others)}); a plot shows at most 4 "
                             "(x, hue, column, row): filter the runs or aggregate an axis explicitly first")
        layout = dict(zip(("x", "hue", "col", "row"), [others[0], "model.name", *others[1:]] + [None] * (3 - len(others))))
    else:
        layout = _layout((["model.name"] if "model.name" in axes else []) + others)
    for column in layout.values():
        if column:
            table[column] = table[column].astype(str)
    seeds = table.groupby([c for c in layout.values() if c], dropna=False).size()
    interval = seeds.min() >= MIN_SEEDS_FOR_INTERVAL
    hue = layout["hue"] or layout["x"]
    names = {column: field_label(column) for column in layout.values() if column}
    table, layout = table.rename(columns=names), {k: names.get(v) for k, v in layout.items()}
    hue = names[hue]
    palette = mixer_colours(table[hue].unique()) if hue == "model" else None
    columns = table[layout["col"]].nunique() if layout["col"] else 1
    aspect = max(1.0, 0.35 * table[layout["x"]].nunique())
    wrap = max(1, int(MAX_WIDTH_IN // (4 * aspect))) if columns * 4 * aspect > MAX_WIDTH_IN and not layout["row"] else None
    hues = table[layout["hue"]].nunique() if layout["hue"] else 1  # the means sit where stripplot dodges each hue's seeds
    hue_order, x_order = list(dict.fromkeys(table[hue])), list(dict.fromkeys(table[layout["x"]]))  # one order in every facet
    grid = sns.catplot(data=table, kind="point", y=metric, errorbar=clipped_interval(metric) if interval else None, capsize=0.15,
                       dodge=0.8 * (1 - 1 / hues) if layout["hue"] else False, linestyle="none", markers="D", height=4, aspect=aspect,
                       legend=bool(layout["hue"]), palette=palette, col_wrap=wrap, hue_order=hue_order, order=x_order,
                       **{**{k: v for k, v in layout.items() if v}, "hue": hue})
    grid.map_dataframe(sns.stripplot, x=layout["x"], y=metric, hue=layout["hue"], dodge=bool(layout["hue"]), size=3, jitter=0.04,
                       hue_order=hue_order if layout["hue"] else None, order=x_order,
                       palette="dark:black" if layout["hue"] else None, color=None if layout["hue"] else "black", legend=False)
    grid.set_titles(col_template="{col_var} = {col_name}", row_template="{row_var} = {row_name}")
    chance = chance_level(runs, metric)
    for axis in grid.axes.flat:
        draw_chance(axis, chance)
    if table[layout["x"]].str.len().max() > 12:  # long mixer names: slanted, not overlapping
        for axis in grid.axes.flat:
            axis.tick_params(axis="x", labelrotation=25)
    label = metric_label(metric, runs)
    seed_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    shown = f"mean and 95% t-interval over {seed_text} seeds" if interval else f"{seed_text} seed(s): points only, no interval"
    title = f"{label} ({'higher' if higher else 'lower'} is better) — {protocol}; {shown}; dots: seeds"
    width = grid.figure.get_figwidth()
    lines = [textwrap.fill(title, width=max(60, int(70 * width / 5)))]
    lr_column = "chosen_lr" if "chosen_lr" in table.columns else LR if per_configuration and LR in table.columns else None
    if lr_column and "model" in table.columns:  # the lr each mixer ran at: chosen on validation, or set per model in the sweep
        chosen = table.groupby("model")[lr_column].agg(lambda lrs: ", ".join(f"{lr:g}" for lr in sorted(set(lrs))))
        lines.append(textwrap.fill(("chosen lr — " if lr_column == "chosen_lr" else "lr — ")
                                   + "; ".join(f"{model}: {lrs}" for model, lrs in chosen.items()), width=max(60, int(70 * width / 5))))
    grid.figure.suptitle("\n".join(lines), fontsize=9)
    grid.set_axis_labels(field_label(layout["x"]) if layout["x"] != "model" else "model", label)
    grid.figure.tight_layout()
    return grid


def plot_curves(runs: pd.DataFrame, curves: pd.DataFrame, path: Path) -> Path:
    """Train loss and the validation metric against step, one curve per configuration (seeds
    averaged, t-interval with 3 or more): the mixer is the colour (`mixer_colours`), every other
    varying axis — an lr, a width — the line style, so one mixer keeps one colour."""
    axes_ = [column for column in varying_columns(runs) if column != "model.name"]
    indexed = runs.set_index("run_id")
    mixer = indexed["model.name"].astype(str) if "model.name" in indexed.columns else pd.Series("run", index=indexed.index)
    rest = None
    for column in axes_:
        part = f"{field_label(column)}=" + indexed[column].astype(str)
        rest = part if rest is None else rest + ", " + part
    seeds = runs.groupby([mixer.reindex(runs["run_id"]).values, *([rest.reindex(runs["run_id"]).values] if rest is not None else [])]).size()
    interval = len(seeds) and seeds.min() >= MIN_SEEDS_FOR_INTERVAL
    table = curves.assign(model=curves["run_id"].map(mixer))
    if rest is not None:
        table["setting"] = table["run_id"].map(rest)
    validation = table[(table["split"] == "validation") & table["metric"].isin(["accuracy", "bpc"])]
    train = table[(table["split"] == "train") & (table["metric"] == "loss")].copy()
    train["value"] = train.groupby("run_id")["value"].transform(lambda s: s.rolling(20, min_periods=1).mean())
    stride = max(1, int(train["step"].max()) // CURVE_POINTS) if len(train) else 1
    train = train[train["step"] % stride == 0]  # an interval at every x: thin the smoothed curve
    panels = [(train, "train loss (20-step mean)", "loss")]
    if len(validation):
        name = validation["metric"].iloc[0]
        panels.append((validation, f"validation {METRIC_NAMES.get(name, name)}", name))
    colours = mixer_colours(table["model"].dropna().unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (data, title, metric) in zip(axes[0], panels):
        sns.lineplot(data=data, x="step", y="value", hue="model", palette=colours, style="setting" if rest is not None else None,
                     errorbar=clipped_interval(metric) if interval else None, ax=ax)
        ax.set_title(f"{title}\n{'mean, 95% t-interval over seeds' if interval else 'mean over seeds (fewer than 3: no interval)'}",
                     fontsize=9)
        ax.set_ylabel(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


ZOOLOGY_CELL = ("task.options.seq_len", "task.options.num_pairs")


def plot_accuracy_against_state_size(runs: pd.DataFrame, path: Path) -> Path:
    return _save(state_size_grid(runs), path)


def state_size_grid(runs: pd.DataFrame) -> sns.FacetGrid:
    """Zoology's Figure 2: MQAR test accuracy against the recurrent state's size (log), a panel per
    (sequence length, pairs), a line per mixer across its widths; each point at the lr chosen on
    mean validation accuracy for that mixer, width and cell."""
    groups = ["model.name", "model.d_model", *ZOOLOGY_CELL]
    chosen = choose_lr(runs, metric="final_accuracy", groups=groups) if LR in runs.columns else runs
    chosen = chosen[(chosen["status"] == "completed") & chosen["final_accuracy"].notna()]
    points = chosen.groupby(groups, dropna=False).agg(accuracy=("final_accuracy", "mean"), state_size=("state_size", "first"))
    whole = {c: points.index.get_level_values(c).astype(float).astype(int).astype(str) for c in ZOOLOGY_CELL}  # 64, not 64.0
    points = points.reset_index().assign(cell=["L=" + length + ", N=" + pairs for length, pairs in zip(*whole.values())])
    cells = points.sort_values(list(ZOOLOGY_CELL))["cell"].drop_duplicates().tolist()  # shortest first, as Zoology's panels
    points = points.rename(columns={"model.name": "model"})
    grid = sns.relplot(data=points.sort_values("state_size"), x="state_size", y="accuracy", hue="model", col="cell",
                       col_order=cells, kind="line", marker="o", height=3.6, facet_kws={"sharex": False},
                       palette=mixer_colours(points["model"].unique()), col_wrap=min(len(cells), 3) if len(cells) > 3 else None)
    grid.set(xscale="log", ylim=(0, 1.02))
    grid.set_titles("{col_name}")
    grid.set_axis_labels("state size (real scalars per sequence)", "MQAR test accuracy")
    vocab = runs["task.options.vocab_size"].dropna().unique() if "task.options.vocab_size" in runs.columns else []
    chance = chance_level(runs.assign(**{c: None for c in ZOOLOGY_CELL}), "final_accuracy") if len(vocab) == 1 else None
    title = "MQAR accuracy against state size (Zoology, Figure 2); lr chosen on validation"
    for axis in grid.axes.flat:
        draw_chance(axis, chance)
    if chance is not None:
        if len(points) and (points["accuracy"] <= chance + CHANCE_MARGIN).all():
            title += f" — every mixer within {CHANCE_MARGIN} of chance ({chance:.3g}): this budget does not separate them"
    grid.figure.suptitle(textwrap.fill(title, 110), fontsize=9)
    grid.figure.tight_layout()
    return grid


def plot_sweep(runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plot_final(runs, out_dir / "final.png"), plot_curves(runs, curves, out_dir / "curves.png")]
    if length_slices(runs.columns)[0]:
        from seqbench.analysis.length_plots import plot_length_generalisation

        written.append(plot_length_generalisation(runs, out_dir / "length_generalisation.png"))
    zoology = set(ZOOLOGY_CELL) <= set(runs.columns) and "state_size" in runs.columns and runs.get("task.name").eq("mqar").all()
    if zoology and runs[list(ZOOLOGY_CELL)].drop_duplicates().shape[0] > 1:
        written.append(plot_accuracy_against_state_size(runs, out_dir / "accuracy_vs_state_size.png"))
    return written


def plot_mad_scores(scores: pd.DataFrame, path: Path) -> Path:
    """MAD's table as a heatmap: a row per model, a column per task and the MAD score last."""
    table = scores.set_index("model")
    tasks = [c for c in table.columns if c != "MAD score"] + ["MAD score"]
    values = table[tasks].astype(float)
    figure, axes = plt.subplots(figsize=(1.2 * len(tasks) + 2, 0.45 * len(table) + 1.6))
    sns.heatmap(values, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=axes,
                cbar_kws={"label": "test accuracy (macro)"})
    for row, model in enumerate(values.index):  # a cell with no score says so: never a blank that reads as zero
        for column, task in enumerate(tasks):
            if pd.isna(values.at[model, task]):
                axes.add_patch(plt.Rectangle((column, row), 1, 1, facecolor="0.92", edgecolor="0.7", hatch="//"))
                axes.text(column + 0.5, row + 0.5, "missing", ha="center", va="center", fontsize=7, color="0.3")
    axes.set_xticklabels([textwrap.fill(t.replace("_", " "), 12) for t in tasks], rotation=0, fontsize=7)
    axes.set(xlabel="", ylabel="")
    axes.set_title("MAD: test accuracy at the lr chosen on validation, per task; MAD score = their mean; "
                   "missing: a run of its grid has not finished", fontsize=9)
    figure.tight_layout()
    atomic_save_figure(figure, path, dpi=120)
    plt.close(figure)
    return path
