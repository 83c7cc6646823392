"""Cost curves: time and memory against length (log-log), fitted scaling exponents, crossovers."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

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


def plot_speed(table: pd.DataFrame, out_dir: Path, title: str = "") -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = speed_summary(table).set_index(["model", "mode"])
    fb = table[(table["measure"] == "forward_backward") & (table["status"] == "ok")].copy()
    fb["curve"] = fb["model"] + "/" + fb["mode"]
    labels = {}
    for (model, mode), row in summary.iterrows():
        exponent = f"∝L^{row.time_exponent:.2f}" if row.time_exponent is not None and not pd.isna(row.time_exponent) else ""
        capped = f", capped: {row.not_measured}" if row.not_measured else ""
        labels[f"{model}/{mode}"] = f"{model}/{mode} {exponent}{capped}"
    fb["label"] = fb["curve"].map(labels)
    fig, axes = plt.subplots(1, 3, figsize=(21, 9))
    sns.lineplot(data=fb, x="length", y="median_ms", hue="label", markers=True, dashes=False, ax=axes[0])
    for (model, mode), row in summary.iterrows():
        if row.crossover_vs_softmax and not pd.isna(row.crossover_vs_softmax):
            axes[0].axvline(row.crossover_vs_softmax, color="grey", linestyle=":", linewidth=1)
            axes[0].annotate(f"{model}/{mode} ≈ {row.crossover_vs_softmax:.0f}", (row.crossover_vs_softmax, axes[0].get_ylim()[0]),
                             rotation=90, fontsize=7, va="bottom", ha="right", color="grey")
    axes[0].set(xscale="log", yscale="log", title="forward+backward time (median; dotted: crossover vs softmax)", ylabel="ms")
    memory = fb.assign(mib=fb["peak_memory_bytes"] / 2**20)
    sns.lineplot(data=memory, x="length", y="mib", hue="label", markers=True, dashes=False, ax=axes[1], legend=False)
    axes[1].set(xscale="log", yscale="log", title="peak memory of forward+backward", ylabel="MiB")
    step = table[(table["measure"] == "step") & (table["status"] == "ok")]
    sns.lineplot(data=step, x="length", y="median_ms", hue="model", markers=True, ax=axes[2])
    axes[2].set(xscale="log", title="per-token step latency after a prefill", xlabel="prefill length", ylabel="ms")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8,
               title="model/mode: fitted time exponent (longest lengths), lengths not measured")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    path = out_dir / "speed.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
