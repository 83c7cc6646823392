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
    columns = [c for c in ["run_id", *varying_columns(runs), "seed", "status", "summary.steps", "final_accuracy", "final_bpc",
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


SPEED_PRESETS = {
    # the configuration behind results/speed: every mixer, 256 … 16384, B=4, d=256, max-heads GateLoop
    "reference-cpu": dict(models=["gateloop", "s5", "retnet", "linear_attention", "softmax_attention", "mamba"],
                          lengths=[256, 512, 1024, 2048, 4096, 8192, 16384], batch_size=4, d_model=256, repeats=3,
                          memory_budget_gb=6.0, time_budget_s=150.0, op=True),
}


def cmd_speed(args) -> None:
    from analysis.collect import collect
    from analysis.speed_plots import plot_gateloop_op, plot_speed, speed_summary
    from bench.config import parse_run_config
    from bench.speed import gateloop_op_benchmark
    from bench.store import atomic_write_bytes, results_root
    from slurm.executors import submit
    from slurm.sweep import Sweep

    settings = {**SPEED_PRESETS.get(args.preset, {}), **{k: v for k, v in vars(args).items() if v is not None}}
    speed = {key: settings[key] for key in ("lengths", "batch_size", "dtype", "repeats", "threads", "memory_budget_gb",
                                             "time_budget_s", "decode_prefills", "modes", "measures") if key in settings}
    runs = [parse_run_config({"kind": "speed", "model": {"name": name, "d_model": settings.get("d_model", 256)},
                              "device": settings.get("device", "auto"), "speed": speed})
            for name in settings.get("models") or ["gateloop", "s5", "retnet", "linear_attention", "softmax_attention"]]
    out = Path(settings.get("out") or results_root(args.root) / args.sweep / "plots")
    # one run at a time: concurrent runs would share the cores being timed
    submit(Sweep(args.sweep, runs), executor=settings.get("executor", "local"), root=args.root, parallel=1)
    if settings.get("executor") == "slurm":
        print(f"submitted; when done: seqbench collect {args.sweep}")
        return
    collect(args.sweep, args.root)
    import pandas as pd

    table = pd.read_parquet(results_root(args.root) / args.sweep / "speed.parquet")
    table = table[table["run_id"].isin({run.run_id() for run in runs})]  # this invocation's runs only
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "speed.csv", table.to_csv(index=False).encode())
    summary = speed_summary(table)
    atomic_write_bytes(out / "speed_summary.csv", summary.to_csv(index=False).encode())
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(summary.to_string(index=False))
    for path in plot_speed(table, out, title=f"{table['provenance.device_name'].iloc[0]}, B={speed.get('batch_size', 4)}"):
        print(f"wrote {path}")
    if settings.get("op"):
        lengths = speed.get("lengths", [256, 1024, 4096, 16384])
        rows = gateloop_op_benchmark(lengths, threads=speed.get("threads", 2), check_gradients_at=max(lengths),
                                     emit=lambda row: print({k: (float(f"{v:.3g}") if isinstance(v, float) else v) for k, v in row.items()}))
        op_table = pd.DataFrame(rows)
        atomic_write_bytes(out / "gateloop_op.csv", op_table.to_csv(index=False).encode())
        print(f"wrote {plot_gateloop_op(op_table, out)}")


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

    speed = commands.add_parser("speed", help="time and memory of every mixer's modes against length")
    speed.add_argument("--preset", choices=sorted(SPEED_PRESETS), default=None)
    speed.add_argument("--models", nargs="+", default=None)
    speed.add_argument("--modes", nargs="+", default=None, help="only these modes (of a single model)")
    speed.add_argument("--lengths", nargs="+", type=int, default=None)
    speed.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    speed.add_argument("--d-model", dest="d_model", type=int, default=None)
    speed.add_argument("--dtype", choices=["float32", "float64", "bfloat16"], default=None)
    speed.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    speed.add_argument("--repeats", type=int, default=None)
    speed.add_argument("--threads", type=int, default=None)
    speed.add_argument("--memory-budget-gb", dest="memory_budget_gb", type=float, default=None)
    speed.add_argument("--time-budget-s", dest="time_budget_s", type=float, default=None)
    speed.add_argument("--decode-prefills", dest="decode_prefills", nargs="+", type=int, default=None)
    speed.add_argument("--measures", nargs="+", choices=["forward", "forward_backward", "step"], default=None)
    speed.add_argument("--op", action="store_true", default=None, help="also GateLoop's op: every implementation vs the traffic floor")
    speed.add_argument("--executor", choices=EXECUTORS, default=None)
    speed.add_argument("--sweep", default="speed", help="results folder (default: speed)")
    speed.add_argument("--out", default=None, help="table and plots go here (default: <root>/<sweep>/plots)")
    speed.set_defaults(func=cmd_speed)

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
