"""Store → pandas: one row per run (flattened config + summary) and a long table of curves.

Works on partial sweeps: a run without a summary still gets a row with its current state.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd

from seqbench.bench.store import Store

PROVENANCE_FIELDS = ("commit", "dirty", "device_name", "host", "slurm_job_id", "torch_threads")


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, out)
    elif isinstance(value, list) and prefix == "model.name":
        out[prefix] = "+".join(map(str, value))
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list) else value


def _cell(value):
    """A value a parquet column can hold: scalars as they are, anything else as JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)


def collect(sweep: str, root=None, *, save: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) of a sweep (collect_all says how)."""
    runs, curves, _ = collect_all(sweep, root, save=save)
    return runs, curves


def table_path(sweep: str, root=None, table: str = "runs") -> Path:
    """Where `collect` saves a sweep's table (runs, curves or rows) as parquet."""
    return Store(root).sweep(sweep).table_path(table)


def collect_all(sweep: str, root=None, *, save: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, curves, measurement rows) of a sweep in one pass over the store, also saved as
    runs.parquet / curves.parquet / rows.parquet (the last for speed and op runs). A run whose files
    are bad still gets a row with what could be read; a store that cannot be written (a read-only
    copy) still gives the tables, unsaved."""
    sweep_dir = Store(root).sweep(sweep)
    rows, curves, measured = [], [], []
    for run_id in sweep_dir.run_ids():
        run_dir = sweep_dir.run(run_id)
        row: dict = {"run_id": run_id}
        stored = run_dir.read_config()
        if stored:
            _flatten("", stored["config"], row)
            provenance = stored.get("provenance", {})
            row.update({f"provenance.{k}": _cell(provenance.get(k)) for k in PROVENANCE_FIELDS})
        row["backend"] = run_dir.backends()
        row["status"], _ = run_dir.state()
        for key, value in (run_dir.read_summary() or {}).items():
            if key not in ("run_id", "status"):  # a result never overwrites the config it came from
                row[f"summary.{key}" if key in row else key] = _cell(value)
        rows.append(row)
        for metric_row in run_dir.read_metrics():
            step, split = metric_row["step"], metric_row["split"]
            # null is how a non-finite number is stored (strict JSON): it reads back as NaN
            curves.extend({"run_id": run_id, "step": step, "split": split, "metric": key,
                           "value": math.nan if value is None else float(value)}
                          for key, value in metric_row.items()
                          if key not in ("step", "split") and (value is None or isinstance(value, (int, float)))
                          and not isinstance(value, bool))
        origin = {key: value for key, value in row.items() if key.startswith("provenance.")}
        packages = (stored or {}).get("provenance", {}).get("packages")
        origin["provenance.torch"] = packages.get("torch") if isinstance(packages, dict) else None
        measured += [{"run_id": run_id, "kind": row.get("kind"), **{k: _cell(v) for k, v in r.items()}, **origin}
                     for r in run_dir.read_rows()]
    # a store with no runs yet still has the runs table's key columns: every reader can index it
    runs = _frame(rows) if rows else pd.DataFrame(columns=["run_id", "status"])
    measured_table = _frame(measured) if measured else pd.DataFrame()
    curve_table = pd.DataFrame(curves, columns=["run_id", "step", "split", "metric", "value"])
    if save:
        tables = {"runs": runs, "curves": curve_table, **({"rows": measured_table} if measured else {})}
        try:
            for name, table in tables.items():
                sweep_dir.write_table(name, table)
        except OSError as error:  # a read-only copy of the results: the tables are still returned
            warnings.warn(f"{sweep_dir.path}: could not save the collected tables ({error.strerror}); "
                          "returning them unsaved", stacklevel=2)
    return runs, curve_table, measured_table


def _frame(rows: list[dict]) -> pd.DataFrame:
    """A DataFrame whose mixed-type columns (a bad file's string among numbers) become text, so
    parquet can store it; the offending column is named."""
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        kinds = {type(v) for v in frame[column] if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if len(kinds - {int, float}) and len(kinds) > 1:
            warnings.warn(f"column {column!r} mixes {sorted(k.__name__ for k in kinds)}; stored as text", stacklevel=2)
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return frame


def collect_rows(sweep: str, root=None) -> pd.DataFrame:
    """The measurement rows (speed and op runs) of a sweep, with run id, kind and provenance."""
    return collect_all(sweep, root)[2]


def varying_columns(runs: pd.DataFrame, prefixes=("model.", "task.", "optimizer.", "steps", "batch_size")) -> list[str]:
    """Config columns that differ between runs (the sweep's axes), seed excluded. A mixer option
    counts only if it varies within one mixer: different mixers' defaults are not an axis."""
    columns = [c for c in runs.columns if c.startswith(prefixes)]
    varying = [c for c in columns if runs[c].astype(str).nunique() > 1]
    if "model.name" in runs.columns:
        by_model = runs.groupby(runs["model.name"].astype(str))
        varying = [c for c in varying if not c.startswith("model.options.")
                   or (by_model[c].agg(lambda values: values.astype(str).nunique()) > 1).any()]
    if "model.target_parameters" in runs.columns and runs["model.target_parameters"].notna().all():
        varying = [c for c in varying if c not in ("model.d_model", "model.mlp_hidden")]  # solved, not chosen
    return varying


def main_metric(runs: pd.DataFrame) -> tuple[str, bool]:
    """(column, higher is better) of the headline final metric."""
    for column, higher in (("final_accuracy", True), ("final_bpc", False)):
        if column in runs.columns and runs[column].notna().any():
            return column, higher
    raise ValueError("no finished run with a final metric yet (final_accuracy or final_bpc)")
