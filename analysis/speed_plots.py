"""Cost curves: time and memory against length (log-log), fitted scaling exponents, crossovers."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from seqbench.analysis.style import atomic_save_figure, mixer_colours

BASELINE = ("softmax_attention", "parallel")


def fit_exponent(lengths, values, points_used: int = 3) -> float | None:
    """Slope of log(value) against log(length) by least squares over the longest `points_used` lengths."""
    points = sorted((l, v) for l, v in zip(lengths, values) if v and v > 0 and not math.isnan(v))
    if len(points) < 2:
        return None
    points = points[-points_used:]  # the asymptotic regime: the longest lengths
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def crossover_length(curve: pd.Series, baseline: pd.Series) -> float | None:
    """Length where `curve` (indexed by length) becomes cheaper than `baseline`, log-log interpolated."""
    common = sorted(set(curve.dropna().index) & set(baseline.dropna().index))
    ratio = [(l, math.log(curve[l] / baseline[l])) for l in common]
    for (l0, r0), (l1, r1) in zip(ratio, ratio[1:]):
        if r0 > 0 >= r1:
            return math.exp(math.log(l0) + (math.log(l1) - math.log(l0)) * r0 / (r0 - r1))
    return None


def speed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model/mode: exponents of time and memory, crossover against softmax attention, capped lengths."""
    fb = table[table["measure"] == "forward_backward"]
    ok = fb[fb["status"] == "ok"]
    base = ok[(ok["model"] == BASELINE[0]) & (ok["mode"] == BASELINE[1])].groupby("length")["median_ms"].median()
    rows = []
    for (model, mode), group in fb.groupby(["model", "mode"], sort=True):
        good = group[group["status"] == "ok"].sort_values("length")
        curve = good.groupby("length")["median_ms"].median()
        rows.append({
            "model": model, "mode": mode,
            "backend": group["backend"].dropna().iloc[0] if group["backend"].notna().any() else None,
            "time_exponent": fit_exponent(good["length"], good["median_ms"]),
            "time_exponent_longest_two": fit_exponent(good["length"], good["median_ms"], points_used=2),
            "memory_exponent": fit_exponent(good["length"], good.get("peak_memory_bytes", pd.Series(dtype=float))),
            "crossover_vs_softmax": None if (model, mode) == BASELINE else crossover_length(curve, base),
            "not_measured": ", ".join(f"{r.length}:{r.status}" for r in group.itertuples() if r.status != "ok"),
        })
    return pd.DataFrame(rows)


MODE_STYLES = ("-", "--", ":", "-.")  # a mode's line style; the colour is its mixer's (analysis/style.py)
CAP_NAMES = {"capped_memory": "memory cap", "capped_time": "time cap"}  # a length not run, in a legend's words
SPEED_COLUMNS = 5  # mixers per block of panels: ten mixers in two blocks, ~1,500 px wide


