"""Store → pandas: one row per run (flattened config + summary) and a long table of curves.

Works on partial sweeps: a run without a summary still gets a row with its current state.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd

from bench.store import RunDir, atomic_write_bytes, results_root

RUN_ID = re.compile(r"^[0-9a-f]{16}$")


def run_ids(root: Path, sweep: str) -> list[str]:
    folder = root / sweep
    if not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise ValueError(f"no sweep {sweep!r} under {root}; sweeps there: {', '.join(known) or '(none)'}")
    ids = {p.name for p in folder.iterdir() if p.is_dir() and RUN_ID.match(p.name)}
    listed = folder / "sweep.json"
    if listed.exists():
        ids.update(json.loads(listed.read_text()).get("run_ids", []))
    return sorted(ids)


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, out)
    elif isinstance(value, list) and prefix == "model.name":
        out[prefix] = "+".join(value)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list) else value


def collect(sweep: str, root=None, *, save: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    root = results_root(root)
    rows, curves = [], []
    for run_id in run_ids(root, sweep):
        run_dir = RunDir(root, sweep, run_id)
        row: dict = {"run_id": run_id}
        stored = run_dir.read_config()
        if stored:
            _flatten("", stored["config"], row)
            provenance = stored.get("provenance", {})
            row.update({f"provenance.{k}": provenance.get(k) for k in ("commit", "dirty", "device_name", "host", "slurm_job_id")})
        summary = run_dir.read_summary()
        status = run_dir.read_status()
        row["status"] = (summary or {}).get("status") or (status or {}).get("state") or "pending"
        if summary:
            for key, value in summary.items():
                if key not in ("run_id", "status"):  # a result never overwrites the config it came from
                    row[f"summary.{key}" if key in row else key] = json.dumps(value) if isinstance(value, (list, dict)) else value
        rows.append(row)
        for metric_row in run_dir.read_metrics():
            step, split = metric_row["step"], metric_row["split"]
            curves.extend({"run_id": run_id, "step": step, "split": split, "metric": key, "value": value}
                          for key, value in metric_row.items() if key not in ("step", "split"))
    runs = pd.DataFrame(rows)
    speed = collect_speed(root, sweep)
    curve_table = pd.DataFrame(curves, columns=["run_id", "step", "split", "metric", "value"])
    if save:
        tables = [("runs.parquet", runs), ("curves.parquet", curve_table)] + ([("speed.parquet", speed)] if len(speed) else [])
        for name, frame in tables:
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            atomic_write_bytes(root / sweep / name, buffer.getvalue())
    return runs, curve_table


def collect_speed(root: Path, sweep: str) -> pd.DataFrame:
    """The rows of every speed run of the sweep (speed.jsonl), with the run id and provenance."""
    rows = []
    for run_id in run_ids(root, sweep):
        path = root / sweep / run_id / "speed.jsonl"
        if path.exists():
            stored = RunDir(root, sweep, run_id).read_config() or {}
            provenance = {f"provenance.{k}": v for k, v in stored.get("provenance", {}).items()
                          if k in ("commit", "dirty", "device_name", "host", "torch_threads")}
            torch_version = stored.get("provenance", {}).get("packages", {}).get("torch")
            for line in path.read_text().splitlines():
                rows.append({"run_id": run_id, **json.loads(line), **provenance, "provenance.torch": torch_version})
    return pd.DataFrame(rows)


def varying_columns(runs: pd.DataFrame, prefixes=("model.", "task.", "optimizer.", "steps", "batch_size")) -> list[str]:
    """Config columns that differ between runs (the sweep's axes), seed excluded. A mixer option
    counts only if it varies within one mixer: different mixers' defaults are not an axis."""
    columns = [c for c in runs.columns if c.startswith(prefixes)]
    varying = [c for c in columns if runs[c].astype(str).nunique() > 1]
    if "model.name" in runs.columns:
        by_model = runs.groupby(runs["model.name"].astype(str))
        varying = [c for c in varying if not c.startswith("model.options.")
                   or (by_model[c].agg(lambda values: values.astype(str).nunique()) > 1).any()]
    return varying


def main_metric(runs: pd.DataFrame) -> tuple[str, bool]:
    """(column, higher is better) of the headline final metric."""
    for column, higher in (("final_accuracy", True), ("final_bpc", False)):
        if column in runs.columns and runs[column].notna().any():
            return column, higher
    raise ValueError("no finished run with a final metric yet (final_accuracy or final_bpc)")
