"""Reports written from collected tables: the sweep table printed, the speed report (CSV, fitted
exponents, plots). The CLI calls these; tests call them too."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from seqbench.analysis.collect import collect, collect_rows, varying_columns
from seqbench.analysis.protocol import configuration_columns
from seqbench.bench.store import FINISHED, Store
from seqbench.core import atomic_write_bytes, atomic_write_csv

HEADLINE = ["status", "summary.steps", "final_accuracy", "final_bpc", "train_loss", "tokens_per_s", "parameters",
            "state_size"]


def sweep_table(runs: pd.DataFrame) -> str:
    """The collected runs as text: the sweep's axes, seed, status and the headline numbers."""
    columns = [c for c in ["run_id", *varying_columns(runs), "seed", *HEADLINE] if c in runs.columns]
    order = [c for c in columns[1:2] + ["seed"] if c in runs.columns] or ["run_id"]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        return runs[columns].sort_values(order).to_string(index=False)


def plot_sweep_report(sweep: str, root=None) -> list[Path]:
    from seqbench.analysis.plots import plot_sweep

    runs, curves = collect(sweep, root)
    return plot_sweep(runs, curves, Store(root).sweep(sweep).plots_path)


def speed_report(sweep: str, root=None, out: str | Path | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """speed.csv, speed_summary.csv and speed.png from a sweep's speed runs; gateloop_op.csv and
    gateloop_op.png from its op runs. Returns the summary table and the files written."""
    from seqbench.analysis.speed_plots import plot_gateloop_op, plot_speed, plot_throughput, speed_summary

    sweep_dir = Store(root).sweep(sweep)
    out = Path(out) if out else sweep_dir.plots_path
    rows = collect_rows(sweep, root)
    if rows.empty:
        raise ValueError(f"sweep {sweep!r} has no measured rows yet (no finished speed or gateloop_op run)")
    written, summary = [], pd.DataFrame()
    speed = rows[rows["kind"] == "speed"].dropna(axis=1, how="all")
    if len(speed):
        summary = speed_summary(speed)
        written += [_write_csv(speed, out / "speed.csv"), _write_csv(summary, out / "speed_summary.csv")]
        title = f"{speed['provenance.device_name'].dropna().iloc[0]}" if speed["provenance.device_name"].notna().any() else ""
        written += plot_speed(speed, out, title=title)
    op = rows[rows["kind"] == "gateloop_op"].dropna(axis=1, how="all")
    if len(op):
        written += [_write_csv(op, out / "gateloop_op.csv"), plot_gateloop_op(op, out)]
    throughput = rows[rows["kind"] == "throughput"].dropna(axis=1, how="all")
    if len(throughput):
        throughput = throughput.assign(arm=throughput["run_id"].map(_arm_labels(sweep, root)))
        summary = throughput_table(throughput)
        written += [_write_csv(throughput, out / "throughput.csv"), _write_csv(summary, out / "throughput_summary.csv"),
                    plot_throughput(throughput, out)]
    return summary, written


def _arm_labels(sweep: str, root) -> dict[str, str]:
    """run id → the options that tell two runs of one mixer apart (e.g. heads=4), from its config."""
    labels = {}
    for run_id in Store(root).sweep(sweep).run_ids():
        stored = Store(root).run(sweep, run_id).read_config() or {}
        options = (stored.get("config", {}).get("model", {}) or {}).get("options", {})
        labels[run_id] = f"heads={options['heads']}" if isinstance(options, dict) and options.get("heads") not in (None,) and \
            stored["config"]["model"]["name"] == "gateloop" else ""
    return labels


def throughput_table(rows: pd.DataFrame) -> pd.DataFrame:
    """tokens/s per model (rows) and length (columns), and each model's step time relative to the
    fastest at that length."""
    ok = rows[rows["status"] == "ok"].assign(model=lambda t: (t["model"] + " " + t["arm"].fillna("")).str.strip())
    table = ok.pivot_table(index=["model", "parameters", "mode", "backend"], columns="length", values="tokens_per_s").reset_index()
    for length in sorted(ok["length"].unique()):
        table[f"× fastest @{length}"] = table[length].max() / table[length]
    table.columns = [f"tokens/s @{c}" if isinstance(c, (int, float)) and not isinstance(c, bool) else c for c in table.columns]
    return table


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    atomic_write_csv(path, frame)
    return path


RESULT_COLUMNS = ["run_id", "model.name", "model.d_model", "model.mlp_hidden", "model.target_parameters", "optimizer.lr",
                  "seed", "status", "summary.steps", "validation_accuracy", "final_accuracy", "validation_macro_accuracy",
                  "final_macro_accuracy", "validation_bpc", "final_bpc",
                  "parameters", "state_size", "tokens_per_s", "provenance.commit", "provenance.dirty"]


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The committed columns of a runs table: identity, the axes that vary, metrics, commit."""
    axes = [c for c in varying_columns(runs) if c not in RESULT_COLUMNS]
    return runs[[c for c in RESULT_COLUMNS[:2] + axes + RESULT_COLUMNS[2:] if c in runs.columns]]


def paired_comparisons(runs: pd.DataFrame) -> pd.DataFrame:
    """Every pair of configurations (arms) at their chosen lrs, best mean first: per-seed differences
    of the test metric, signed so that positive favours the first, their mean and 95% t-interval —
    the numbers a README quotes (protocol.paired_differences, protocol.interval)."""
    from seqbench.analysis.plots import field_label, final_table
    from seqbench.analysis.protocol import interval, paired_differences

    table, metric, higher, _ = final_table(runs)
    axes = configuration_columns(table) or ["model.name"]
    if axes == ["model.name"]:  # the mixers alone: their names say it
        arm = table["model.name"].astype(str)
    else:  # "heads=2, short_conv=4": a bare "2, 4" names nothing
        arm = table[axes].apply(lambda row: ", ".join(f"{field_label(c)}={row[c]}" for c in axes), axis=1) if len(table) \
            else pd.Series(dtype=str)
    table = table.assign(arm=arm)
    means = table.groupby("arm")[metric].mean().sort_values(ascending=not higher)
    rows = []
    for position, a in enumerate(means.index):
        for b in means.index[position + 1:]:
            differences = paired_differences(table, arm="arm", a=a, b=b, value=metric)
            mean, low, high = interval(differences)
            rows.append({"a": a, "b": b, "metric": metric, "seeds": len(differences), "a − b": mean, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["a", "b", "metric", "seeds", "a − b", "low", "high"])


def export_results(sweep: str, root=None, out: str | Path | None = None, *, command: str = "") -> list[Path]:
    """What goes under results/: runs.csv (parameters, lr, seed and commit of every run), the
    best-over-lr table when the lr was swept, the plots, and README.md naming the commit, the data
    and the command. Refuses runs from a dirty tree: a committed number must be reproducible."""
    from seqbench.analysis.plots import final_table, plot_sweep

    runs, curves = collect(sweep, root)
    finished = runs[runs["status"].isin(FINISHED)] if len(runs) else runs
    missing = runs[~runs["run_id"].isin(finished["run_id"])] if len(runs) else runs
    if finished.empty:
        states = ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items()) if len(runs) else "none listed"
        raise ValueError(f"sweep {sweep!r} has no finished run to report ({len(runs)} run(s): {states}); missing: "
                         f"{', '.join(missing['run_id'].head(8))}{' …' if len(missing) > 8 else ''}. "
                         f"Follow them with: seqbench status {sweep}")
    everything, runs = runs, finished  # the lr is chosen over every run of the grid: a configuration with one outstanding has none
    dirty = runs[runs.get("provenance.dirty", pd.Series(dtype=bool)).fillna(True).astype(bool)] if len(runs) else runs
    if len(dirty):
        raise ValueError(f"{len(dirty)} run(s) of {sweep!r} come from a dirty tree or have no provenance "
                         f"(e.g. {dirty['run_id'].iloc[0]}); re-run them from a clean checkout before exporting")
    out = Path(out) if out else Store(root).sweep(sweep).plots_path
    axes = [c for c in varying_columns(runs) if c not in RESULT_COLUMNS]
    written = [_write_csv(results_table(runs), out / "runs.csv")]
    chosen, metric, _, protocol = final_table(everything)
    if "chosen_lr" in chosen.columns:
        keep = [c for c in ["model.name", *axes, "seed", "chosen_lr", "lr_at_edge", metric.replace("final_", "validation_"),
                            metric, "parameters"] if c in chosen.columns]
        written.append(_write_csv(chosen[keep], out / "best_over_lr.csv"))
    written += plot_sweep(everything, curves, out)
    written.append(_write_csv(paired_comparisons(everything), out / "paired.csv"))
    commits = sorted(set(runs["provenance.commit"].dropna()))
    recorded = Store(root).sweep(sweep).commands()
    command = command or (recorded[-1] if recorded else "")
    lines = [f"# {sweep}", "", f"- command: `{command}`" if command else "- command: not recorded (the sweep was launched "
             "by an older seqbench; pass --command-line)",
             f"- code: commit{'s' if len(commits) > 1 else ''} {', '.join(commits)} (clean tree)",
             f"- data: task {', '.join(sorted(set(runs['task.name'].dropna())))}"
             + (f" with {sorted(set(runs['task.options.path'].dropna()))}" if "task.options.path" in runs.columns else ""),
             f"- runs: {len(runs)} ({', '.join(f'{n} {s}' for s, n in runs['status'].value_counts().items())}); protocol: {protocol}",
             f"- missing: {len(missing)} run(s) not finished, left out: {', '.join(missing['run_id'])}" if len(missing) else None,
             f"- parameters: {runs['parameters'].min():,.0f}–{runs['parameters'].max():,.0f}" if "parameters" in runs.columns else "",
             f"- device: {', '.join(sorted(set(runs['provenance.device_name'].dropna())))}", ""]
    path = out / "README.md"
    atomic_write_bytes(path, "\n".join(line for line in lines if line is not None).encode())
    return [*written, path]
