"""Sweep files: a base RunConfig, a grid (product) and a zip over dotted field paths, and seeds.

    name = "mqar-small"
    seeds = [0, 1]
    [base]                      # a partial RunConfig
    steps = 400
    [grid]                      # every combination
    "model.name" = ["gateloop", "retnet"]
    [zip]                       # lists of one length, taken together (e.g. a width per model)
    "model.d_model" = [64, 72]
    "optimizer.lr" = [1e-3, 3e-3]
    [executor]                  # submitit parameters (see seqbench.slurm.executors), overridable on the command line
    partition = "gpu"

Every expanded run is validated (bench/config.py); its id is the hash of its canonical config.
`overrides` ("steps=100", "model.d_model=128") set base fields from the command line.
"""
from __future__ import annotations

import copy
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.bench.config import RunConfig, parse_run_config
from seqbench.bench.store import NAME_PATTERN

SWEEP_KEYS = ("name", "seeds", "base", "grid", "zip", "executor")


@dataclass(frozen=True)
class Sweep:
    name: str
    runs: list[RunConfig]
    executor: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id → its grid/zip values

    def expanded(self) -> list[dict[str, Any]]:
        """Every run as data for tools (`seqbench sweep --json`): id, its axis values, the config."""
        return [{"run_id": run.run_id(), "axes": self.axes.get(run.run_id(), {}), "config": run.model_dump(mode="json"),
                 **(run.size() if run.kind == "train" else {})} for run in self.runs]


def set_path(config: dict, dotted: str, value: Any) -> None:
    node = config
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"sweep axis {dotted!r}: {part!r} is not a section")
        node = child
    node[leaf] = value


def expand(spec: dict[str, Any], *, source: str = "sweep") -> Sweep:
    unknown = sorted(set(spec) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(SWEEP_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ValueError(f"{source}: 'name' must be letters, digits, '.', '_' or '-' (it names a folder), got {name!r}")
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"{source}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    grid, zipped = spec.get("grid", {}), spec.get("zip", {})
    for label, axes in (("grid", grid), ("zip", zipped)):
        if not isinstance(axes, dict) or not all(isinstance(v, list) and v for v in axes.values()):
            raise ValueError(f"{source}: every [{label}] axis must be a non-empty list of values")
    both = sorted(set(grid) & set(zipped))
    if both:
        raise ValueError(f"{source}: axis {both} appears in both [grid] and [zip]")
    lengths = {key: len(values) for key, values in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{source}: [zip] lists must have one length, got {lengths}")
    zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] if zipped else [{}]
    grid_rows = [dict(zip(grid, row)) for row in itertools.product(*grid.values())]

    runs, seen, axes = [], set(), {}
    for grid_row, zip_row, seed in itertools.product(grid_rows, zip_rows, seeds):
        config = copy.deepcopy(spec.get("base", {}))
        for dotted, value in {**grid_row, **zip_row, "seed": seed}.items():
            set_path(config, dotted, value)
        try:
            run = parse_run_config(config)
        except ValueError as error:
            axes = ", ".join(f"{k}={v!r}" for k, v in {**grid_row, **zip_row, "seed": seed}.items())
            raise ValueError(f"{source}: the run with {axes} is invalid: {error}") from None
        if run.run_id() not in seen:
            seen.add(run.run_id())
            runs.append(run)
            axes[run.run_id()] = {**grid_row, **zip_row}
    return Sweep(name=name, runs=runs, executor=dict(spec.get("executor", {})), axes=axes)


def parse_override(text: str) -> tuple[str, Any]:
    """'model.d_model=128' → ("model.d_model", 128); the value is read as TOML (strings may be bare)."""
    if "=" not in text:
        raise ValueError(f"--set {text!r}: expected FIELD=VALUE, e.g. steps=100 or model.options.heads=4")
    path, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def load_sweep(path: str | Path, overrides: list[str] = ()) -> Sweep:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep file {path} does not exist")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    for text in overrides:
        field_path, value = parse_override(text)
        set_path(spec.setdefault("base", {}), field_path, value)
    return expand(spec, source=str(path))