def plot_speed(table: pd.DataFrame, out_dir: Path, title: str = "") -> list[Path]:
    """Small multiples, a column per mixer in its own colour, a line style per mode; rows: forward+backward
    time, its peak memory, and per-token decode latency after a prefill, wrapped into blocks of
    SPEED_COLUMNS mixers. Each mode's legend entry carries its fitted time exponent and where it was not
    run, and softmax attention's curve is repeated in grey in every time panel, so "which mode of which
    mixer is fastest at which length" reads off one row."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = speed_summary(table).set_index(["model", "mode"])
    fb = table[(table["measure"] == "forward_backward") & (table["status"] == "ok")]
    step = table[(table["measure"] == "step") & (table["status"] == "ok")]
    baseline = fb[(fb["model"] == BASELINE[0]) & (fb["mode"] == BASELINE[1])].groupby("length")["median_ms"].median()
    model_names = sorted(table["model"].unique())
    colours = mixer_colours(model_names)
    styles = {mode: MODE_STYLES[number % len(MODE_STYLES)] for number, mode in enumerate(sorted(table["mode"].unique()))}
    blocks = math.ceil(len(model_names) / SPEED_COLUMNS)
    columns = math.ceil(len(model_names) / blocks)  # balanced: six mixers as two blocks of three
    fig, axes = plt.subplots(3 * blocks, columns, figsize=(3.0 * columns, 8.4 * blocks), sharex=True, sharey="row",
                             squeeze=False)
    for number, model in enumerate(model_names):
        block, column = divmod(number, columns)
        time_ax, memory_ax, step_ax = axes[3 * block:3 * block + 3, column]
        for mode, group in fb[fb["model"] == model].groupby("mode"):
            group = group.sort_values("length")
            exponent = summary.loc[(model, mode), "time_exponent"] if (model, mode) in summary.index else None
            label = f"{mode} ∝L^{exponent:.2f}" if exponent is not None and not pd.isna(exponent) else mode
            skipped = table[(table["model"] == model) & (table["mode"] == mode) & (table["measure"] == "forward_backward")
                            & (table["status"] != "ok")]
            if len(skipped):
                status = skipped["status"].iloc[0]
                label += f", ≥ {int(skipped['length'].min())}: {CAP_NAMES.get(status, status)}"
            line = {"color": colours[model], "linestyle": styles[mode], "marker": "o", "markersize": 3}
            time_ax.plot(group["length"], group["median_ms"], label=label, **line)
            memory_ax.plot(group["length"], group["peak_memory_bytes"] / 2**20, **line)
        if model != BASELINE[0] and len(baseline):
            time_ax.plot(baseline.index, baseline.values, "--", color="grey", linewidth=1, label="softmax (parallel)")
        decode = step[step["model"] == model].sort_values("length")
        if len(decode):
            step_ax.plot(decode["length"], decode["median_ms"], "o-", color=colours[model], markersize=3)
        time_ax.set_title(model, fontsize=10, color=colours[model], fontweight="bold")
        time_ax.legend(fontsize=6, loc="upper left")
        for ax, ylabel in ((time_ax, "forward+backward, ms"), (memory_ax, "peak memory, MiB"), (step_ax, "decode step, ms")):
            ax.set(xscale="log", yscale="log")
            ax.grid(True, which="major", linewidth=0.3)
            if column == 0:
                ax.set_ylabel(ylabel)
        step_ax.set_xlabel("length (decode: prefill)")
    for number in range(len(model_names), blocks * columns):  # the last block's empty columns
        block, column = divmod(number, columns)
        for ax in axes[3 * block:3 * block + 3, column]:
            ax.set_visible(False)
    fig.suptitle(speed_title(table, title), fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (8.4 * blocks)))
    path = out_dir / "speed.png"
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)
    return [path]


def speed_title(table: pd.DataFrame, device: str = "") -> str:
    """The protocol the curves were measured under, read from the rows themselves."""
    def values(column):
        found = sorted(table[column].dropna().unique()) if column in table else []
        return "/".join(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in found)

    fb = table[table["measure"] == "forward_backward"] if "measure" in table else table
    repeats = sorted(fb["repeats"].dropna().astype(int).unique()) if "repeats" in fb else []
    protocol = [f"batch {values('batch_size')}" if values("batch_size") else "", f"d_model {values('d_model')}" if values("d_model") else "",
                values("dtype"), f"median of {'/'.join(map(str, repeats))} repeats" if repeats else ""]
    return " — ".join(part for part in ("cost against length", ", ".join(p for p in protocol if p), device) if part)


def plot_gateloop_op(table: pd.DataFrame, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = table[table["status"] == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, column, title in ((axes[0], "forward_ms", "forward"), (axes[1], "forward_backward_ms", "forward+backward")):
        sns.lineplot(data=ok, x="length", y=column, hue="implementation", markers=True, ax=ax)
        ax.set(xscale="log", yscale="log", title=f"GateLoop op, {title} (B=4, 256 channels, complex64)", ylabel="ms")
    floor = ok.groupby("length")["traffic_floor_ms"].first()
    axes[0].plot(floor.index, floor.values, "k--", label="memory-traffic floor")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "gateloop_op.png"
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def throughput_label(row) -> str:
    """A mixer and its heads option where it has one set, e.g. 'gateloop heads=4'."""
    return row["model"] + (f" {row['arm']}" if isinstance(row.get("arm"), str) and row["arm"] else "")


def plot_throughput(table: pd.DataFrame, out_dir: Path, title: str = "") -> Path:
    """Training tokens/s and peak memory of the whole LM against length, one line per model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = table[table["status"] == "ok"].assign(model_label=lambda t: t.apply(throughput_label, axis=1))
    colours = mixer_colours(ok["model"].unique())  # a variant (heads=4) keeps its mixer's colour, dashed
    palette = {label: colours[model] for label, model in zip(ok["model_label"], ok["model"])}
    dashes = {label: "" if label == model else (4, 2) for label, model in zip(ok["model_label"], ok["model"])}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    sns.lineplot(data=ok, x="length", y="tokens_per_s", hue="model_label", style="model_label", palette=palette, dashes=dashes,
                 marker="o", ax=axes[0])
    sns.lineplot(data=ok.assign(mib=ok["peak_memory_bytes"] / 2**20), x="length", y="mib", hue="model_label", style="model_label",
                 palette=palette, dashes=dashes, marker="o", ax=axes[1], legend=False)
    axes[0].set(xscale="log", yscale="log", ylabel="training tokens/s (optimizer step)", xlabel="sequence length")
    axes[1].set(xscale="log", yscale="log", ylabel="peak memory during the steps, MiB\n(CPU: the process's resident peak)", xlabel="sequence length")
    lengths = sorted(ok["length"].unique())
    for axis in axes:  # the measured lengths as ticks: log axes' minor labels overlap at these few points
        axis.set_xticks(lengths, [str(int(n)) for n in lengths])
        axis.xaxis.set_minor_locator(plt.NullLocator())
    axes[0].legend(fontsize=7, title=None)
    parameters = ok.groupby("model_label")["parameters"].first()
    spread = (parameters.max() / parameters.min() - 1) if len(parameters) else 0
    fig.suptitle(f"{title or 'LM training step'} — parameters matched within {spread:.1%}, "
                 f"{int(ok['tokens_per_step'].iloc[0]) if len(ok) else 0} tokens per step", fontsize=10)
    fig.tight_layout()
    path = out_dir / "throughput.png"
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
