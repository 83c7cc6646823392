"""seqbench command line: each subcommand parses its arguments and calls one library function."""
from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tomllib
from pathlib import Path

import pandas as pd


def _print_registry(rows: list[dict]) -> None:
    for row in rows:
        modes = ""
        if "modes" in row:
            modes = "  modes: " + ", ".join(f"{m}*" if m == row["default_mode"] else m for m in row["modes"])
        print(f"{row['name']}{modes}\n  {row['summary']}")
        for option, default in row["options"].items():
            shown = "(required)" if default is inspect.Parameter.empty else repr(default)
            print(f"    {option} = {shown}")


def cmd_models(args) -> None:
    import models

    _print_registry(models.describe())
    print("(* default mode)")


def cmd_tasks(args) -> None:
    import tasks

    _print_registry(tasks.describe())


def _load_mapping(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {error}") from None


def cmd_run(args) -> None:
    from bench.config import parse_run_config
    from bench.runner import run_in_foreground

    config = parse_run_config(_load_mapping(Path(args.config)))
    summary = run_in_foreground(config, root=args.root, sweep=args.sweep)
    print(json.dumps({k: v for k, v in summary.items() if k != "layers"}, indent=1, default=str))


def cmd_sweep(args) -> None:
    from slurm.executors import PARAMETERS, submit
    from slurm.sweep import load_sweep

    sweep = load_sweep(args.file)
    overrides = {name: getattr(args, name) for name in PARAMETERS}
    submission = submit(sweep, executor=args.executor, root=args.root, dry_run=args.dry_run,
                        overrides=overrides, parallel=args.parallel)
    print(f"sweep: {sweep.name}")
    if args.dry_run or args.executor == "slurm":
        return
    runs, curves = _collect_and_print(sweep.name, args.root)
    if args.plot:
        _plot(sweep.name, args.root, runs, curves)
    if submission.failed:
        sys.exit(f"{len(submission.failed)} run(s) failed; see: seqbench status {sweep.name}")


def _collect_and_print(sweep: str, root):
    from analysis.collect import collect, varying_columns

    runs, curves = collect(sweep, root)
    columns = [c for c in ["run_id", *varying_columns(runs), "seed", "status", "steps", "final_accuracy", "final_bpc",
                           "train_loss", "tokens_per_s", "parameters", "state_size"] if c in runs.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(runs[columns].sort_values(columns[1:2] + ["seed"] if "seed" in columns else columns[:1]).to_string(index=False))
    print(f"saved {Path(root or 'runs') / sweep / 'runs.parquet'} and curves.parquet")
    return runs, curves


def _plot(sweep: str, root, runs, curves) -> None:
    from analysis.plots import plot_sweep
    from bench.store import results_root

    for path in plot_sweep(runs, curves, results_root(root) / sweep / "plots"):
        print(f"wrote {path}")


def cmd_status(args) -> None:
    from slurm.status import format_status, sweep_status

    print(format_status(args.sweep, sweep_status(args.sweep, args.root)))


def cmd_collect(args) -> None:
    _collect_and_print(args.sweep, args.root)


def cmd_plot(args) -> None:
    from analysis.collect import collect

    runs, curves = collect(args.sweep, args.root)
    _plot(args.sweep, args.root, runs, curves)


def cmd_cancel(args) -> None:
    from slurm.status import cancel

    print(f"cancelled jobs: {', '.join(cancel(args.sweep, args.root)) or '(none)'}")


def build_parser() -> argparse.ArgumentParser:
    from slurm.executors import EXECUTORS, PARAMETERS

    parser = argparse.ArgumentParser(prog="seqbench", description=__doc__)
    parser.add_argument("--root", default=None, help="results root (default: $SEQBENCH_RESULTS or ./runs)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("models", help="list mixers with their modes and options").set_defaults(func=cmd_models)
    commands.add_parser("tasks", help="list tasks with their options").set_defaults(func=cmd_tasks)

    run = commands.add_parser("run", help="train and evaluate one config (JSON or TOML) in the foreground")
    run.add_argument("config")
    run.add_argument("--sweep", default="single", help="folder under the results root (default: single)")
    run.set_defaults(func=cmd_run)

    sweep = commands.add_parser("sweep", help="expand a sweep file and run what is not finished")
    sweep.add_argument("file")
    sweep.add_argument("--executor", choices=EXECUTORS, default="local")
    sweep.add_argument("--dry-run", action="store_true", help="print the runs, submit nothing")
    sweep.add_argument("--parallel", type=int, default=None, help="local: runs at once (default: CPUs / cpus_per_task)")
    sweep.add_argument("--plot", action="store_true", help="local/debug: draw the plots when done")
    for name in PARAMETERS:
        sweep.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                           type=str if name in ("partition", "account", "qos", "constraint") else int)
    sweep.set_defaults(func=cmd_sweep)

    for name, func, text in (("status", cmd_status, "counts per state and the last error of failed runs"),
                             ("collect", cmd_collect, "build the runs/curves DataFrames and save parquet"),
                             ("plot", cmd_plot, "seaborn plots of a sweep"),
                             ("cancel", cmd_cancel, "cancel a sweep's unfinished Slurm jobs")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("sweep")
        sub.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as error:
        sys.exit(f"seqbench {args.command}: {error}")
    except BrokenPipeError:  # output piped into head & co.
        sys.stdout = open(os.devnull, "w")


if __name__ == "__main__":
    main()
